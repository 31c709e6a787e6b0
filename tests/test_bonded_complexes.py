"""Bonded Mg-Cl model of the chloro complexes (issue 13): parameters, System terms, bad input.

Small: one complex in vacuum-like box, a few hundred MD steps. The long runs in THF are
benchmarks/validation.py (system ``mgcl2_licl_thf_complexes_bonded``).
"""

from __future__ import annotations

import numpy as np
import openmm
import pytest
from openmm import unit

from solvmd import complexes
from solvmd.assembly.bonded_complexes import add_complex_bonds
from solvmd.assembly.complex_geometry import build_structure
from solvmd.assembly.system import build_topology
from solvmd.errors import SolvmdError
from solvmd.forcefield import create_system

DIMER = "Mg2Cl3_THF6_bonded"
MONO = "MgCl_THF5_bonded"


def _system(name: str, xyz_A: np.ndarray | None = None):
    st = build_structure(name)
    top = build_topology({name: 1}, (4.0, 4.0, 4.0))
    system = create_system(top, complexes.unit_members(name), cutoff_nm=1.0, charge_scale=0.8)
    el = [a.element.symbol for a in top.atoms()]
    xyz = (st.xyz_A if xyz_A is None else xyz_A) / 10.0 + 2.0
    recs = add_complex_bonds(system, {name: 1}, el, xyz)
    return system, el, xyz, recs, st


def test_bonded_entries_carry_the_seminario_terms_and_declared_geometry():
    cx = complexes.get(DIMER)
    p = complexes.bonded_parameters(cx.bonded.file, cx.bonded.entry)
    b, a = p["bonds"]["Mg-Cl_bridging"], p["angles"]["Mg-Cl-Mg"]
    assert cx.distances_A["bridging"] == pytest.approx(b["r_qm_A"], abs=0.02)
    assert cx.distances_A["metal_metal"] == pytest.approx(2 * b["r_qm_A"] * np.sin(np.radians(a["theta_qm_deg"]) / 2),
                                                          abs=0.02)
    assert 2.3 < b["r_qm_A"] < 2.8 and 50 < b["k_kJ_mol_A2"] < 1000
    # the effective r0/theta0 put the MM minimum of the isolated complex at the QM geometry
    for group, key in (("bonds", "r_qm_A"), ("angles", "theta_qm_deg")):
        for term in p[group].values():
            assert term["mm_minimum"] == pytest.approx(term[key], abs=0.01 if group == "bonds" else 0.3)
    assert complexes.get("Mg2Cl3_THF6").bonded is None  # the free-ion model stays available


def test_dimer_system_gets_bonds_angles_and_exclusions():
    system, el, xyz, recs, st = _system(DIMER)
    assert recs == [{"name": DIMER, "bonds": 6, "angles": 9,
                     "parameters": "forcefields/qm/mg_complexes_seminario.json#Mg2Cl3_THF6"}]
    bonds = next(f for f in system.getForces() if f.getName() == "ComplexBonds")
    angles = next(f for f in system.getForces() if f.getName() == "ComplexAngles")
    assert bonds.getNumBonds() == 6 and angles.getNumAngles() == 9
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    mg = [i for i, e in enumerate(el) if e == "Mg"]
    pairs = {tuple(sorted(nb.getExceptionParameters(k)[:2])): nb.getExceptionParameters(k)[2]
             for k in range(nb.getNumExceptions())}
    cl = sorted(st.bridging)
    # Mg-Cl (1-2) and Cl...Cl (1-3 through Mg) are excluded; Mg...Mg (1-3 through each mu-Cl) is NOT (issue 29)
    assert all(pairs[(m, c)].value_in_unit(unit.elementary_charge**2) == 0.0 for m in mg for c in cl)
    assert all((a, b) in pairs for i, a in enumerate(cl) for b in cl[i + 1:])
    assert tuple(mg) not in pairs
    assert nb.getParticleParameters(mg[0])[0].value_in_unit(unit.elementary_charge) == pytest.approx(1.6)
    for f in system.getForces():
        if isinstance(f, openmm.CustomNonbondedForce):
            excl = {tuple(sorted(f.getExclusionParticles(k))) for k in range(f.getNumExclusions())}
            assert tuple(mg) not in excl and (mg[0], cl[0]) in excl


def test_bonded_dimer_holds_its_core_in_short_md():
    system, el, xyz, _, st = _system(DIMER)
    integ = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 5 / unit.picosecond, 0.002 * unit.picoseconds)
    integ.setRandomNumberSeed(3)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(xyz * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(ctx, 1.0, 500)
    ctx.setVelocitiesToTemperature(300 * unit.kelvin, 3)
    mg = [i for i, e in enumerate(el) if e == "Mg"]
    mm = []
    for _ in range(10):
        integ.step(50)
        x = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        mm.append(np.linalg.norm(x[mg[0]] - x[mg[1]]))
        d = np.linalg.norm(x[st.bridging][:, None] - x[mg][None], axis=2)
        assert d.max() < 2.9  # all six Mg-(mu-Cl) bonds held
    assert 2.9 < np.mean(mm) < 3.5


def test_packed_geometry_that_is_not_the_declared_one_is_refused():
    st = build_structure(DIMER)
    xyz = st.xyz_A.copy()
    xyz[st.bridging[0]] += [0.0, 0.0, 1.0]  # a bridging Cl 1 A off its site
    with pytest.raises(SolvmdError, match="not the declared complex geometry"):
        _system(DIMER, xyz)


@pytest.mark.parametrize("change, words", [
    ({"distances_A": {"O": 2.09, "bridging": 2.40, "metal_metal": 3.15}}, "distances_A"),
    ({"bonded": {"file": "qm/mg_complexes_seminario.json", "entry": "nope"}}, "bonded"),
    ({"bonded": {"file": "qm/missing.json", "entry": "Mg2Cl3_THF6"}}, "not found"),
])
def test_bad_bonded_definitions_name_the_field(change, words):
    entry = {**complexes.get(DIMER).model_dump(), **change}
    with pytest.raises(SolvmdError, match=words):
        complexes.parse_complexes({"MgX": entry}, "complexes.yaml")


def test_monomer_bond_only():
    system, *_ , recs, _ = _system(MONO)
    assert recs[0]["bonds"] == 1 and recs[0]["angles"] == 0


def test_build_system_bonds_the_recipe_complex(tmp_path):
    from solvmd.assembly.system import build_system, load_build
    from solvmd.recipe import parse_recipe

    r = parse_recipe({"name": "apc_bonded_tiny", "salts": [{"cation": DIMER, "anion": "Cl", "molar_ratio": 1}],
                      "solvents": [{"species": "THF", "molar_ratio": 30}], "size": {"salt_units": 1},
                      "forcefield": {"cutoff_nm": 0.7}})
    build_system(r, tmp_path / "b")
    pdb, system, man = load_build(tmp_path / "b")
    assert man["bonded_complexes"] == [{"name": DIMER, "bonds": 6, "angles": 9,
                                        "parameters": "forcefields/qm/mg_complexes_seminario.json#Mg2Cl3_THF6"}]
    names = [f.getName() for f in system.getForces()]
    assert "ComplexBonds" in names and "ComplexAngles" in names
    xyz = np.array(pdb.getPositions(asNumpy=True).value_in_unit(unit.angstrom))
    inst = man["complexes"][0]["instances"][0]
    assert np.linalg.norm(xyz[inst["metals"][0]] - xyz[inst["metals"][1]]) == pytest.approx(3.021, abs=2e-3)


HOT_K = 450.0  # K, the anneal temperature of the validation protocol
HOT_PS = 20.0  # ps of MD at HOT_K, sampled every 0.2 ps


def test_bonded_dimer_keeps_mg_mg_apart_in_hot_thf(tmp_path):
    """Issue 29: [Mg2(mu-Cl)3(THF)6]+ + Cl- in 20 THF (344 atoms), built by build_system (audit and
    cation guard included), 20 ps at 450 K (4 fs, HMR, as the validation anneal).

    With the Mg...Mg pair kept (full Coulomb + LJ) the mean Mg...Mg over 8 velocity seeds was
    2.91-2.95 A (minimised 3.03 A; per-run sd 0.1 A), the lowest frame 2.61 A, although the Mg lose
    about a third of their THF at 450 K. The model does not reach the 3.1-3.2 A crystal value
    (its GFN2-xTB reference minimum is 3.02 A), so that range is not asserted; asserted is what
    a collapsed dimer fails: the mean above 2.8 A, no frame below 2.3 A, every mu-Cl bridge held.
    The pre-issue-29 model (Mg...Mg excluded) gave means 2.39-2.89 A and lowest frames
    1.84-2.52 A over 6 seeds in the same box (falling towards 1.2 A in longer runs in solution).
    """
    from solvmd.assembly.system import build_system, load_build
    from solvmd.recipe import parse_recipe

    r = parse_recipe({"name": "dimer_hot", "salts": [{"cation": DIMER, "anion": "Cl", "molar_ratio": 1}],
                      "solvents": [{"species": "THF", "molar_ratio": 20}], "size": {"salt_units": 1},
                      "forcefield": {"cutoff_nm": 0.7}, "packing": {"seed": 5}})
    build_system(r, tmp_path / "b")
    pdb, system, man = load_build(tmp_path / "b")
    inst = man["complexes"][0]["instances"][0]
    mg, br = inst["metals"], inst["bridging"]
    integ = openmm.LangevinMiddleIntegrator(HOT_K * unit.kelvin, 1 / unit.picosecond, 0.004 * unit.picoseconds)
    integ.setRandomNumberSeed(11)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 1000)
    ctx.setVelocitiesToTemperature(HOT_K * unit.kelvin, 11)
    mm, bridge = [], []
    for _ in range(int(HOT_PS / 0.2)):
        integ.step(50)
        x = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        mm.append(np.linalg.norm(x[mg[0]] - x[mg[1]]))  # a complex's atoms stay unwrapped (whole molecules)
        bridge.append(np.linalg.norm(x[br][:, None] - x[mg][None], axis=2).max())
    assert 2.8 < np.mean(mm) < 3.3
    assert min(mm) > 2.3
    assert max(bridge) < 3.0
