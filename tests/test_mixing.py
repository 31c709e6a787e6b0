"""OPLS geometric combining rules really applied in OpenMM (NonbondedForce is Lorentz-Berthelot)."""

import numpy as np
import openmm
import pytest
from openmm import unit

from solvmd.forcefield import PairOverride, apply_geometric_mixing

PARAMS = [(0.0, 0.35, 0.276), (0.0, 0.21, 0.0753), (0.0, 0.29, 0.586)]  # q, sigma nm, eps kJ/mol


def _toy(positions_nm, box=4.0, exceptions=()):
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(box, 0, 0), openmm.Vec3(0, box, 0), openmm.Vec3(0, 0, box))
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(1.2)
    nb.setUseDispersionCorrection(False)
    nb.setReactionFieldDielectric(1.0)
    for q, s, e in PARAMS[: len(positions_nm)]:
        system.addParticle(10.0)
        nb.addParticle(q, s, e)
    for i, j, qq, s, e in exceptions:
        nb.addException(i, j, qq, s, e)
    system.addForce(nb)
    return system


def _energy(system, positions_nm):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(np.asarray(positions_nm) * unit.nanometer)
    return ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def _lj(r, s, e):
    return 4 * e * ((s / r) ** 12 - (s / r) ** 6)


@pytest.mark.parametrize("i, j, r", [(0, 1, 0.30), (0, 2, 0.37), (1, 2, 0.26)])
def test_mixed_pair_energy_is_geometric(i, j, r):
    """Three LJ types; the (i, j) pair at distance r, the third particle beyond the cutoff."""
    k = 3 - i - j
    pos = [None, None, None]
    pos[i], pos[j], pos[k] = [1.0, 1.0, 1.0], [1.0 + r, 1.0, 1.0], [2.9, 2.9, 2.9]
    system = _toy(pos)
    apply_geometric_mixing(system)
    expected = _lj(r, np.sqrt(PARAMS[i][1] * PARAMS[j][1]), np.sqrt(PARAMS[i][2] * PARAMS[j][2]))
    assert _energy(system, pos) == pytest.approx(expected, rel=1e-6)
    lorentz_berthelot = _lj(r, 0.5 * (PARAMS[i][1] + PARAMS[j][1]), np.sqrt(PARAMS[i][2] * PARAMS[j][2]))
    assert abs(lorentz_berthelot - expected) > 1e-3 * abs(expected), "pair must discriminate geometric from LB"


def test_one_four_exception_geometric_and_halved():
    pos = [[1.0, 1.0, 1.0], [1.0 + 0.31, 1.0, 1.0]]
    system = _toy(pos, exceptions=[(0, 1, 0.0, 0.28, 0.5 * np.sqrt(PARAMS[0][2] * PARAMS[1][2]))])
    apply_geometric_mixing(system)
    expected = _lj(0.31, np.sqrt(PARAMS[0][1] * PARAMS[1][1]), 0.5 * np.sqrt(PARAMS[0][2] * PARAMS[1][2]))
    assert _energy(system, pos) == pytest.approx(expected, rel=1e-6)


def test_excluded_pair_stays_excluded():
    pos = [[1.0, 1.0, 1.0], [1.25, 1.0, 1.0]]
    system = _toy(pos, exceptions=[(0, 1, 0.0, 0.3, 0.0)])
    apply_geometric_mixing(system)
    assert _energy(system, pos) == pytest.approx(0.0, abs=1e-9)


def test_pair_override():
    pos = [[1.0, 1.0, 1.0], [1.33, 1.0, 1.0], [3.0, 3.0, 3.0]]
    system = _toy(pos)
    apply_geometric_mixing(system, [PairOverride((0,), (1,), 0.30, 1.5)])
    assert _energy(system, pos) == pytest.approx(_lj(0.33, 0.30, 1.5), rel=1e-6)
