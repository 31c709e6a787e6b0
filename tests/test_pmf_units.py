"""Fast PMF unit tests: spec validation, CV forces vs numpy CVs, tagged-atom selection,
overlap prediction, barrier extraction, comparison table."""

import json
import math
import warnings

import numpy as np
import openmm as mm
import pytest
from openmm import app
from scipy.stats import norm

from solvmd.pmf import cv as cvmod
from solvmd.pmf.barrier import find_barrier
from solvmd.pmf.compare import compare_barriers
from solvmd.pmf.cv import ResolvedCV
from solvmd.pmf_spec import KJ_PER_KCAL, PMFSpecError, load_spec, load_specs
from solvmd.pmf.umbrella import CVSelectionError, PMFWarning, check_windows, predicted_overlap, resolve_cv

BASE = dict(
    name="t", cv={"kind": "distance", "cation_atoms": [0], "partner_atoms": [1]}, range_nm=[0.2, 0.6],
    spacing_nm=0.05, k_kJ_mol_nm2=2000, equil_ps=1, sample_ps=10,
)


def spec(**kw):
    d = dict(BASE)
    d.update(kw)
    return load_spec(d)


# ---------------------------------------------------------------- spec
def test_spec_windows_and_recipe_block():
    s = spec()
    np.testing.assert_allclose(s.centers(), np.linspace(0.2, 0.6, 9))
    s = spec(spacing_nm=0.15)  # 0.4 / 0.15 -> 4 windows with spacing 0.133 (both ends kept)
    np.testing.assert_allclose(s.centers(), np.linspace(0.2, 0.6, 4))
    recipe = {"pmf": [dict(BASE, name="a"), dict(BASE, name="b", cv={"kind": "height", "z0_nm": 1.0})]}
    specs = load_specs(recipe)
    assert [x.name for x in specs] == ["a", "b"] and specs[1].cv.kind == "height"
    assert not specs[1].is_radial and specs[0].is_radial


@pytest.mark.parametrize(
    "change, fragment",
    [
        (dict(kspring=5), "unknown field"),
        (dict(centers_nm=[0.25, 0.4, 0.6], spacing_nm=None), "do not cover range_nm"),
        (dict(spacing_nm=0.5), "wider than the range"),
        (dict(range_nm=[0.0, 0.5]), "must start above 0"),
        (dict(range_nm=[0.6, 0.2]), "lo < hi"),
        (dict(cv={"kind": "angle"}), "distance, height, site_distance"),
        (dict(cv={"kind": "distance", "cation_atoms": [-1], "partner": "DME"}), "non-negative"),
        (dict(cv={"kind": "height", "cation": "LI"}), "exactly one of"),
        (dict(k_kJ_mol_nm2=-1), "k_kJ_mol_nm2"),
    ],
)
def test_spec_errors_name_the_field(change, fragment):
    d = dict(BASE)
    d.update(change)
    d = {k: v for k, v in d.items() if v is not None}
    with pytest.raises(PMFSpecError) as e:
        load_spec(d)
    assert fragment in str(e.value)


def test_predicted_overlap_and_warning():
    s = spec(k_kJ_mol_nm2=4000, spacing_nm=0.04, range_nm=[0.3, 0.7])
    sigma = math.sqrt(s.kT / 4000)
    # overlap coefficient of two Gaussians one spacing apart: 2 Phi(-d / 2 sigma)
    np.testing.assert_allclose(predicted_overlap(s), 2 * norm.cdf(-0.04 / (2 * sigma)), rtol=1e-10)
    assert predicted_overlap(s)[0] == pytest.approx(0.4225, abs=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_windows(s) == []
    stiff = spec(k_kJ_mol_nm2=40000, spacing_nm=0.04, range_nm=[0.3, 0.7])
    with pytest.warns(PMFWarning, match=r"predicted to overlap 0\.01"):
        msgs = check_windows(stiff)
    # the suggested spacing restores the threshold overlap
    suggested = float(msgs[0].split("spacing <= ")[1].split(" nm")[0])
    ok = spec(k_kJ_mol_nm2=40000, spacing_nm=suggested, range_nm=[0.3, 0.7])
    assert predicted_overlap(ok).min() >= 0.099
    with pytest.raises(PMFSpecError, match="too weak"):  # refused by the spec itself, library and CLI alike
        spec(k_kJ_mol_nm2=10, range_nm=[0.3, 0.4], spacing_nm=0.05)
    borderline = spec(k_kJ_mol_nm2=300, range_nm=[0.3, 0.45], spacing_nm=0.05)  # sigma 0.091 nm > half the range
    with pytest.warns(PMFWarning, match="too weak"):
        check_windows(borderline)


# ---------------------------------------------------------------- CV force == numpy CV
def _bias_energy(system, rcv, pos, box, k, r0):
    system = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(system))
    cvmod.add_bias(system, rcv, k, r0)
    ctx = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    if box is not None:
        ctx.setPeriodicBoxVectors(*box)
    ctx.setPositions(pos)
    return ctx.getState(getEnergy=True, groups={cvmod.BIAS_GROUP}).getPotentialEnergy()._value


@pytest.mark.parametrize("triclinic", [False, True])
def test_distance_bias_matches_numpy_cv_minimum_image(triclinic):
    rng = np.random.default_rng(3)
    box = np.diag([3.0, 3.2, 3.4])
    if triclinic:
        box = np.array([[3.0, 0, 0], [1.0, 3.2, 0], [-0.6, 0.8, 3.4]])
    system = mm.System()
    for m in (6.9, 16.0, 12.0, 1.0):
        system.addParticle(m)
    system.setDefaultPeriodicBoxVectors(*box)
    nb = mm.NonbondedForce()
    nb.setNonbondedMethod(mm.NonbondedForce.CutoffPeriodic)
    for _ in range(4):
        nb.addParticle(0, 0.1, 0)
    system.addForce(nb)
    # group 2 = a 3-atom "molecule" (mass-weighted) straddling the periodic boundary from the cation
    rcv = ResolvedCV("distance", [[0], [1, 2, 3]], [[1.0], [16.0, 12.0, 1.0]], periodic=True)
    for _ in range(5):
        c = rng.uniform(0, 0.3, 3)
        mol = np.array([2.9, 0.1, 0.2]) + rng.normal(0, 0.05, (3, 3))
        pos = np.vstack([c, mol])
        x = cvmod.cv_value(rcv, pos, box)
        assert x < 1.0  # the minimum image, not the raw ~2.7 nm
        e = _bias_energy(system, rcv, pos, box, 1234.0, 0.4)
        assert e == pytest.approx(0.5 * 1234.0 * (x - 0.4) ** 2, rel=1e-6)


def test_height_bias_matches_numpy_cv():
    system = mm.System()
    for _ in range(5):
        system.addParticle(0.0)  # frozen surface: mass 0 must not break the centroid
    system.addParticle(6.9)
    pos = np.array([[0, 0, 0.50], [1, 0, 0.52], [0, 1, 0.48], [1, 1, 0.50], [0.5, 0.5, 0.5], [0.3, 0.2, 1.37]])
    rcv = ResolvedCV("height", [[5], [0, 1, 2, 3, 4]], [[1.0], [1.0] * 5])
    h = cvmod.cv_value(rcv, pos)
    assert h == pytest.approx(0.87)
    assert _bias_energy(system, rcv, pos, None, 500.0, 0.6) == pytest.approx(0.5 * 500 * (0.87 - 0.6) ** 2, rel=1e-6)
    plane = ResolvedCV("height", [[5]], [[1.0]], z0_nm=0.2)
    assert cvmod.cv_value(plane, pos) == pytest.approx(1.17)
    assert _bias_energy(system, plane, pos, None, 500.0, 1.0) == pytest.approx(0.5 * 500 * 0.17**2, rel=1e-6)


def test_cv_atoms_that_do_not_exist():
    system = mm.System()
    system.addParticle(1.0)
    system.addParticle(1.0)
    s = spec(cv={"kind": "distance", "cation_atoms": [0], "partner_atoms": [5]})
    with pytest.raises(CVSelectionError, match=r"partner_atoms names atoms \[5\] that do not exist.*2 atoms"):
        resolve_cv(s, system, np.zeros((2, 3)))
    s = spec(cv={"kind": "distance", "partner": "DME"})
    with pytest.raises(CVSelectionError, match="needs the topology"):
        resolve_cv(s, system, np.zeros((2, 3)))


# ---------------------------------------------------------------- automatic selection
def _toy_electrolyte():
    """3 Li+, 5 DME (O1 C1 O2), 1 FSI (O1 N1), 1 FE, 4 GRA carbons, in a 4 nm box.

    Li0 at (1,1,1): DME0 O at 0.21 nm, DME1 O at 0.19 nm      -> shell {DME: 2}
    Li1 at (3,3,3): DME2 O at 0.20 nm, FSI O at 0.20 nm       -> shell {DME: 1, FSI: 1}
    Li2 at (1,3,1.5): DME3 O at 0.20, DME4 O at 0.20          -> shell {DME: 2}
    """
    top = app.Topology()
    ch = top.addChain()
    E = app.Element.getBySymbol
    pos = []

    def res(name, atoms):
        r = top.addResidue(name, ch)
        for nm, el, p in atoms:
            top.addAtom(nm, E(el), r)
            pos.append(p)

    li = [np.array([1.0, 1.0, 1.0]), np.array([3.0, 3.0, 3.0]), np.array([1.0, 3.0, 1.5])]
    for p in li:
        res("LI", [("Li1", "Li", p)])
    ex = np.array([1, 0, 0.0])
    ey = np.array([0, 1, 0.0])

    def dme(o):
        res("DME", [("O1", "O", o), ("C1", "C", o + 0.14 * ey), ("O2", "O", o + 0.28 * ey)])

    dme(li[0] + 0.21 * ex)
    dme(li[0] - 0.19 * ex - 0.28 * ey)  # its O2 is the donor at 0.19 nm
    dme(li[1] + 0.20 * ex)
    dme(li[2] + 0.20 * ex)
    dme(li[2] - 0.20 * ex)
    res("FSI", [("O1", "O", li[1] - 0.20 * ex), ("N1", "N", li[1] - 0.35 * ex)])
    res("FE", [("Fe1", "Fe", np.array([3.0, 1.0, 0.5]))])
    res("GRA", [(f"C{i}", "C", np.array([0.5 + i, 0.5, 0.5])) for i in range(4)])
    system = mm.System()
    for a in top.atoms():
        system.addParticle(a.element.mass)
    box = np.diag([4.0, 4.0, 4.0])
    system.setDefaultPeriodicBoxVectors(*box)
    f = mm.NonbondedForce()
    f.setNonbondedMethod(mm.NonbondedForce.CutoffPeriodic)
    for _ in range(system.getNumParticles()):
        f.addParticle(0, 0.1, 0)
    system.addForce(f)
    return top, system, np.array(pos), box


def test_auto_selection_solvent_donor_and_com():
    top, system, pos, box = _toy_electrolyte()
    s = spec(cv={"kind": "distance", "cation": "LI", "partner": "DME"})
    rcv = resolve_cv(s, system, pos, box, top)
    # modal shell {DME: 2} (Li0 and Li2) -> lowest index Li0; its DME with the nearest donor is DME1 (O2, 0.19 nm)
    assert rcv.groups[0] == [0]
    dme1_o2 = 3 + 3 + 2
    assert rcv.groups[1] == [dme1_o2]
    assert rcv.meta["shell_composition"] == {"DME": 2}
    assert rcv.meta["partner_donor_distance_nm"] == pytest.approx(0.19)
    assert rcv.meta["moving_atoms"] == [6, 7, 8]  # the whole DME1 moves in placement
    assert cvmod.cv_value(rcv, pos, box) == pytest.approx(0.19)
    com = resolve_cv(spec(cv={"kind": "distance", "cation": "LI", "partner": "DME", "partner_site": "com"}),
                     system, pos, box, top)
    assert com.groups[1] == [6, 7, 8] and com.weights[1] == pytest.approx([15.999, 12.011, 15.999], abs=1e-2)


def test_auto_selection_anion_cip():
    top, system, pos, box = _toy_electrolyte()
    rcv = resolve_cv(spec(cv={"kind": "distance", "partner": "FSI"}), system, pos, box, top)
    assert rcv.groups[0] == [1]  # the only Li with an FSI in its shell
    assert rcv.groups[1] == [18]  # FSI O1
    with pytest.raises(CVSelectionError, match="no cation has a FSI donor"):
        resolve_cv(spec(cv={"kind": "distance", "partner": "FSI", "shell_cutoff_nm": 0.15}), system, pos, box, top)
    with pytest.raises(CVSelectionError, match="residues present: DME, FE, FSI, GRA, LI"):
        resolve_cv(spec(cv={"kind": "distance", "partner": "TFS"}), system, pos, box, top)


def test_auto_selection_height_and_site():
    top, system, pos, box = _toy_electrolyte()
    h = resolve_cv(spec(cv={"kind": "height", "surface": ["GRA"]}), system, pos, box, top)
    # Li0 (z=1.0) and Li2 (z=1.5) share the modal shell; Li0 is nearer the surface (z=0.5)
    assert h.groups == [[0], [21, 22, 23, 24]]
    assert cvmod.cv_value(h, pos) == pytest.approx(0.5)
    s = resolve_cv(spec(cv={"kind": "site_distance", "site_element": "Fe"}), system, pos, box, top)
    assert s.groups[1] == [20]
    d0 = np.linalg.norm(pos[0] - pos[20])
    d2 = np.linalg.norm(pos[2] - pos[20])
    assert s.groups[0] == ([0] if d0 < d2 else [2])
    with pytest.raises(CVSelectionError, match="site_element 'Zn' not in the structure"):
        resolve_cv(spec(cv={"kind": "site_distance", "site_element": "Zn"}), system, pos, box, top)


# ---------------------------------------------------------------- barrier + comparison
def _well(x, h=10.0, c=0.5, a=0.15):
    return h * ((x - c) ** 2 / a**2 - 1) ** 2


def test_find_barrier_on_exact_curve_and_bootstrap_errors():
    x = np.linspace(0.3, 0.7, 81)
    F = _well(x) - _well(x).min()
    rng = np.random.default_rng(0)
    boot = F[None, :] + rng.normal(0, 0.2, (400, len(x)))
    fb = find_barrier(x, F, boot, "low")
    assert x[fb["idx"]["bound"]] == pytest.approx(0.35)
    assert x[fb["idx"]["ts"]] == pytest.approx(0.5)
    assert fb["dG_barrier"][0] == pytest.approx(10.0)
    assert fb["dG_barrier"][1] == pytest.approx(0.2 * math.sqrt(2), rel=0.1)  # independent noise at two points
    assert fb["dG"][0] == pytest.approx(F[-1] - F[fb["idx"]["bound"]])
    assert x[fb["idx"]["product"]] == pytest.approx(0.65)
    hi = find_barrier(x, F, None, "high")  # mirrored: bound at 0.65, same barrier
    assert x[hi["idx"]["bound"]] == pytest.approx(0.65) and hi["dG_barrier"][0] == pytest.approx(10.0)
    rising = find_barrier(x, 50 * (x - 0.3), None, "low")  # no maximum inside: flagged
    assert rising["ts_at_range_end"] and rising["warnings"]


def test_compare_table_and_figure(tmp_path):
    paths = []
    for sysname, val, err in (("LiTFSI_DOLDME", 25.0, 0.8), ("Li_FeN4", 12.5, 1.1)):
        d = tmp_path / "results" / sysname / "pmf" / "li_dme"
        d.mkdir(parents=True)
        b = {
            "volume_term": "removed", "cv_kind": "distance",
            "dG_barrier_kJ_mol": val, "dG_barrier_err_kJ_mol": err,
            "dG_barrier_kcal_mol": val / KJ_PER_KCAL, "dG_barrier_err_kcal_mol": err / KJ_PER_KCAL,
            "dG_kJ_mol": 5.0, "dG_err_kJ_mol": 0.5, "dG_kcal_mol": 5 / KJ_PER_KCAL, "dG_err_kcal_mol": 0.5 / KJ_PER_KCAL,
            "bound_state": {"cv_nm": 0.2}, "transition_state": {"cv_nm": 0.3}, "ts_at_range_end": False,
            "min_neighbour_overlap": 0.1, "temperature_K": 298.15,
        }
        (d / "barrier.json").write_text(json.dumps(b))
        paths.append(d / "barrier.json")
    df = compare_barriers(paths, tmp_path / "barriers.csv", tmp_path / "barriers.png")
    assert list(df["system"]) == ["LiTFSI_DOLDME", "Li_FeN4"]  # from results/<system>/pmf/<cv>
    assert list(df["dG_barrier_kJ_mol"]) == [25.0, 12.5]
    assert df["dG_barrier_kcal_mol"].iloc[1] == pytest.approx(12.5 / 4.184)
    assert (tmp_path / "barriers.csv").read_text().startswith("system,cv,cv_kind,volume_term,dG_barrier_kJ_mol")
    import matplotlib.image as mpimg

    img = mpimg.imread(tmp_path / "barriers.png")
    assert img.shape[0] > 100 and img.shape[1] > 100
