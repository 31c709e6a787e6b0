"""Issue 11: split and fast geometric mixing against the exact form, HMR masses, 4 fs / anneal / bad input."""

import numpy as np
import openmm
import pytest
from openmm import app, unit

from solvmd.assembly.interface import build_interface
from solvmd.assembly.system import build_system, load_build
from solvmd.errors import SolvmdError
from solvmd.forcefield import create_system
from solvmd.md.engine import run_md
from solvmd.md.protocol import load_protocol
from solvmd.mixing import apply_geometric_mixing
from solvmd.recipe import parse_interface_recipe, parse_recipe

LHCE = {  # ions, an ether and a fluoroether: every kind of sigma the electrolytes mix
    "name": "mix_lhce",
    "salts": [{"cation": "Li", "anion": "FSI", "molar_ratio": 1.0}],
    "solvents": [{"species": "DME", "molar_ratio": 1.2}, {"species": "TTE", "molar_ratio": 3.0}],
    "size": {"salt_units": 5},
    "forcefield": {"cutoff_nm": 0.8},
}
INTERFACE = {
    "name": "mix_iface",
    "electrolyte": {"name": "e", "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
                    "solvents": [{"species": "DME", "volume_fraction": 1.0}], "size": {"salt_units": 2},
                    "forcefield": {"cutoff_nm": 0.8}},
    "surface": {"kind": "MN4", "metal": "Zn", "size_nm": [1.7, 1.7]},
    "slab": {"liquid_thickness_nm": 1.8},
    "lj_overrides": [{"a": "metal", "b": "Li", "sigma_nm": 0.26, "epsilon_kJ_mol": 0.2, "note": "test"}],
}
CPU = openmm.Platform.getPlatformByName("CPU")


def _forces_energy(system: openmm.System, positions) -> tuple[np.ndarray, float]:
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), CPU, {"Threads": "1"})
    ctx.setPositions(positions)
    state = ctx.getState(getForces=True, getEnergy=True)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return forces, state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def _relaxed(system: openmm.System, positions):
    """Positions after a short minimization (liquid-like forces, no packing overlaps)."""
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), CPU, {"Threads": "1"})
    ctx.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 50.0, 300)
    return ctx.getState(getPositions=True).getPositions()


@pytest.fixture(scope="module")
def lhce_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("lhce") / "build"
    build_system(parse_recipe(LHCE), out)
    return out


def _lhce_system(build, mixing: str, cutoff: float = 0.5) -> openmm.System:
    pdb, _, manifest = load_build(build)
    names = [row["name"] for row in manifest["species"]]
    return create_system(pdb.topology, names, cutoff_nm=0.8, mixing=mixing, correction_cutoff_nm=cutoff)


def test_fast_mixing_matches_exact_forces_and_energy(lhce_build):
    """Li+, FSI-, DME, TTE: rms force error < 0.2 % of the rms force, energy within 0.02 kJ/mol per atom;
    the error shrinks as the correction cutoff grows, and it is far below the plain-LB error."""
    pdb, _, _ = load_build(lhce_build)
    exact = _lhce_system(lhce_build, "exact")
    pos = _relaxed(exact, pdb.positions)
    f_ref, e_ref = _forces_energy(exact, pos)
    rms = np.sqrt((f_ref**2).sum(1).mean())
    errors = {}
    for cutoff in (0.5, 0.6):
        f, e = _forces_energy(_lhce_system(lhce_build, "fast", cutoff), pos)
        errors[cutoff] = np.sqrt(((f - f_ref) ** 2).sum(1).mean())
        assert abs(e - e_ref) / len(f) < 0.02, (cutoff, e, e_ref)
    lb = create_system(pdb.topology, ["Li", "FSI", "DME", "TTE"], cutoff_nm=0.8, combining_rule="lorentz-berthelot")
    f_lb, _ = _forces_energy(lb, pos)
    lb_error = np.sqrt(((f_lb - f_ref) ** 2).sum(1).mean())
    assert errors[0.5] < 2e-3 * rms, (errors, rms)
    assert errors[0.6] < errors[0.5]
    assert errors[0.5] < 0.05 * lb_error  # the correction really removes the LB error


def test_split_mixing_is_the_exact_geometric_energy(lhce_build):
    """Li+, FSI-, DME, TTE (1-4 pairs included): the split form (two NonbondedForces) gives the
    exact form's forces and energy to single-precision round-off, 1000x closer than the fast form."""
    pdb, _, _ = load_build(lhce_build)
    exact = _lhce_system(lhce_build, "exact")
    pos = _relaxed(exact, pdb.positions)
    f_ref, e_ref = _forces_energy(exact, pos)
    split = _lhce_system(lhce_build, "split")
    assert [f.getName() for f in split.getForces() if isinstance(f, openmm.NonbondedForce)][1] == "LennardJonesDispersion"
    assert not any(isinstance(f, openmm.CustomNonbondedForce) for f in split.getForces())
    f, e = _forces_energy(split, pos)
    rms = np.sqrt((f_ref**2).sum(1).mean())
    assert np.sqrt(((f - f_ref) ** 2).sum(1).mean()) < 1e-5 * rms
    assert abs(e - e_ref) < 1e-6 * abs(e_ref) + 1e-3 * len(f) ** 0.5, (e, e_ref)


def test_split_mixing_long_range_correction_is_the_exact_one(lhce_build):
    """The dispersion-correction energy (both split NonbondedForces) equals the exact form's."""
    pdb, _, _ = load_build(lhce_build)
    energies = {}
    for mixing in ("exact", "split"):
        system = _lhce_system(lhce_build, mixing)
        for f in system.getForces():
            f.setForceGroup(1 if isinstance(f, (openmm.NonbondedForce, openmm.CustomNonbondedForce)) else 0)
        on = _forces_energy(system, pdb.positions)[1]
        for f in system.getForces():
            if isinstance(f, openmm.NonbondedForce):
                f.setUseDispersionCorrection(False)
            elif isinstance(f, openmm.CustomNonbondedForce):
                f.setUseLongRangeCorrection(False)
        energies[mixing] = on - _forces_energy(system, pdb.positions)[1]
    assert energies["exact"] < -10.0  # a real correction (kJ/mol), not zero
    assert energies["split"] == pytest.approx(energies["exact"], rel=1e-4)


@pytest.mark.parametrize("mixing, tolerance", [("fast", 2e-3), ("split", 1e-5)])
def test_mixing_interface_with_frozen_sheet_and_override(tmp_path, mixing, tolerance):
    """Zn-N4 sheet + Li/TFSI/DME with a metal-Li override: the fast and split builds reproduce the
    exact one (rms force error below ``tolerance`` x the rms force)."""
    builds = {}
    for mixing in ("exact", mixing):
        raw = {**INTERFACE, "name": f"iface_{mixing}",
               "electrolyte": {**INTERFACE["electrolyte"],
                               "forcefield": {"cutoff_nm": 0.8, "mixing": mixing}}}
        build_interface(parse_interface_recipe(raw, "t.yaml"), tmp_path / mixing)
        builds[mixing] = load_build(tmp_path / mixing)
    (pdb, exact, man_e), (_, fast, man_f) = builds["exact"], builds[mixing]
    assert (man_e["mixing"], man_f["mixing"]) == ("exact", mixing)
    frozen = range(*man_f["frozen_atoms"])
    assert all(fast.getParticleMass(i).value_in_unit(unit.dalton) == 0.0 for i in frozen)
    pos = _relaxed(exact, pdb.positions)
    f_ref, e_ref = _forces_energy(exact, pos)
    f, e = _forces_energy(fast, pos)
    mobile = [i for i in range(len(f)) if i not in frozen]
    rms = np.sqrt((f_ref[mobile] ** 2).sum(1).mean())
    assert np.sqrt(((f - f_ref)[mobile] ** 2).sum(1).mean()) < tolerance * rms
    assert abs(e - e_ref) / len(f) < 10 * tolerance
    if mixing == "split":  # the sheet's long-range-correction share stays removed when the barostat grows the box
        assert any(f.getName() == "SheetLongRangeCorrectionRemoval" for f in fast.getForces())
        for system in (exact, fast):
            a, b, c = system.getDefaultPeriodicBoxVectors()
            system.setDefaultPeriodicBoxVectors(a, b, c * 1.2)
        assert _forces_energy(fast, pos)[1] == pytest.approx(_forces_energy(exact, pos)[1], abs=10 * tolerance * len(f))


@pytest.mark.parametrize("mixing", ["fast", "split"])
def test_override_is_exact_beyond_the_correction_cutoff(mixing):
    """A pair override between two particles at 0.7 nm (outside the 0.5 nm correction) is exact."""
    system = openmm.System()
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(1.2)
    for sigma, eps in ((0.35, 0.276), (0.21, 0.0753)):
        system.addParticle(10.0)
        nb.addParticle(0.0, sigma, eps)
    system.addForce(nb)
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) * 4.0 for row in np.eye(3)))
    from solvmd.mixing import PairOverride
    apply_geometric_mixing(system, [PairOverride((0,), (1,), 0.30, 1.5)], mode=mixing, correction_cutoff_nm=0.5)
    for f in system.getForces():
        f.setForceGroup(1 if f.getName().startswith("LennardJonesOverride") or isinstance(f, openmm.NonbondedForce)
                        or f.getName() == "LennardJonesGeometricCorrection" else 0)
        if isinstance(f, openmm.CustomNonbondedForce):
            f.setUseLongRangeCorrection(False)
        if isinstance(f, openmm.NonbondedForce):
            f.setForceGroup(1)
            f.setUseDispersionCorrection(False)
    for r in (0.33, 0.7):
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions([[1.0, 1.0, 1.0], [1.0 + r, 1.0, 1.0]])
        energy = ctx.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        assert energy == pytest.approx(4 * 1.5 * ((0.30 / r) ** 12 - (0.30 / r) ** 6), rel=1e-6)


def test_hydrogen_mass_repartitioning_moves_mass_only_between_h_and_its_heavy_atom(lhce_build):
    pdb, _, _ = load_build(lhce_build)
    names = ["Li", "FSI", "DME", "TTE"]
    plain = create_system(pdb.topology, names, cutoff_nm=0.8, hydrogen_mass_amu=None)
    hmr = create_system(pdb.topology, names, cutoff_nm=0.8, hydrogen_mass_amu=3.0)
    m0 = np.array([plain.getParticleMass(i).value_in_unit(unit.dalton) for i in range(plain.getNumParticles())])
    m1 = np.array([hmr.getParticleMass(i).value_in_unit(unit.dalton) for i in range(hmr.getNumParticles())])
    elements = [a.element.symbol for a in pdb.topology.atoms()]
    assert m1.sum() == pytest.approx(m0.sum(), rel=1e-12)
    assert all(m == pytest.approx(3.0) for m, el in zip(m1, elements) if el == "H")
    li = [i for i, el in enumerate(elements) if el == "Li"]
    assert np.array_equal(m0[li], m1[li])  # ions without H are untouched
    assert min(m for m, el in zip(m1, elements) if el != "H") > 5.0  # no heavy atom stripped (methyl C keeps 12.011 - 3 x 1.99 = 6.0)


@pytest.mark.parametrize("field, value, message", [
    ("hydrogen_mass_amu", 4.0, "hydrogen_mass_amu"),
    ("hydrogen_mass_amu", 0.5, "hydrogen_mass_amu"),
    ("correction_cutoff_nm", 0.9, "correction_cutoff_nm"),
    ("mixing", "approximate", "mixing"),
])
def test_bad_forcefield_settings_are_refused(field, value, message):
    with pytest.raises(SolvmdError, match=message):
        parse_recipe({**LHCE, "forcefield": {"cutoff_nm": 0.8, field: value}})


def test_4fs_without_hmr_and_cold_anneal_are_refused(tmp_path):
    raw = {**LHCE, "name": "no_hmr", "forcefield": {"cutoff_nm": 0.8, "hydrogen_mass_amu": None}}
    build_system(parse_recipe(raw), tmp_path / "b")
    with pytest.raises(SolvmdError, match=r"timestep_fs = 4.0 needs hydrogen mass repartitioning"):
        run_md(tmp_path / "b", tmp_path / "md", load_protocol(None, {"timestep_fs": 4.0}))
    with pytest.raises(SolvmdError, match=r"anneal_K = 298.0 K must be above the run temperature"):
        run_md(tmp_path / "b", tmp_path / "md", load_protocol(None, {"timestep_fs": 2.0, "anneal_K": 298.0,
                                                                     "anneal_ps": 1.0}))
    with pytest.raises(SolvmdError, match="anneal_ps"):
        load_protocol(None, {"anneal_K": 450.0})
    assert not (tmp_path / "md" / "md.json").exists()


def test_annealed_run_at_4fs_records_stages_timestep_and_mass(lhce_build, tmp_path):
    protocol = dict(friction_per_ps=5.0, heat_ps=0.4, anneal_K=450.0, anneal_ps=0.8, cool_ps=0.4, equilibrate_ps=0.4, production_ps=0.8,
                    report_interval_ps=0.2, frame_interval_ps=0.2, checkpoint_interval_ps=0.4, platform="CPU")
    info = run_md(lhce_build, tmp_path / "md", load_protocol(None, protocol))
    assert info["timestep_fs"] == 4.0 and info["hydrogen_mass_amu"] == 3.0 and info["mixing"] == "split"
    assert list(info["stages"]) == ["minimize", "heat", "anneal", "cool", "equilibrate", "production"]
    assert info["stages"]["anneal"] == {"start_step": 100, "steps": 200, "npt": False, "T_from_K": 450.0,
                                        "T_to_K": 450.0}
    assert info["stages"]["cool"]["T_to_K"] == 298.15
    import pandas as pd
    thermo = pd.read_csv(tmp_path / "md" / "thermo.csv")
    assert list(thermo["stage"].unique()) == ["heat", "anneal", "cool", "equilibrate", "production"]
    # the anneal really heats: mean T over its second half well above the run temperature
    anneal = thermo[thermo.stage == "anneal"]
    assert anneal["T_K"].iloc[len(anneal) // 2:].mean() > 350.0
    assert info["n_frames"] == 4 and np.isfinite(thermo["Epot_kJ_mol"]).all()


def _cutoffs_by_group(system: openmm.System) -> dict[int, set[float]]:
    """Cutoff distances (nm) of the cutoff-using nonbonded forces, per force group."""
    groups: dict[int, set[float]] = {}
    for f in system.getForces():
        if isinstance(f, (openmm.NonbondedForce, openmm.CustomNonbondedForce)) and f.usesPeriodicBoundaryConditions():
            groups.setdefault(f.getForceGroup(), set()).add(round(f.getCutoffDistance().value_in_unit(unit.nanometer), 9))
    return groups


def test_one_cutoff_per_force_group_as_cuda_requires(lhce_build, tmp_path):
    """CUDA/OpenCL refuse two cutoffs in one force group: the 0.5 nm correction has a group of its own,
    on the bulk build and on an interface with a frozen sheet and a metal-Li override."""
    raw = {**INTERFACE, "name": "iface_groups",
           "electrolyte": {**INTERFACE["electrolyte"], "forcefield": {"cutoff_nm": 0.8, "mixing": "fast"}}}
    build_interface(parse_interface_recipe(raw, "t.yaml"), tmp_path / "iface")
    for system in (_lhce_system(lhce_build, "fast"), load_build(tmp_path / "iface")[1]):
        groups = _cutoffs_by_group(system)
        assert all(len(c) == 1 for c in groups.values()), groups
        assert sorted(c.pop() for c in groups.values()) == [0.5, 0.8]
    assert _cutoffs_by_group(_lhce_system(lhce_build, "split")) == {0: {0.8}}  # split: one cutoff only
