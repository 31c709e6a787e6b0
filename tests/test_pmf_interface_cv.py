"""Interface CVs: bad input stops with one clear error before any MD runs (issue 12, "Bad input"),
per-window force constants, the tagged ion nearest the range, and the contact-layer hold."""

import numpy as np
import openmm as mm
import pytest
from openmm import app

from solvmd.pmf.select import CVSelectionError, resolve_cv
from solvmd.pmf_spec import PMFSpecError, load_spec
from solvmd.pmf.windows import check_windows, window_table

HEIGHT = dict(name="h", cv={"kind": "height", "cation": "LI", "surface": ["GRA"]}, range_nm=[0.25, 0.9],
              n_windows=6, k_kJ_mol_nm2=1000, equil_ps=1, sample_ps=2, sample_interval_steps=10)


def _system(with_sheet=True, metal=None, box_z=4.0):
    """2 Li+ and 2 DME-like (O C O) residues, optionally a 4-atom GRA sheet (+ a metal) at z = 0.5."""
    top, pos = app.Topology(), []
    ch = top.addChain()
    E = app.Element.getBySymbol

    def res(name, atoms):
        r = top.addResidue(name, ch)
        for nm, el, p in atoms:
            top.addAtom(nm, E(el), r)
            pos.append(p)

    for z in (1.0, 1.6):
        res("LI", [("Li1", "Li", np.array([1.0, 1.0, z]))])
        o = np.array([1.2, 1.0, z])
        res("DME", [("O1", "O", o), ("C1", "C", o + [0, 0.14, 0]), ("O2", "O", o + [0, 0.28, 0])])
    if with_sheet:
        res("GRA", [(f"C{i}", "C", np.array([0.5 + i, 0.5, 0.5])) for i in range(4)]
            + ([("M1", metal, np.array([2.0, 2.0, 0.5]))] if metal else []))
    system = mm.System()
    for a in top.atoms():
        system.addParticle(a.element.mass)
    box = np.diag([4.0, 4.0, box_z])
    system.setDefaultPeriodicBoxVectors(*box)
    f = mm.NonbondedForce()
    f.setNonbondedMethod(mm.NonbondedForce.CutoffPeriodic)
    for _ in range(system.getNumParticles()):
        f.addParticle(0, 0.1, 0)
    system.addForce(f)
    return top, system, np.array(pos), box


@pytest.mark.parametrize("range_nm, fragment", [([-0.2, 0.9], "crosses the sheet"), ([0.05, 0.9], "below contact")])
def test_height_range_crossing_the_sheet_or_below_contact(range_nm, fragment):
    with pytest.raises(PMFSpecError, match=fragment):
        load_spec(dict(HEIGHT, range_nm=range_nm))


def test_height_range_past_half_the_box():
    top, system, pos, box = _system(box_z=1.6)
    with pytest.raises(PMFSpecError, match=r"half the box height \(0.8 nm\)"):
        resolve_cv(load_spec(HEIGHT), system, pos, box, top)


def test_height_or_site_cv_on_a_bulk_system():
    top, system, pos, box = _system(with_sheet=False)
    with pytest.raises(CVSelectionError, match="a height CV needs a sheet, and this system has none"):
        resolve_cv(load_spec(HEIGHT), system, pos, box, top)
    site = dict(HEIGHT, cv={"kind": "site_distance", "cation": "LI", "site_element": "Zn"})
    with pytest.raises(CVSelectionError, match="needs a sheet with that metal"):
        resolve_cv(load_spec(site), system, pos, box, top)


def test_site_cv_on_a_sheet_without_metal_and_absent_ion():
    top, system, pos, box = _system()
    site = dict(HEIGHT, cv={"kind": "site_distance", "cation": "LI", "site_element": "Fe"})
    with pytest.raises(CVSelectionError, match=r"'Fe' not in the structure \(elements present: C, Li, O\)"):
        resolve_cv(load_spec(site), system, pos, box, top)
    mg = dict(HEIGHT, cv={"kind": "height", "cation": "MG", "surface": ["GRA"]})
    with pytest.raises(CVSelectionError, match="cv.cation residue 'MG' .* not in this system"):
        resolve_cv(load_spec(mg), system, pos, box, top)


def test_gapped_windows_are_an_error_in_strict_mode():
    gapped = load_spec(dict(HEIGHT, k_kJ_mol_nm2=50000))
    with pytest.raises(PMFSpecError, match=r"(?s)predicted to overlap .*nothing was run"):
        check_windows(gapped, strict=True)


def test_per_window_force_constants_and_tagged_ion_nearest_the_range():
    top, system, pos, box = _system(metal="Zn")
    spec = load_spec(dict(HEIGHT, k_kJ_mol_nm2=[4000, 3000, 2000, 1000, 1000, 1000]))
    assert [w.k_kJ_mol_nm2 for w in window_table(spec)] == [4000, 3000, 2000, 1000, 1000, 1000]
    with pytest.raises(PMFSpecError, match="one value per window"):
        load_spec(dict(HEIGHT, k_kJ_mol_nm2=[4000, 1000]))
    far = load_spec(dict(HEIGHT, range_nm=[0.9, 1.4], n_windows=6))
    # Li at z 1.0 and 1.6 (heights 0.5, 1.1): for a range 0.25-0.9 the lower one, for 0.9-1.4 the upper one
    assert resolve_cv(spec, system, pos, box, top).groups[0] == [0]
    assert resolve_cv(far, system, pos, box, top).groups[0] == [4]
    site = resolve_cv(load_spec(dict(HEIGHT, cv={"kind": "site_distance", "cation": "LI", "site_element": "Zn"})),
                      system, pos, box, top)
    assert site.groups[1] == [12]


def test_distance_cv_with_the_ion_held_at_the_contact_layer():
    from solvmd.pmf import cv as cvmod
    from solvmd.pmf.simulation import window_system

    top, system, pos, box = _system()
    held = load_spec(dict(name="d", cv={"kind": "distance", "cation": "LI", "partner": "DME",
                                        "hold": {"height_nm": 1.1, "k_kJ_mol_nm2": 3000}},
                          range_nm=[0.18, 0.6], n_windows=5, k_kJ_mol_nm2=2000, equil_ps=1, sample_ps=2,
                          sample_interval_steps=10))
    rcv = resolve_cv(held, system, pos, box, top)
    # both Li have a DME in the shell; the one nearest 1.1 nm above the sheet (z 1.6 -> 1.1 nm) is taken
    assert rcv.groups[0] == [4] and rcv.meta["hold"]["groups"] == [[4], [8, 9, 10, 11]]
    assert rcv.meta["hold"]["start_height_nm"] == pytest.approx(1.1)
    ws = window_system(system, held, rcv, 2000.0, 0.3)
    ctx = mm.Context(ws, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    ctx.setPeriodicBoxVectors(*box)
    moved = pos.copy()
    moved[4, 2] += 0.1  # 0.1 nm above the hold height; the CV (Li-O 0.2 nm) sits 0.1 nm below r0 = 0.3
    ctx.setPositions(moved)
    energy = lambda groups: ctx.getState(getEnergy=True, groups=groups).getPotentialEnergy()._value  # noqa: E731
    d = np.linalg.norm(moved[4] - moved[5])
    assert energy({cvmod.BIAS_GROUP}) == pytest.approx(0.5 * 2000 * (d - 0.3) ** 2, rel=1e-5)  # the umbrella alone
    assert energy({cvmod.HOLD_GROUP}) == pytest.approx(0.5 * 3000 * 0.1**2, rel=1e-5)  # the hold, apart
    with pytest.raises(PMFSpecError, match="hold.height_nm 0.05 nm is below contact"):
        load_spec(dict(held.model_dump(), cv={"kind": "distance", "partner": "DME", "hold": {"height_nm": 0.05}}))


@pytest.mark.parametrize("cv, fragment", [
    ({"kind": "height", "cation": "LI", "surface": ["GRA"]}, "needs a sheet, but this is a bulk recipe"),
    ({"kind": "distance", "cation": "MG", "partner": "DME"}, "cv.cation 'MG' is not in the electrolyte"),
    ({"kind": "distance", "cation": "LI", "partner": "THF"}, "cv.partner 'THF' is not in the electrolyte"),
])
def test_recipe_pmf_checked_before_any_job(tmp_path, cv, fragment):
    import yaml

    from solvmd.pmf.recipe_check import check_recipe_pmfs

    recipe = {"name": "b", "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
              "solvents": [{"species": "DME", "volume_fraction": 1.0}], "size": {"salt_units": 4},
              "pmf": [dict(HEIGHT, cv=cv, range_nm=[0.2, 0.6])]}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(PMFSpecError, match=fragment):
        check_recipe_pmfs(tmp_path / "b.yaml")


def test_recipe_pmf_site_metal_must_match_the_sheet(tmp_path):
    from pathlib import Path

    import yaml

    from solvmd.pmf.recipe_check import check_recipe_pmfs

    root = Path(__file__).resolve().parents[1] / "systems"
    assert [s.name for s in check_recipe_pmfs(root / "iface_li_tfsi_dol_dme_znn4.yaml")] == [
        "li_height", "li_site", "li_dme_contact"]
    data = yaml.safe_load((root / "iface_li_tfsi_dol_dme_znn4.yaml").read_text())
    bulk = yaml.safe_load((root / "li_tfsi_dol_dme.yaml").read_text())
    bulk.pop("pmf")
    data.update(electrolyte=bulk, density={"source": "estimate"})
    data["pmf"][1]["cv"]["site_element"] = "Fe"
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PMFSpecError, match="'Fe' is not the sheet's metal"):
        check_recipe_pmfs(tmp_path / "x.yaml")
