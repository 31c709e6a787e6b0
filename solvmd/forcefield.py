"""OpenMM System from the species XML files, with OPLS conventions applied for real.

Three steps on top of ``openmm.app.ForceField.createSystem``:

1. Ionic charge scaling: every atom of an ionic species (formal charge != 0) has its
   charge multiplied by ``charge_scale``; intramolecular 1-4 charge products of ions
   are scaled by ``charge_scale**2`` accordingly.
2. OPLS geometric combining rules: OpenMM's NonbondedForce uses Lorentz-Berthelot
   (sigma_ij = (sigma_i + sigma_j)/2). The Lennard-Jones part is moved to a
   CustomNonbondedForce with per-type-pair tables A_ij/r^12 - B_ij/r^6 built with
   sigma_ij = sqrt(sigma_i sigma_j), eps_ij = sqrt(eps_i eps_j); the NonbondedForce keeps
   charges (PME) and all exceptions. 1-4 exceptions get geometric sigma and
   0.5 * geometric epsilon (OPLS fudgeLJ = 0.5). Tables also carry explicit pair
   overrides (NBFIX-style; e.g. metal-ion cross terms).
3. Long-range dispersion correction, cutoff and switching copied from the settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import openmm
from openmm import app, unit

from solvmd import species as species_registry
from solvmd.errors import SolvmdError

LJ_EXPRESSION = "acoef(type1, type2)/r^12 - bcoef(type1, type2)/r^6"


@dataclass(frozen=True)
class PairOverride:
    """Explicit LJ parameters for one pair of particle groups (sigma nm, epsilon kJ/mol)."""

    atoms_a: tuple[int, ...]
    atoms_b: tuple[int, ...]
    sigma_nm: float
    epsilon_kJ_mol: float


def forcefield_files(species_names: list[str]) -> list[str]:
    """Unique XML files for the given species, in first-seen order."""
    files: list[str] = []
    for name in species_names:
        path = str(species_registry.get(name).xml_path)
        if path not in files:
            files.append(path)
    return files


def load_forcefield(species_names: list[str]) -> app.ForceField:
    """An OpenMM ForceField with the XML files of the given species."""
    files = forcefield_files(species_names)
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise SolvmdError(f"force-field file(s) missing: {missing}; see forcefields/SOURCES.md")
    try:
        return app.ForceField(*files)
    except Exception as err:  # OpenMM raises ValueError/Exception for clashing templates
        raise SolvmdError(f"cannot load force-field files {files}: {err}") from None


def nonbonded_force(system: openmm.System) -> openmm.NonbondedForce:
    forces = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if len(forces) != 1:
        raise SolvmdError(f"expected exactly one NonbondedForce, found {len(forces)}")
    return forces[0]


def scale_ionic_charges(system: openmm.System, topology: app.Topology, charge_scale: float) -> None:
    """Multiply charges of every atom in an ionic residue by ``charge_scale`` (in place)."""
    if charge_scale == 1.0:
        return
    nb = nonbonded_force(system)
    by_residue = {sp.residue: sp for sp in species_registry.registry().values()}
    scaled = np.zeros(system.getNumParticles(), dtype=bool)
    for residue in topology.residues():
        sp = by_residue.get(residue.name)
        if sp is not None and sp.charge != 0:
            for atom in residue.atoms():
                scaled[atom.index] = True
    for i in np.flatnonzero(scaled):
        q, sig, eps = nb.getParticleParameters(int(i))
        nb.setParticleParameters(int(i), q * charge_scale, sig, eps)
    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        factor = (charge_scale if scaled[i] else 1.0) * (charge_scale if scaled[j] else 1.0)
        if factor != 1.0 and qq.value_in_unit(unit.elementary_charge**2) != 0.0:
            nb.setExceptionParameters(k, i, j, qq * factor, sig, eps)


def apply_geometric_mixing(
    system: openmm.System,
    overrides: list[PairOverride] | tuple = (),
    lj14_scale: float = 0.5,
) -> openmm.CustomNonbondedForce:
    """Move LJ from the NonbondedForce to a CustomNonbondedForce with geometric combining.

    Particles are grouped into LJ types by (sigma, epsilon) and override membership; the
    type-pair tables hold A = 4 eps sigma^12 and B = 4 eps sigma^6 (kJ/mol nm^12, nm^6).
    Returns the new force (already added to ``system``).
    """
    nb = nonbonded_force(system)
    n = system.getNumParticles()
    sigma = np.empty(n)
    epsilon = np.empty(n)
    for i in range(n):
        _, sig, eps = nb.getParticleParameters(i)
        sigma[i] = sig.value_in_unit(unit.nanometer)
        epsilon[i] = eps.value_in_unit(unit.kilojoule_per_mole)

    membership = np.zeros((n, 2 * len(overrides)), dtype=bool)
    for k, ov in enumerate(overrides):
        membership[list(ov.atoms_a), 2 * k] = True
        membership[list(ov.atoms_b), 2 * k + 1] = True
    keys = [(round(sigma[i], 8), round(epsilon[i], 10), membership[i].tobytes()) for i in range(n)]
    type_of: dict = {}
    types = np.array([type_of.setdefault(key, len(type_of)) for key in keys], dtype=int)
    ntypes = len(type_of)
    t_sigma = np.zeros(ntypes)
    t_eps = np.zeros(ntypes)
    t_sigma[types] = sigma
    t_eps[types] = epsilon

    sig_ij = np.sqrt(np.outer(t_sigma, t_sigma))
    eps_ij = np.sqrt(np.outer(t_eps, t_eps))
    for k, ov in enumerate(overrides):
        ta = np.unique(types[list(ov.atoms_a)])
        tb = np.unique(types[list(ov.atoms_b)])
        for a in ta:
            for b in tb:
                sig_ij[a, b] = sig_ij[b, a] = ov.sigma_nm
                eps_ij[a, b] = eps_ij[b, a] = ov.epsilon_kJ_mol
    acoef = 4.0 * eps_ij * sig_ij**12
    bcoef = 4.0 * eps_ij * sig_ij**6

    custom = openmm.CustomNonbondedForce(LJ_EXPRESSION)
    custom.setName("LennardJonesGeometric")
    custom.addTabulatedFunction("acoef", openmm.Discrete2DFunction(ntypes, ntypes, acoef.ravel(order="F").tolist()))
    custom.addTabulatedFunction("bcoef", openmm.Discrete2DFunction(ntypes, ntypes, bcoef.ravel(order="F").tolist()))
    custom.addPerParticleParameter("type")
    for t in types:
        custom.addParticle([float(t)])

    method = nb.getNonbondedMethod()
    if method in (openmm.NonbondedForce.PME, openmm.NonbondedForce.Ewald, openmm.NonbondedForce.LJPME,
                  openmm.NonbondedForce.CutoffPeriodic):
        custom.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    elif method == openmm.NonbondedForce.CutoffNonPeriodic:
        custom.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    else:
        custom.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
    custom.setCutoffDistance(nb.getCutoffDistance())
    custom.setUseSwitchingFunction(nb.getUseSwitchingFunction())
    custom.setSwitchingDistance(nb.getSwitchingDistance())
    custom.setUseLongRangeCorrection(nb.getUseDispersionCorrection())
    nb.setUseDispersionCorrection(False)

    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        custom.addExclusion(i, j)
        if eps.value_in_unit(unit.kilojoule_per_mole) != 0.0:
            # a 1-4 pair: OPLS geometric sigma, fudged epsilon
            nb.setExceptionParameters(
                k, i, j, qq, np.sqrt(sigma[i] * sigma[j]) * unit.nanometer,
                lj14_scale * np.sqrt(epsilon[i] * epsilon[j]) * unit.kilojoule_per_mole,
            )
    for i in range(n):
        q, _, _ = nb.getParticleParameters(i)
        nb.setParticleParameters(i, q, 0.1 * unit.nanometer, 0.0)
    custom.setForceGroup(nb.getForceGroup())
    system.addForce(custom)
    return custom


def create_system(
    topology: app.Topology,
    species_names: list[str],
    cutoff_nm: float = 1.0,
    charge_scale: float = 0.8,
    combining_rule: str = "geometric",
    ewald_error_tolerance: float = 5e-4,
    dispersion_correction: bool = True,
    constraints=app.HBonds,
    overrides: list[PairOverride] | tuple = (),
) -> openmm.System:
    """Parameterize ``topology`` with the species' XML files and the OPLS conventions.

    Args:
        topology: OpenMM topology (periodic box set for PME).
        species_names: species present (selects the XML files).
        cutoff_nm: real-space and LJ cutoff, nm.
        charge_scale: factor applied to ionic charges (1.0 = full charges).
        combining_rule: ``geometric`` (OPLS) or ``lorentz-berthelot`` (stock OpenMM; for baselines).
        ewald_error_tolerance: PME accuracy.
        dispersion_correction: analytic long-range LJ correction.
        constraints: OpenMM constraints (``app.HBonds`` default).
        overrides: explicit LJ pair parameters (geometric mixing only).
    """
    ff = load_forcefield(species_names)
    periodic = topology.getPeriodicBoxVectors() is not None
    try:
        system = ff.createSystem(
            topology,
            nonbondedMethod=app.PME if periodic else app.NoCutoff,
            nonbondedCutoff=cutoff_nm * unit.nanometer,
            constraints=constraints,
            ewaldErrorTolerance=ewald_error_tolerance,
            rigidWater=False,
        )
    except ValueError as err:
        raise SolvmdError(f"force field cannot parameterize the topology: {err}") from None
    nb = nonbonded_force(system)
    nb.setUseDispersionCorrection(dispersion_correction and periodic)
    scale_ionic_charges(system, topology, charge_scale)
    if combining_rule == "geometric":
        apply_geometric_mixing(system, overrides)
    elif combining_rule != "lorentz-berthelot":
        raise SolvmdError(f"combining_rule {combining_rule!r}: allowed are 'geometric', 'lorentz-berthelot'")
    elif overrides:
        raise SolvmdError("LJ pair overrides need combining_rule: geometric")
    return system
