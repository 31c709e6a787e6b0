"""Exclusion audit and cation-separation guard of built systems (issue 29, solvmd/assembly/guards.py).

The audit runs on every bonded complex of forcefields/complexes.yaml (each mixing form) and on
every recipe in systems/ that uses one, at its full size; negative controls show that it
catches the pre-issue-29 rule (Mg...Mg excluded) and a duplicated exclusion, and that it leaves
a molecule's own intramolecular exclusions alone. The guard refuses, before anything is
written, a build whose minimised structure puts two cations closer than 2.0 A.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openmm
import pytest
from openmm import unit

from solvmd import complexes
from solvmd import species as species_registry
from solvmd.assembly import guards
from solvmd.assembly.bonded_complexes import add_complex_bonds
from solvmd.assembly.complex_geometry import build_structure
from solvmd.assembly.composition import resolve
from solvmd.assembly.system import build_topology
from solvmd.errors import SolvmdError
from solvmd.forcefield import create_system
from solvmd.recipe import load_recipe, parse_recipe

ROOT = Path(__file__).resolve().parents[1]
BONDED = sorted(n for n, cx in complexes.registry().items() if cx.bonded is not None)
DIMER = "Mg2Cl3_THF6_bonded"


def _ideal_positions_nm(units: dict[str, int]) -> np.ndarray:
    """Positions (nm) for ``units`` in packing order: each complex at its ideal geometry, other
    species at their registry conformer, copies shifted 0.05 nm apart; not a liquid, only
    coordinates that the bonded-geometry check of add_complex_bonds accepts."""
    blocks = []
    for name, count in units.items():
        xyz = (build_structure(name).xyz_A if complexes.is_complex(name)
               else species_registry.get(name).coordinates()) / 10.0
        blocks += [xyz + 0.05 * k for k in range(count)]
    return np.concatenate(blocks)


def _one_complex(name: str, mixing: str = "split", charge_scale: float = 0.8):
    top = build_topology({name: 1}, (4.0, 4.0, 4.0))
    system = create_system(top, complexes.unit_members(name), cutoff_nm=1.0, charge_scale=charge_scale, mixing=mixing)
    st = build_structure(name)
    add_complex_bonds(system, {name: 1}, [a.element.symbol for a in top.atoms()], st.xyz_A / 10.0 + 2.0,
                      charge_scale=charge_scale)
    return system, top, st


def test_there_are_bonded_complexes_to_audit():
    assert BONDED == ["Mg2Cl3_THF6_bonded", "MgCl_THF5_bonded"]


@pytest.mark.parametrize("mixing", ["split", "exact", "fast"])
@pytest.mark.parametrize("name", BONDED)
def test_every_bonded_complex_passes_the_exclusion_audit(name, mixing):
    system, top, st = _one_complex(name, mixing)
    assert guards.exclusion_audit(system, top) == []
    if len(st.metals) == 2:  # the two Mg (+1.6 e each) keep their nonbonded pair in every force
        pair = tuple(sorted(st.metals))
        for f in system.getForces():
            if isinstance(f, openmm.NonbondedForce):
                assert pair not in {tuple(sorted(f.getExceptionParameters(k)[:2])) for k in range(f.getNumExceptions())}
            if isinstance(f, openmm.CustomNonbondedForce):
                assert pair not in {tuple(sorted(f.getExclusionParticles(k))) for k in range(f.getNumExclusions())}


def _recipes_with_bonded_complexes() -> list[Path]:
    out = []
    for path in sorted((ROOT / "systems").glob("*.yaml")):
        text = path.read_text()
        if any(name in text for name in BONDED):
            out.append(path)
    return out


def test_recipe_list_is_not_empty():
    assert [p.name for p in _recipes_with_bonded_complexes()] == ["mgcl2_licl_thf_complexes_bonded.yaml"]


@pytest.mark.parametrize("path", _recipes_with_bonded_complexes(), ids=lambda p: p.stem)
def test_every_recipe_with_bonded_complexes_passes_the_exclusion_audit(path):
    """The whole recipe System at its own size, charge scale and mixing (no packing: ideal coordinates)."""
    recipe = load_recipe(path)
    comp, ffs = resolve(recipe), recipe.forcefield
    top = build_topology(comp.units, (comp.box_nm,) * 3)
    system = create_system(top, list(comp.counts), cutoff_nm=ffs.cutoff_nm, charge_scale=recipe.charge_scale,
                           mixing=ffs.mixing, correction_cutoff_nm=ffs.correction_cutoff_nm)
    recs = add_complex_bonds(system, comp.units, [a.element.symbol for a in top.atoms()],
                             _ideal_positions_nm(comp.units), charge_scale=recipe.charge_scale)
    assert {r["name"] for r in recs} == {n for n in comp.units if n in BONDED}
    assert guards.exclusion_audit(system, top) == []


def test_audit_catches_an_excluded_metal_pair_and_a_duplicate():
    system, top, st = _one_complex(DIMER, "exact")
    m1, m2 = st.metals
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    nb.addException(m1, m2, 0.0, 0.1, 0.0, True)  # the pre-issue-29 rule: Mg...Mg excluded as a 1-3 pair
    lj = next(f for f in system.getForces() if isinstance(f, openmm.CustomNonbondedForce))
    lj.addExclusion(m1, st.bridging[0])  # already excluded: now listed twice
    problems = guards.exclusion_audit(system, top)
    assert len(problems) == 2
    assert f"atoms {min(m1, st.bridging[0])}-{max(m1, st.bridging[0])} listed 2 times" in problems[0]
    assert f"Mg (atom {m1}, residue MG" in problems[1] and f"Mg (atom {m2}, residue MG" in problems[1]
    assert "+1.60, +1.60 e" in problems[1]
    with pytest.raises(SolvmdError, match="exclusion audit failed"):
        guards.check_exclusions(system, top)


def test_audit_leaves_intramolecular_exclusions_alone():
    """TFSI- at full charges: S (+1.02 e) ... S is a 1-3 pair of the molecule's own bonds,
    excluded by its own force field; the audit does not flag it."""
    top = build_topology({"TFSI": 1, "Li": 1}, (3.0, 3.0, 3.0))
    system = create_system(top, ["TFSI", "Li"], charge_scale=1.0)
    q = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    s_atoms = [a.index for a in top.atoms() if a.element.symbol == "S"]
    assert [q.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) for i in s_atoms] == [1.02, 1.02]
    assert guards.exclusion_audit(system, top) == []


def test_bonded_terms_fitted_at_another_charge_scale_are_refused():
    with pytest.raises(SolvmdError, match=r"fitted at charge_scale 0.8, the recipe has charge_scale 1.0"):
        _one_complex(DIMER, charge_scale=1.0)


def test_closest_pair_uses_the_minimum_image():
    xyz = np.array([[0.5, 5.0, 5.0], [9.8, 5.0, 5.0], [5.0, 5.0, 5.0]])
    r, i, j = guards.closest_pair_A(xyz, [0, 1, 2], np.array([10.0, 10.0, 10.0]))
    assert (round(r, 6), i, j) == (0.7, 0, 1)
    assert guards.closest_pair_A(xyz, [0], None) == (float("inf"), -1, -1)


def test_build_refuses_collapsing_cations_and_writes_nothing(tmp_path, monkeypatch):
    """A (deliberately broken) bonded model whose Mg-Cl-Mg angle (10 deg, very stiff) pulls the
    two Mg together against their Coulomb repulsion: the minimised build is refused, naming
    the two Mg, and the output folder stays empty."""
    from solvmd.assembly.system import build_system

    good = complexes.bonded_parameters("qm/mg_complexes_seminario.json", "Mg2Cl3_THF6")
    broken = {"bonds": good["bonds"],
              "angles": {"Cl-Mg-Cl": good["angles"]["Cl-Mg-Cl"],
                         "Mg-Cl-Mg": dict(good["angles"]["Mg-Cl-Mg"], theta0_deg=10.0, k_kJ_mol_rad2=1e5)}}
    monkeypatch.setattr(complexes, "bonded_parameters", lambda file, entry: broken)
    r = parse_recipe({"name": "collapse", "salts": [{"cation": DIMER, "anion": "Cl", "molar_ratio": 1}],
                      "solvents": [{"species": "THF", "molar_ratio": 20}], "size": {"salt_units": 1},
                      "forcefield": {"cutoff_nm": 0.7}, "packing": {"seed": 5}})
    out = tmp_path / "b"
    with pytest.raises(SolvmdError) as err:
        build_system(r, out)
    msg = str(err.value)
    assert msg.startswith("build refused: after energy minimization the cations Mg (atom 0, residue MG 0) and "
                          "Mg (atom 1, residue MG 1) are ")
    assert float(msg.split(" are ")[1].split(" A apart")[0]) < 2.0
    assert not out.exists() or list(out.iterdir()) == []
