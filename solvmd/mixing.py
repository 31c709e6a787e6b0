"""OPLS geometric combining rules on top of OpenMM's Lorentz-Berthelot NonbondedForce.

OPLS mixes sigma_ij = sqrt(sigma_i sigma_j), eps_ij = sqrt(eps_i eps_j); OpenMM's
NonbondedForce mixes sigma_ij = (sigma_i + sigma_j) / 2 (Lorentz-Berthelot, LB). Three
forms give the geometric pair energy, selected by ``mode``:

``exact`` (the reference)
    All Lennard-Jones moves to a CustomNonbondedForce ``a1 a2 / r^12 - b1 b2 / r^6`` with
    per-particle a = 2 sqrt(eps) sigma^6, b = 2 sqrt(eps) sigma^3 (exactly the geometric
    pair energy) over the full cutoff; the NonbondedForce keeps charges only.

``split`` (the default; benchmarks/md_speed.py, benchmarks/results/md_speed_CPU.csv)
    The geometric pair energy is a sum of two separable products, a_i a_j / r^12 - b_i b_j / r^6,
    and a NonbondedForce whose particles share one sigma mixes separably: with sigma = S for
    all, its LB pair energy is 4 sqrt(eps_i eps_j) [(S/r)^12 - (S/r)^6]. So the NonbondedForce
    keeps the charges (PME) and carries the repulsion with S = ``SPLIT_SIGMA_REPULSION_NM``
    (10 nm: its r^-6 leak is < 1e-8 of the dispersion), and a second, charge-free
    NonbondedForce (``LennardJonesDispersion``) carries the dispersion with S =
    ``SPLIT_SIGMA_DISPERSION_NM`` (0.01 nm: its r^-12 leak is < 1e-6 of the repulsion).
    Both run OpenMM's SIMD nonbonded kernel over the full cutoff with their analytic
    long-range corrections: the exact geometric energy to round-off, at about the cost of
    one more charge-free nonbonded pass (tests/test_md_throughput.py; benchmarks/md_speed.py).

``fast`` (the previous default, kept selectable)
    The NonbondedForce keeps each atom's own sigma, eps, so its SIMD kernel computes the
    LB pair energy over the full cutoff with its analytic long-range correction. A
    CustomNonbondedForce adds the difference (geometric - LB) for r < ``correction_cutoff_nm``
    with the analytic long-range correction of that difference. The difference vanishes
    for two atoms of equal sigma (LB and geometric eps agree) and is small and smooth
    beyond ~0.5 nm. Beyond the correction cutoff the
    difference enters through its long-range correction (uniform-fluid assumption), the
    only approximation; forces and energies against ``exact`` are tested in
    tests/test_mixing.py.

In both forms 1-4 pairs get geometric sigma and ``lj14_scale`` x geometric eps (exact
exceptions), and explicit pair overrides (metal-ion terms) are exact: their correction
force turns whatever the form computes for the pair into the override's energy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import openmm
from openmm import unit

from solvmd.errors import SolvmdError
from solvmd.forcefield_settings import DEFAULTS

# The short-cutoff correction force gets a force group of its own: the CUDA/OpenCL platforms
# refuse two cutoffs in one force group ("All Forces in a single force group must use the same
# cutoff distance"), and with a group of its own they build it a short neighbour list. The CPU
# platform shares one neighbour list at the longest cutoff whatever the groups
# (CpuPlatform::PlatformData::requestNeighborList), so there the correction still walks the
# 1.0 nm list: the floor of its cost (benchmarks/md_speed.py --correction-cutoffs).
CORRECTION_GROUP = 29

MixingMode = Literal["exact", "split", "fast"]
MIXING_MODES = ("exact", "split", "fast")
DISPERSION_FORCE_NAME = "LennardJonesDispersion"
SPLIT_SIGMA_REPULSION_NM = 10.0
SPLIT_SIGMA_DISPERSION_NM = 0.01
GEOMETRIC = "a1*a2/r^12 - b1*b2/r^6"
LB_PAIR = "4*e1*e2*x6*(x6 - 1)"  # Lorentz-Berthelot pair energy, with ...
LB_X6 = "x6 = (0.5*(s1 + s2)/r)^6"  # ... its (sigma_ij / r)^6
# geometric - LB as two power laws: a clean 1/r^6 tail, so the long-range correction integral converges
DIFFERENCE = ("dA/r^12 - dB/r^6; dA = a1*a2 - 4*e1*e2*sig6^2; dB = b1*b2 - 4*e1*e2*sig6; "
              "sig6 = (0.5*(s1 + s2))^6")


@dataclass(frozen=True)
class PairOverride:
    """Explicit LJ parameters for one pair of particle groups (sigma nm, epsilon kJ/mol)."""

    atoms_a: tuple[int, ...]
    atoms_b: tuple[int, ...]
    sigma_nm: float
    epsilon_kJ_mol: float


@dataclass(frozen=True)
class LJParameters:
    """Per-particle LJ parameters read from the NonbondedForce (nm, kJ/mol)."""

    sigma: np.ndarray
    epsilon: np.ndarray

    @property
    def a(self) -> np.ndarray:
        """2 sqrt(eps) sigma^6, so that a_i a_j = 4 eps_ij sigma_ij^12 (geometric)."""
        return 2.0 * np.sqrt(self.epsilon) * self.sigma**6

    @property
    def b(self) -> np.ndarray:
        """2 sqrt(eps) sigma^3, so that b_i b_j = 4 eps_ij sigma_ij^6 (geometric)."""
        return 2.0 * np.sqrt(self.epsilon) * self.sigma**3


def nonbonded_force(system: openmm.System) -> openmm.NonbondedForce:
    """The one NonbondedForce of ``system`` holding the charges (not the split form's dispersion force)."""
    forces = [f for f in system.getForces()
              if isinstance(f, openmm.NonbondedForce) and f.getName() != DISPERSION_FORCE_NAME]
    if len(forces) != 1:
        raise SolvmdError(f"expected exactly one NonbondedForce, found {len(forces)}")
    return forces[0]


def read_lj(nb: openmm.NonbondedForce) -> LJParameters:
    """Per-particle sigma (nm) and epsilon (kJ/mol) of ``nb``."""
    n = nb.getNumParticles()
    sigma, epsilon = np.empty(n), np.empty(n)
    for i in range(n):
        _, sig, eps = nb.getParticleParameters(i)
        sigma[i] = sig.value_in_unit(unit.nanometer)
        epsilon[i] = eps.value_in_unit(unit.kilojoule_per_mole)
    return LJParameters(sigma, epsilon)


def custom_lj(expression: str, nb: openmm.NonbondedForce, lj: LJParameters, name: str,
              cutoff_nm: float | None = None) -> openmm.CustomNonbondedForce:
    """A CustomNonbondedForce with per-particle a, b (and s = sigma, e = sqrt eps when the
    expression uses them) and the periodicity, cutoff and switching of ``nb`` (or ``cutoff_nm``)."""
    force = openmm.CustomNonbondedForce(expression)
    force.setName(name)
    columns = {"a": lj.a, "b": lj.b, "s": lj.sigma, "e": np.sqrt(lj.epsilon)}
    if not re.search(r"\b[se][12]\b", expression):
        columns = {"a": lj.a, "b": lj.b}
    for param in columns:
        force.addPerParticleParameter(param)
    for row in zip(*columns.values()):
        force.addParticle([float(x) for x in row])
    method = nb.getNonbondedMethod()
    if method in (openmm.NonbondedForce.PME, openmm.NonbondedForce.Ewald, openmm.NonbondedForce.LJPME,
                  openmm.NonbondedForce.CutoffPeriodic):
        force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
    elif method == openmm.NonbondedForce.CutoffNonPeriodic:
        force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    else:
        force.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
    force.setCutoffDistance(nb.getCutoffDistance() if cutoff_nm is None else cutoff_nm * unit.nanometer)
    use_switch = nb.getUseSwitchingFunction() and cutoff_nm is None
    force.setUseSwitchingFunction(use_switch)
    if use_switch:
        force.setSwitchingDistance(nb.getSwitchingDistance())
    force.setForceGroup(nb.getForceGroup())
    return force


def difference_force(nb: openmm.NonbondedForce, lj: LJParameters, correction_cutoff_nm: float) -> openmm.CustomNonbondedForce:
    """geometric - LB for r < ``correction_cutoff_nm``, with its analytic long-range correction.

    All pairs, no interaction groups: on the CPU platform, restricting the force to pairs of
    different sigma with interaction groups made it slower (benchmarks/md_speed.py notes).
    """
    force = custom_lj(DIFFERENCE, nb, lj, "LennardJonesGeometricCorrection", correction_cutoff_nm)
    force.setUseLongRangeCorrection(nb.getUseDispersionCorrection())
    force.setForceGroup(CORRECTION_GROUP)
    return force


def override_force(nb: openmm.NonbondedForce, lj: LJParameters, ov: PairOverride, k: int,
                   base: Literal["geometric", "fast"], correction_cutoff_nm: float) -> openmm.CustomNonbondedForce:
    """Correction turning the pair energy the other forces give ``ov``'s pairs into the override's.

    ``base`` is what those forces compute for the pairs: ``geometric`` over the full cutoff
    (exact form, or a sheet pair), or ``fast`` (LB everywhere plus geometric - LB inside
    ``correction_cutoff_nm``).
    """
    acoef = 4.0 * ov.epsilon_kJ_mol * ov.sigma_nm**12
    bcoef = 4.0 * ov.epsilon_kJ_mol * ov.sigma_nm**6
    wanted = f"{acoef!r}/r^12 - {bcoef!r}/r^6"
    if base == "geometric":
        expression = f"{wanted} - ({GEOMETRIC})"
    else:
        expression = (f"{wanted} - lb - step({correction_cutoff_nm!r} - r)*(({GEOMETRIC}) - lb); "
                      f"lb = {LB_PAIR}; {LB_X6}")
    force = custom_lj(expression, nb, lj, f"LennardJonesOverride{k}")
    force.addInteractionGroup(sorted(set(ov.atoms_a)), sorted(set(ov.atoms_b)))
    return force


def override_base(ov: PairOverride, mode: MixingMode, wall: set[int]) -> Literal["geometric", "fast"]:
    """How the mixing forces treat ``ov``'s pairs: sheet (wall) pairs are always exact geometric."""
    touches_wall = bool(wall & (set(ov.atoms_a) | set(ov.atoms_b)))
    if touches_wall and not (set(ov.atoms_a) <= wall or set(ov.atoms_b) <= wall):
        raise SolvmdError("an LJ pair override mixes sheet and liquid atoms on one side; "
                          "give the sheet atoms on one side and liquid atoms on the other")
    return "geometric" if touches_wall or mode != "fast" else "fast"


def _dispersion_nonbonded(nb: openmm.NonbondedForce) -> openmm.NonbondedForce:
    """An empty, charge-free NonbondedForce with ``nb``'s cutoff, switching and correction settings."""
    method = nb.getNonbondedMethod()
    if method == openmm.NonbondedForce.LJPME:
        raise SolvmdError("forcefield.mixing 'split' does not combine with LJPME; use mixing 'exact'")
    periodic = method in (openmm.NonbondedForce.PME, openmm.NonbondedForce.Ewald, openmm.NonbondedForce.CutoffPeriodic)
    disp = openmm.NonbondedForce()
    disp.setName(DISPERSION_FORCE_NAME)
    disp.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic if periodic else method)
    disp.setCutoffDistance(nb.getCutoffDistance())
    disp.setUseSwitchingFunction(nb.getUseSwitchingFunction())
    disp.setSwitchingDistance(nb.getSwitchingDistance())
    disp.setUseDispersionCorrection(nb.getUseDispersionCorrection())
    disp.setForceGroup(nb.getForceGroup())
    return disp


def split_lj(nb: openmm.NonbondedForce, lj: LJParameters) -> openmm.NonbondedForce:
    """Turn ``nb``'s LJ (and its exceptions) into the exact geometric repulsion; return the
    dispersion NonbondedForce to add to the System (module docstring, ``split``).

    ``lj`` gives each particle's geometric a, b; exceptions keep their own pair sigma, eps.
    """
    s_rep, s_disp = SPLIT_SIGMA_REPULSION_NM, SPLIT_SIGMA_DISPERSION_NM
    disp = _dispersion_nonbonded(nb)
    for i, (a, b) in enumerate(zip(lj.a, lj.b)):  # a_i a_j = 4 sqrt(e_i e_j) S^12 with sqrt(e_i) = a_i / (2 S^6)
        q = nb.getParticleParameters(i)[0]
        nb.setParticleParameters(i, q, s_rep, float(a / (2.0 * s_rep**6)) ** 2)
        disp.addParticle(0.0, s_disp, float(b / (2.0 * s_disp**3)) ** 2)
    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        c6 = 4.0 * eps.value_in_unit(unit.kilojoule_per_mole) * sig.value_in_unit(unit.nanometer) ** 6
        c12 = c6 * sig.value_in_unit(unit.nanometer) ** 6
        nb.setExceptionParameters(k, i, j, qq, s_rep, c12 / (4.0 * s_rep**12))
        disp.addException(i, j, 0.0, s_disp, c6 / (4.0 * s_disp**6))
    return disp


def long_range_correction_kJ_mol(forces: list[openmm.NonbondedForce], box, zero_atoms=()) -> float:
    """OpenMM's analytic LJ long-range correction energy (kJ/mol) of ``forces`` in the periodic
    ``box`` (System.getDefaultPeriodicBoxVectors()), with the LJ of ``zero_atoms`` switched off.

    Measured, not re-derived: the energy of charge-free copies of the forces with the
    correction minus without it, on the Reference platform (the pair terms cancel exactly).
    """
    n, zero = forces[0].getNumParticles(), set(zero_atoms)
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*box)
    for force in forces:
        copy = openmm.NonbondedForce()
        copy.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
        copy.setCutoffDistance(force.getCutoffDistance())
        copy.setUseSwitchingFunction(force.getUseSwitchingFunction())
        copy.setSwitchingDistance(force.getSwitchingDistance())
        for i in range(n):
            _, sig, eps = force.getParticleParameters(i)
            copy.addParticle(0.0, sig, 0.0 if i in zero else eps)
        system.addForce(copy)
    for _ in range(n):
        system.addParticle(1.0)
    side = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] / side
    lengths = np.array([box[k][k].value_in_unit(unit.nanometer) for k in range(3)])
    energies = []
    for use in (True, False):
        for force in system.getForces():
            force.setUseDispersionCorrection(use)
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(grid * lengths)
        energies.append(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    return energies[0] - energies[1]


def sheet_correction_removal(system: openmm.System, forces: list[openmm.NonbondedForce],
                             sheet: list[int]) -> openmm.CustomVolumeForce:
    """A volume-only energy that cancels the long-range correction of every pair involving
    ``sheet`` atoms in ``forces`` (the homogeneous-fluid correction does not describe a wall;
    with it, a sheet adds a spurious uniform attraction, ~ -90 bar on the demo interface).

    OpenMM's correction is C / V with C fixed by the particles, so -(C_all - C_no_sheet) / V
    removes exactly the sheet's share at every box volume the barostat visits.
    """
    if not hasattr(openmm, "CustomVolumeForce"):
        raise SolvmdError("forcefield.mixing 'split' on an interface needs an OpenMM with CustomVolumeForce; "
                          "upgrade OpenMM or use mixing 'exact'")
    box = system.getDefaultPeriodicBoxVectors()
    volume = float(np.prod([box[k][k].value_in_unit(unit.nanometer) for k in range(3)]))
    share = volume * (long_range_correction_kJ_mol(forces, box) - long_range_correction_kJ_mol(forces, box, sheet))
    force = openmm.CustomVolumeForce(f"{-share!r}/v")
    force.setName("SheetLongRangeCorrectionRemoval")
    return force


def wall_force(nb: openmm.NonbondedForce, lj: LJParameters, wall: list[int], fluid: list[int]) -> openmm.CustomNonbondedForce:
    """Exact geometric LJ between a frozen sheet (``wall``) and the liquid, full cutoff.

    No long-range correction: the homogeneous-fluid correction does not describe a wall
    (the wall tail beyond the cutoff is neglected); sheet-sheet pairs get no LJ (frozen).
    """
    force = custom_lj(GEOMETRIC, nb, lj, "LennardJonesSheet")
    force.setUseLongRangeCorrection(False)
    force.addInteractionGroup(wall, fluid)
    return force


def geometric_exceptions(nb: openmm.NonbondedForce, lj: LJParameters, lj14_scale: float) -> list[tuple[int, int]]:
    """Give 1-4 exceptions geometric sigma and scaled geometric eps; return every excluded pair."""
    pairs = []
    for k in range(nb.getNumExceptions()):
        i, j, qq, sig, eps = nb.getExceptionParameters(k)
        pairs.append((i, j))
        if eps.value_in_unit(unit.kilojoule_per_mole) != 0.0:
            nb.setExceptionParameters(
                k, i, j, qq, np.sqrt(lj.sigma[i] * lj.sigma[j]) * unit.nanometer,
                lj14_scale * np.sqrt(lj.epsilon[i] * lj.epsilon[j]) * unit.kilojoule_per_mole)
    return pairs


def zero_nonbonded_lj(nb: openmm.NonbondedForce, atoms) -> None:
    """Switch off the NonbondedForce's LJ for ``atoms`` (charges kept)."""
    for i in atoms:
        q, _, _ = nb.getParticleParameters(int(i))
        nb.setParticleParameters(int(i), q, 0.1 * unit.nanometer, 0.0)


def check_mixing(mode: str, correction_cutoff_nm: float, cutoff_nm: float) -> None:
    """Refuse an unknown mode or a correction cutoff outside (0, cutoff]."""
    if mode not in MIXING_MODES:
        raise SolvmdError(f"forcefield.mixing {mode!r}: allowed are {', '.join(MIXING_MODES)}")
    if not 0.0 < correction_cutoff_nm <= cutoff_nm:
        raise SolvmdError(f"forcefield.correction_cutoff_nm = {correction_cutoff_nm} nm: must be > 0 and "
                          f"<= forcefield.cutoff_nm ({cutoff_nm} nm)")


def apply_geometric_mixing(system: openmm.System, overrides: list[PairOverride] | tuple = (),
                           lj14_scale: float = 0.5, mode: MixingMode = DEFAULTS.mixing,
                           correction_cutoff_nm: float = DEFAULTS.correction_cutoff_nm,
                           fluid_atoms: list[int] | None = None) -> list[openmm.Force]:
    """OPLS geometric mixing in ``system`` (in place), in the ``exact``, ``split`` or ``fast`` form.

    ``fluid_atoms`` (default: all) are the atoms whose LJ is mixed here; the others (a
    frozen sheet) interact with the fluid through exact geometric LJ and not with each other
    (the caller excludes their pairs within the cutoff), with no long-range correction. In
    the ``split`` form the sheet sits in the split NonbondedForces and a volume term removes
    its share of their correction (:func:`sheet_correction_removal`); in the others its LJ
    goes to a force of its own (:func:`wall_force`). Returns the forces added (main,
    dispersion or correction force first, then the wall force or the removal term if any,
    then one per override).
    """
    nb = nonbonded_force(system)
    check_mixing(mode, correction_cutoff_nm, nb.getCutoffDistance().value_in_unit(unit.nanometer))
    lj = read_lj(nb)
    n = system.getNumParticles()
    fluid = list(range(n)) if fluid_atoms is None else sorted(fluid_atoms)
    others = sorted(set(range(n)) - set(fluid))
    excluded = geometric_exceptions(nb, lj, lj14_scale)
    wall = set(others)
    overrides_base = [override_base(ov, mode, wall) for ov in overrides]
    fluid_lj = LJParameters(lj.sigma.copy(), lj.epsilon.copy())
    fluid_lj.epsilon[others] = 0.0
    if mode == "exact":
        main = custom_lj(GEOMETRIC, nb, fluid_lj, "LennardJonesGeometric")
        main.setUseLongRangeCorrection(nb.getUseDispersionCorrection())
        nb.setUseDispersionCorrection(False)
        zero_nonbonded_lj(nb, range(n))
    elif mode == "split":
        main = split_lj(nb, lj)
    else:
        main = difference_force(nb, fluid_lj, correction_cutoff_nm)
        zero_nonbonded_lj(nb, others)
    forces = [main]
    if others and mode != "split":
        forces.append(wall_force(nb, lj, others, fluid))
    elif others and nb.getUseDispersionCorrection():
        forces.append(sheet_correction_removal(system, [nb, main], others))
    forces += [override_force(nb, lj, ov, k, base, correction_cutoff_nm)
               for k, (ov, base) in enumerate(zip(overrides, overrides_base))]
    for force in forces:
        if isinstance(force, openmm.CustomNonbondedForce):  # the split dispersion force has its exceptions
            for i, j in excluded:
                force.addExclusion(i, j)
        system.addForce(force)
    return forces
