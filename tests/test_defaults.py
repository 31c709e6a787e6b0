"""One home for the force-field defaults (issue 26): a recipe that says nothing and a library
caller that says nothing build the same System, and every default is read from
``solvmd.forcefield_settings``.

The forces test builds a small LiTFSI/DME box through ``solvmd.assembly.system.build_system``
(a recipe with no ``forcefield:`` block and no ``charge_scale``) and through
``solvmd.forcefield.create_system(topology, species)`` (no options), and compares the forces
of the two Systems (and their serialized XML) force by force. Packmol is replaced by a grid
placement here: the test is about the force field, and packing costs 9 s.
"""

from __future__ import annotations

import inspect

import numpy as np
import openmm
import pytest
from openmm import app, unit

from solvmd import forcefield, mixing
from solvmd.assembly import interface
from solvmd.assembly.system import build_system
from solvmd.forcefield_settings import DEFAULT_CHARGE_SCALE, DEFAULTS, ForceFieldSettings
from solvmd.recipe import Recipe

RECIPE = {  # no forcefield: block, no charge_scale: every setting is a default
    "name": "defaults_check",
    "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
    "solvents": [{"species": "DME", "volume_fraction": 1.0}],
    "size": {"salt_units": 6},  # box edge ~2.1 nm: twice the default 1.0 nm cutoff
    "packing": {"seed": 11, "nloop": 30},
}


def _defaults(func) -> dict:
    return {k: p.default for k, p in inspect.signature(func).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_the_defaults_are_the_recipe_defaults():
    recipe = Recipe.model_validate(RECIPE)
    assert recipe.forcefield == DEFAULTS == ForceFieldSettings()
    assert recipe.charge_scale == DEFAULT_CHARGE_SCALE
    assert (DEFAULTS.mixing, DEFAULTS.hydrogen_mass_amu, DEFAULTS.correction_cutoff_nm) == ("split", 3.0, 0.5)
    fields = set(ForceFieldSettings.model_fields)
    for func in (forcefield.create_system, forcefield.parameterize, forcefield.finish_nonbonded):
        d = _defaults(func)
        for name in fields & set(d):
            assert d[name] == getattr(DEFAULTS, name), f"{func.__name__}({name}=...)"
        if "mixing" in d:
            assert d["mixing"] == DEFAULTS.mixing
        if "charge_scale" in d:
            assert d["charge_scale"] == DEFAULT_CHARGE_SCALE
    assert set(_defaults(forcefield.create_system)) >= fields  # every setting is an argument with a default
    for func in (mixing.apply_geometric_mixing, interface.finish_interface_nonbonded):
        d = _defaults(func)
        assert d["mode" if "mode" in d else "mixing"] == DEFAULTS.mixing
        assert d["correction_cutoff_nm"] == DEFAULTS.correction_cutoff_nm


def _forces_by_group(system: openmm.System, positions) -> dict[int, np.ndarray]:
    system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))
    for i, f in enumerate(system.getForces()):
        f.setForceGroup(i)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(positions)
    return {i: ctx.getState(getForces=True, groups={i}).getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer) for i in range(system.getNumForces())}


def _grid_pack(counts, box_A, seed, **_):
    """Stand-in for packmol (9 s here): molecules on a cubic grid, same order and atom count."""
    from solvmd import species

    names = [n for n, c in counts.items() for _ in range(c)]
    n = int(np.ceil(len(names) ** (1 / 3)))
    cell = float(np.atleast_1d(box_A)[0]) / n
    xyz = []
    for k, name in enumerate(names):
        mol = species.get(name).coordinates(seed)
        centre = (np.array([k % n, (k // n) % n, k // (n * n)]) + 0.5) * cell
        xyz.append(mol - mol.mean(axis=0) + centre)
    return np.vstack(xyz)


def test_library_api_and_recipe_build_identical_forces(tmp_path, monkeypatch):
    import solvmd.assembly.system as system_module

    monkeypatch.setattr(system_module, "pack", _grid_pack)
    recipe = Recipe.model_validate(RECIPE)
    build_system(recipe, tmp_path, log=None)
    built = openmm.XmlSerializer.deserialize((tmp_path / "system.xml").read_text())
    pdb = app.PDBFile(str(tmp_path / "system.pdb"))
    pdb.topology.setPeriodicBoxVectors(built.getDefaultPeriodicBoxVectors())  # CRYST1 rounds the box to 1e-4 nm
    library = forcefield.create_system(pdb.topology, ["Li", "TFSI", "DME"])

    assert openmm.XmlSerializer.serialize(library) == openmm.XmlSerializer.serialize(built)

    assert [type(f).__name__ for f in library.getForces()] == [type(f).__name__ for f in built.getForces()]
    masses = [np.array([s.getParticleMass(i).value_in_unit(unit.dalton) for i in range(s.getNumParticles())])
              for s in (library, built)]
    np.testing.assert_array_equal(masses[0], masses[1])  # the same hydrogen mass repartitioning
    assert masses[0][[a.index for a in pdb.topology.atoms() if a.element.symbol == "H"]] == pytest.approx(3.0)
    fa, fb = _forces_by_group(library, pdb.positions), _forces_by_group(built, pdb.positions)
    for i in fa:
        scale = max(np.abs(fb[i]).max(), 1.0)
        assert np.abs(fa[i] - fb[i]).max() <= 1e-9 * scale, f"force {i} ({type(built.getForce(i)).__name__})"


def test_settings_path_equals_keyword_path():
    """system_from_settings (what a build calls) and create_system with the same values as
    keywords give the same System; a non-default value reaches both."""
    from solvmd.assembly.system import build_topology

    top = build_topology({"DME": 2}, (2.5, 2.5, 2.5))
    settings = ForceFieldSettings(mixing="fast", cutoff_nm=1.1, hydrogen_mass_amu=None)
    a = forcefield.system_from_settings(top, ["DME"], settings, charge_scale=0.7)
    b = forcefield.create_system(top, ["DME"], mixing="fast", cutoff_nm=1.1, hydrogen_mass_amu=None, charge_scale=0.7)
    assert openmm.XmlSerializer.serialize(a) == openmm.XmlSerializer.serialize(b)
