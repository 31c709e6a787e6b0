"""System creation: charge scaling per species, every recipe parameterizes, OPLS 1-4 rules."""

import glob

import numpy as np
import pytest
from openmm import unit

from solvmd import species
from solvmd.assembly.composition import resolve
from solvmd.assembly.system import build_topology
from solvmd.forcefield import create_system, nonbonded_force
from solvmd.recipe import load_recipe


def _residue_charges(system, topology):
    nb = nonbonded_force(system)
    return [(res.name, sum(nb.getParticleParameters(a.index)[0].value_in_unit(unit.elementary_charge)
                           for a in res.atoms())) for res in topology.residues()]


@pytest.mark.parametrize("scale", [0.8, 0.7, 1.0])
def test_each_species_charge_is_formal_times_scale(scale):
    names = list(species.registry())
    top = build_topology({n: 1 for n in names}, (4.0, 4.0, 4.0))
    system = create_system(top, names, charge_scale=scale)
    by_res = {species.get(n).residue: species.get(n) for n in names}
    for resname, q in _residue_charges(system, top):
        sp = by_res[resname]
        expected = sp.charge * scale if sp.charge else 0.0
        assert q == pytest.approx(expected, abs=1e-6), resname


def test_ionic_one_four_coulomb_scaled_by_scale_squared():
    top = build_topology({"TFSI": 1}, (4.0, 4.0, 4.0))
    systems = [create_system(top, ["TFSI"], charge_scale=s) for s in (1.0, 0.8)]  # keep Systems alive
    full, scaled = (nonbonded_force(s) for s in systems)
    for k in range(full.getNumExceptions()):
        qq_full = full.getExceptionParameters(k)[2].value_in_unit(unit.elementary_charge**2)
        qq_scaled = scaled.getExceptionParameters(k)[2].value_in_unit(unit.elementary_charge**2)
        assert qq_scaled == pytest.approx(0.64 * qq_full, abs=1e-9)


def test_one_four_pairs_are_opls():
    """1-4 pairs: half the Coulomb product and half the geometric LJ epsilon, geometric sigma."""
    top = build_topology({"DME": 1}, (4.0, 4.0, 4.0))
    ff_system = create_system(top, ["DME"], combining_rule="lorentz-berthelot")
    system = create_system(top, ["DME"], mixing="exact")  # its 1-4 LJ stays in the NonbondedForce exceptions
    nb_lb, nb = nonbonded_force(ff_system), nonbonded_force(system)
    raw = {}
    for i in range(nb_lb.getNumParticles()):
        q, s, e = nb_lb.getParticleParameters(i)
        raw[i] = (q.value_in_unit(unit.elementary_charge), s.value_in_unit(unit.nanometer),
                  e.value_in_unit(unit.kilojoule_per_mole))
    n14 = 0
    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        if eps.value_in_unit(unit.kilojoule_per_mole) == 0:
            continue
        n14 += 1
        assert qq.value_in_unit(unit.elementary_charge**2) == pytest.approx(0.5 * raw[i][0] * raw[j][0], abs=1e-9)
        assert sig.value_in_unit(unit.nanometer) == pytest.approx(np.sqrt(raw[i][1] * raw[j][1]), rel=1e-9)
        assert eps.value_in_unit(unit.kilojoule_per_mole) == pytest.approx(0.5 * np.sqrt(raw[i][2] * raw[j][2]), rel=1e-9)
    assert n14 > 20  # DME has 27 1-4 pairs


def _is_interface(path: str) -> bool:
    """Interface recipes (a ``surface:`` block) are built in tests/test_interface*.py."""
    return any(line.startswith("surface:") for line in open(path).read().splitlines())


@pytest.mark.parametrize("path", sorted(p for p in glob.glob("systems/*.yaml") if not _is_interface(p)))
def test_every_recipe_builds_an_openmm_system(root, path):
    recipe = load_recipe(root / path)
    comp = resolve(recipe)
    top = build_topology(comp.counts, (comp.box_nm,) * 3)
    system = create_system(top, list(comp.counts), charge_scale=recipe.charge_scale)
    assert system.getNumParticles() == comp.n_atoms
    total = sum(q for _, q in _residue_charges(system, top))
    assert total == pytest.approx(0.0, abs=1e-5)
    assert system.usesPeriodicBoundaryConditions()
