"""OpenMM System from the species XML files, with OPLS conventions applied for real.

Three steps on top of ``openmm.app.ForceField.createSystem``:

1. Ionic charge scaling: every atom of an ionic species (formal charge != 0) has its
   charge multiplied by ``charge_scale``; intramolecular 1-4 charge products of ions
   are scaled by ``charge_scale**2`` accordingly.
2. OPLS geometric combining rules: OpenMM's NonbondedForce uses Lorentz-Berthelot
   (sigma_ij = (sigma_i + sigma_j)/2). The Lennard-Jones part is moved to a
   CustomNonbondedForce a_i a_j / r^12 - b_i b_j / r^6, which is exactly
   4 eps_ij (sigma_ij^12/r^12 - sigma_ij^6/r^6) with sigma_ij = sqrt(sigma_i sigma_j) and
   eps_ij = sqrt(eps_i eps_j) when a = 2 sqrt(eps) sigma^6 and b = 2 sqrt(eps) sigma^3
   (per-particle factors, no pair tables: fast). The NonbondedForce keeps charges (PME)
   and all exceptions. 1-4 exceptions get geometric sigma and 0.5 * geometric epsilon
   (OPLS fudgeLJ = 0.5). Explicit pair overrides (NBFIX-style, e.g. metal-ion cross
   terms) are correction forces restricted to the two particle sets.
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

LJ_EXPRESSION = "a1*a2/r^12 - b1*b2/r^6"


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


def _lj_factors(sigma_nm: np.ndarray, epsilon_kJ_mol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-particle a = 2 sqrt(eps) sigma^6, b = 2 sqrt(eps) sigma^3.

    With geometric rules A_ij = 4 eps_ij sigma_ij^12 = a_i a_j and B_ij = 4 eps_ij sigma_ij^6 = b_i b_j,
    so the pair energy a_i a_j / r^12 - b_i b_j / r^6 needs no per-pair table (fast on every platform).
    """
    root_eps = 2.0 * np.sqrt(epsilon_kJ_mol)
    return root_eps * sigma_nm**6, root_eps * sigma_nm**3


def _custom_lj(expression: str, nb: openmm.NonbondedForce, a: np.ndarray, b: np.ndarray,
               name: str) -> openmm.CustomNonbondedForce:
    force = openmm.CustomNonbondedForce(expression)
    force.setName(name)
    force.addPerParticleParameter("a")
    force.addPerParticleParameter("b")
    for ai, bi in zip(a, b):
        force.addParticle([float(ai), float(bi)])
    method = nb.getNonbondedMethod()
    if method in (openmm.NonbondedForce.PME, openmm.NonbondedForce.Ewald, openmm.NonbondedForce.LJPME,
                  openmm.NonbondedForce.CutoffPeriodic):
        force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    elif method == openmm.NonbondedForce.CutoffNonPeriodic:
        force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    else:
        force.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
    force.setCutoffDistance(nb.getCutoffDistance())
    force.setUseSwitchingFunction(nb.getUseSwitchingFunction())
    force.setSwitchingDistance(nb.getSwitchingDistance())
    force.setForceGroup(nb.getForceGroup())
    return force


def apply_geometric_mixing(
    system: openmm.System,
    overrides: list[PairOverride] | tuple = (),
    lj14_scale: float = 0.5,
) -> openmm.CustomNonbondedForce:
    """Move LJ from the NonbondedForce to a CustomNonbondedForce with geometric combining.

    The NonbondedForce keeps charges (PME) and exceptions; 1-4 exceptions get geometric
    sigma and ``lj14_scale`` * geometric epsilon. Each override adds a correction force
    restricted (interaction groups) to its two particle sets, turning the geometric pair
    energy into the override's. Returns the main LJ force (already added to ``system``).
    """
    nb = nonbonded_force(system)
    n = system.getNumParticles()
    sigma = np.empty(n)
    epsilon = np.empty(n)
    for i in range(n):
        _, sig, eps = nb.getParticleParameters(i)
        sigma[i] = sig.value_in_unit(unit.nanometer)
        epsilon[i] = eps.value_in_unit(unit.kilojoule_per_mole)
    a, b = _lj_factors(sigma, epsilon)

    forces = [_custom_lj(LJ_EXPRESSION, nb, a, b, "LennardJonesGeometric")]
    forces[0].setUseLongRangeCorrection(nb.getUseDispersionCorrection())
    for k, ov in enumerate(overrides):
        acoef = 4.0 * ov.epsilon_kJ_mol * ov.sigma_nm**12
        bcoef = 4.0 * ov.epsilon_kJ_mol * ov.sigma_nm**6
        corr = _custom_lj(f"({acoef!r} - a1*a2)/r^12 - ({bcoef!r} - b1*b2)/r^6", nb, a, b, f"LennardJonesOverride{k}")
        corr.addInteractionGroup(sorted(set(ov.atoms_a)), sorted(set(ov.atoms_b)))
        forces.append(corr)
    nb.setUseDispersionCorrection(False)

    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        for force in forces:
            force.addExclusion(i, j)
        if eps.value_in_unit(unit.kilojoule_per_mole) != 0.0:
            # a 1-4 pair: OPLS geometric sigma, fudged epsilon
            nb.setExceptionParameters(
                k, i, j, qq, np.sqrt(sigma[i] * sigma[j]) * unit.nanometer,
                lj14_scale * np.sqrt(epsilon[i] * epsilon[j]) * unit.kilojoule_per_mole,
            )
    for i in range(n):
        q, _, _ = nb.getParticleParameters(i)
        nb.setParticleParameters(i, q, 0.1 * unit.nanometer, 0.0)
    for force in forces:
        system.addForce(force)
    return forces[0]


def parameterize(
    topology: app.Topology,
    species_names: list[str],
    cutoff_nm: float = 1.0,
    charge_scale: float = 0.8,
    ewald_error_tolerance: float = 5e-4,
    dispersion_correction: bool = True,
    constraints=app.HBonds,
) -> openmm.System:
    """Steps 1 and 3 of :func:`create_system`: ``createSystem`` from the species XML files
    and ionic charge scaling, with the Lennard-Jones part still in the NonbondedForce
    (Lorentz-Berthelot). Call :func:`finish_nonbonded` afterwards; particles added in
    between (e.g. a frozen surface, :mod:`solvmd.build.interface`) get the same treatment.
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
    return system


def finish_nonbonded(
    system: openmm.System,
    combining_rule: str = "geometric",
    overrides: list[PairOverride] | tuple = (),
) -> openmm.System:
    """Step 2 of :func:`create_system`: OPLS geometric mixing (+ pair overrides), in place."""
    if combining_rule == "geometric":
        apply_geometric_mixing(system, overrides)
    elif combining_rule != "lorentz-berthelot":
        raise SolvmdError(f"combining_rule {combining_rule!r}: allowed are 'geometric', 'lorentz-berthelot'")
    elif overrides:
        raise SolvmdError("LJ pair overrides need combining_rule: geometric")
    return system


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
    if combining_rule not in ("geometric", "lorentz-berthelot"):
        raise SolvmdError(f"combining_rule {combining_rule!r}: allowed are 'geometric', 'lorentz-berthelot'")
    system = parameterize(topology, species_names, cutoff_nm=cutoff_nm, charge_scale=charge_scale,
                          ewald_error_tolerance=ewald_error_tolerance,
                          dispersion_correction=dispersion_correction, constraints=constraints)
    return finish_nonbonded(system, combining_rule, overrides)
