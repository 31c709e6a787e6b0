"""OpenMM System from the species XML files, with OPLS conventions applied for real.

Three steps on top of ``openmm.app.ForceField.createSystem``:

1. Ionic charge scaling: every atom of an ionic species (formal charge != 0) has its
   charge multiplied by ``charge_scale``; intramolecular 1-4 charge products of ions
   are scaled by ``charge_scale**2`` accordingly.
2. OPLS geometric combining rules (OpenMM's NonbondedForce uses Lorentz-Berthelot), in
   the ``exact``, ``split`` or ``fast`` form of :mod:`solvmd.mixing`; 1-4 pairs get geometric sigma
   and 0.5 x geometric epsilon (OPLS fudgeLJ), explicit pair overrides stay exact.
3. Long-range dispersion correction, cutoff and switching copied from the settings;
   optional hydrogen mass repartitioning (``createSystem(hydrogenMass=...)``).

Every default (mixing form, hydrogen mass, cutoffs, charge scale) comes from
:mod:`solvmd.forcefield_settings`, the same place the recipe's ``forcefield:`` block takes
them from: ``create_system(topology, species)`` builds the System a recipe that says nothing
would build.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import openmm
from openmm import app, unit

from solvmd import species as species_registry
from solvmd.errors import SolvmdError
from solvmd.forcefield_settings import DEFAULT_CHARGE_SCALE, DEFAULTS, ForceFieldSettings
from solvmd.mixing import (MixingMode, PairOverride, apply_geometric_mixing, check_mixing,  # noqa: F401 (re-exported)
                           nonbonded_force)

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


def parameterize(
    topology: app.Topology,
    species_names: list[str],
    cutoff_nm: float = DEFAULTS.cutoff_nm,
    charge_scale: float = DEFAULT_CHARGE_SCALE,
    ewald_error_tolerance: float = DEFAULTS.ewald_error_tolerance,
    dispersion_correction: bool = DEFAULTS.dispersion_correction,
    constraints=app.HBonds,
    hydrogen_mass_amu: float | None = DEFAULTS.hydrogen_mass_amu,
) -> openmm.System:
    """Steps 1 and 3 of :func:`create_system`: ``createSystem`` from the species XML files
    and ionic charge scaling, with the Lennard-Jones part still in the NonbondedForce
    (Lorentz-Berthelot). Call :func:`finish_nonbonded` afterwards; particles added in
    between (e.g. a frozen surface, :mod:`solvmd.assembly.interface`) get the same treatment.
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
            hydrogenMass=None if hydrogen_mass_amu is None else hydrogen_mass_amu * unit.amu,
        )
    except ValueError as err:
        msg = species_registry.template_mismatch(str(err))
        raise SolvmdError(f"force field cannot parameterize the topology: {msg}") from None
    nb = nonbonded_force(system)
    nb.setUseDispersionCorrection(dispersion_correction and periodic)
    scale_ionic_charges(system, topology, charge_scale)
    return system


def finish_nonbonded(
    system: openmm.System,
    combining_rule: str = DEFAULTS.combining_rule,
    overrides: list[PairOverride] | tuple = (),
    mixing: MixingMode = DEFAULTS.mixing,
    correction_cutoff_nm: float = DEFAULTS.correction_cutoff_nm,
    fluid_atoms: list[int] | None = None,
) -> openmm.System:
    """Step 2 of :func:`create_system`: OPLS geometric mixing (+ pair overrides), in place.

    ``mixing`` and ``correction_cutoff_nm`` (nm) select the form (:mod:`solvmd.mixing`);
    ``fluid_atoms`` leaves the other atoms (a frozen sheet) to an exact wall force.
    """
    if combining_rule == "geometric":
        apply_geometric_mixing(system, overrides, mode=mixing, correction_cutoff_nm=correction_cutoff_nm,
                               fluid_atoms=fluid_atoms)
    elif combining_rule != "lorentz-berthelot":
        raise SolvmdError(f"combining_rule {combining_rule!r}: allowed are 'geometric', 'lorentz-berthelot'")
    elif overrides:
        raise SolvmdError("LJ pair overrides need combining_rule: geometric")
    return system


def create_system(
    topology: app.Topology,
    species_names: list[str],
    cutoff_nm: float = DEFAULTS.cutoff_nm,
    charge_scale: float = DEFAULT_CHARGE_SCALE,
    combining_rule: str = DEFAULTS.combining_rule,
    ewald_error_tolerance: float = DEFAULTS.ewald_error_tolerance,
    dispersion_correction: bool = DEFAULTS.dispersion_correction,
    constraints=app.HBonds,
    overrides: list[PairOverride] | tuple = (),
    mixing: MixingMode = DEFAULTS.mixing,
    correction_cutoff_nm: float = DEFAULTS.correction_cutoff_nm,
    hydrogen_mass_amu: float | None = DEFAULTS.hydrogen_mass_amu,
) -> openmm.System:
    """Parameterize ``topology`` with the species' XML files and the OPLS conventions.

    The defaults are :data:`solvmd.forcefield_settings.DEFAULTS` (the recipe defaults: split
    mixing, hydrogen mass 3.0 amu, 1.0 nm cutoff) and ionic charges x 0.8;
    :func:`system_from_settings` takes a whole :class:`ForceFieldSettings` instead.

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
        mixing: ``exact``, ``split`` or ``fast`` form of geometric mixing (:mod:`solvmd.mixing`).
        correction_cutoff_nm: cutoff of the fast form's geometric - LB correction, nm.
        hydrogen_mass_amu: hydrogen mass after repartitioning (None: natural masses), amu.
    """
    if combining_rule not in ("geometric", "lorentz-berthelot"):
        raise SolvmdError(f"combining_rule {combining_rule!r}: allowed are 'geometric', 'lorentz-berthelot'")
    if mixing not in ("split", "exact", "fast"):
        raise SolvmdError(f"mixing {mixing!r}: allowed are 'split', 'exact', 'fast'")
    system = parameterize(topology, species_names, cutoff_nm=cutoff_nm, charge_scale=charge_scale,
                          ewald_error_tolerance=ewald_error_tolerance,
                          dispersion_correction=dispersion_correction, constraints=constraints,
                          hydrogen_mass_amu=hydrogen_mass_amu)
    return finish_nonbonded(system, combining_rule, overrides, mixing, correction_cutoff_nm)


def system_from_settings(topology: app.Topology, species_names: list[str],
                         settings: ForceFieldSettings = DEFAULTS, charge_scale: float = DEFAULT_CHARGE_SCALE,
                         overrides: list[PairOverride] | tuple = ()) -> openmm.System:
    """:func:`create_system` with every nonbonded setting taken from ``settings`` (a recipe's
    ``forcefield:`` block); what :func:`solvmd.assembly.system.build_system` calls."""
    return create_system(
        topology, species_names, cutoff_nm=settings.cutoff_nm, charge_scale=charge_scale,
        combining_rule=settings.combining_rule, ewald_error_tolerance=settings.ewald_error_tolerance,
        dispersion_correction=settings.dispersion_correction, overrides=overrides, mixing=settings.mixing,
        correction_cutoff_nm=settings.correction_cutoff_nm, hydrogen_mass_amu=settings.hydrogen_mass_amu)
