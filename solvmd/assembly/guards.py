"""Build-time checks of a parameterized System: exclusion audit and cation separation (issue 29).

Both run in :func:`solvmd.assembly.system.build_system` (and the interface builder) BEFORE
anything is written, so a refused build leaves no half-written output; each failure is one
:class:`~solvmd.errors.SolvmdError` naming the atoms.

* :func:`exclusion_audit` (every build): in every NonbondedForce each atom pair has at most
  one exception, in every CustomNonbondedForce at most one exclusion; and no two atoms of
  different residues whose System charges have the same sign and |q| >= ``ION_CHARGE_E``
  (1 e) are fully excluded from each other (exception with charge product 0 and epsilon 0).
  Exclusions inside one residue come from that molecule's own published bonded topology
  (e.g. the S...S 1-3 pair of TFSI-) and are not audited; exclusions between residues are
  made by :mod:`solvmd.assembly.bonded_complexes`, and a like-charged ion pair among them would
  lose its mutual repulsion (the [Mg2(mu-Cl)3(THF)6]+ dimer collapsed to Mg...Mg 1.2 A so).
  Pairs of two frozen (massless) atoms are skipped: a frozen sheet excludes its own pairs.
  The split mixing form has two NonbondedForces (charges + repulsion, and the charge-free
  ``LennardJonesDispersion``); each carries one copy of every exception, as it must.
* :func:`check_cation_separation` (builds with bonded complexes): the structure after energy
  minimization must keep every two monoatomic cations at least ``MIN_CATION_SEPARATION_A``
  (2.0 A) apart (minimum image). Elsewhere every cation pair keeps its full Coulomb repulsion
  (the audit proves it), so only bonded terms can pull two cations together.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import openmm
from openmm import app, unit

from solvmd import species as species_registry
from solvmd.errors import SolvmdError

ION_CHARGE_E = 1.0  # |q| (e, System charge after charge_scale) from which a like-charged pair may not be excluded
MIN_CATION_SEPARATION_A = 2.0  # closest two monoatomic cations may come in a minimised built structure, A
MINIMIZE_TOLERANCE_KJ_MOL_NM = 10.0  # OpenMM LocalEnergyMinimizer force tolerance, kJ/mol/nm
MINIMIZE_MAX_ITERATIONS = 2000  # as the MD protocol's default minimize_max_iterations


def _atom_label(atom: app.topology.Atom) -> str:
    return f"{atom.element.symbol if atom.element else atom.name} (atom {atom.index}, residue {atom.residue.name} " \
           f"{atom.residue.index})"


def duplicate_pairs(system: openmm.System) -> list[str]:
    """One line per atom pair listed more than once as an exception (NonbondedForce) or an
    exclusion (CustomNonbondedForce) of the same force."""
    out = []
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            pairs = [tuple(sorted(force.getExceptionParameters(k)[:2])) for k in range(force.getNumExceptions())]
        elif isinstance(force, openmm.CustomNonbondedForce):
            pairs = [tuple(sorted(force.getExclusionParticles(k))) for k in range(force.getNumExclusions())]
        else:
            continue
        out += [f"{force.getName()}: atoms {i}-{j} listed {n} times" for (i, j), n in Counter(pairs).items() if n > 1]
    return out


def _charges_e(nb: openmm.NonbondedForce) -> np.ndarray:
    return np.array([nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                     for i in range(nb.getNumParticles())])


def excluded_like_ions(system: openmm.System, topology: app.Topology) -> list[str]:
    """One line per fully excluded pair of like-charged ions (module docstring)."""
    from solvmd.mixing import nonbonded_force

    nb = nonbonded_force(system)
    q = _charges_e(nb)
    atoms = list(topology.atoms())
    frozen = [system.getParticleMass(i).value_in_unit(unit.dalton) == 0.0 for i in range(system.getNumParticles())]
    out = []
    for k in range(nb.getNumExceptions()):
        i, j, qq, _, eps = nb.getExceptionParameters(k)
        if qq.value_in_unit(unit.elementary_charge**2) != 0.0 or eps.value_in_unit(unit.kilojoule_per_mole) != 0.0:
            continue
        if atoms[i].residue.index == atoms[j].residue.index or (frozen[i] and frozen[j]):
            continue
        if q[i] * q[j] > 0.0 and min(abs(q[i]), abs(q[j])) >= ION_CHARGE_E:
            out.append(f"{_atom_label(atoms[i])} and {_atom_label(atoms[j])} (charges {q[i]:+.2f}, {q[j]:+.2f} e) "
                       "are fully excluded from each other: no repulsion between two like-charged ions")
    return out


def exclusion_audit(system: openmm.System, topology: app.Topology) -> list[str]:
    """Every problem with the System's exceptions and exclusions (empty list: none)."""
    return duplicate_pairs(system) + excluded_like_ions(system, topology)


def check_exclusions(system: openmm.System, topology: app.Topology) -> None:
    """Raise one SolvmdError listing every problem :func:`exclusion_audit` finds."""
    problems = exclusion_audit(system, topology)
    if problems:
        raise SolvmdError("build refused, exclusion audit failed (solvmd/assembly/guards.py):\n  "
                          + "\n  ".join(problems))


def cation_atoms(topology: app.Topology) -> list[int]:
    """Indices of the atoms of monoatomic cations (Li+, Na+, Mg2+, ...), by residue name."""
    cations = {sp.residue for sp in species_registry.registry().values() if sp.charge > 0 and sp.n_atoms == 1}
    return [a.index for a in topology.atoms() if a.residue.name in cations]


def closest_pair_A(xyz_A: np.ndarray, atoms: list[int], box_A: np.ndarray | None) -> tuple[float, int, int]:
    """(distance in A, i, j) of the closest two of ``atoms`` (minimum image in an orthorhombic
    box of edge lengths ``box_A``, or none); (inf, -1, -1) for fewer than two atoms."""
    if len(atoms) < 2:
        return float("inf"), -1, -1
    x = xyz_A[atoms]
    d = x[:, None, :] - x[None, :, :]
    if box_A is not None:
        d -= box_A * np.round(d / box_A)
    r = np.linalg.norm(d, axis=-1)
    r[np.diag_indices(len(atoms))] = np.inf
    a, b = np.unravel_index(int(np.argmin(r)), r.shape)
    return float(r[a, b]), atoms[min(a, b)], atoms[max(a, b)]


def minimised_positions_A(system: openmm.System, xyz_nm: np.ndarray) -> np.ndarray:
    """Positions (A) after OpenMM's LocalEnergyMinimizer on the CPU platform (threads from
    ``SOLVMD_CPU_THREADS``); ``system`` itself is not changed."""
    threads = os.environ.get("SOLVMD_CPU_THREADS")
    props = {"Threads": threads} if threads else {}
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"), props)
    ctx.setPositions(np.asarray(xyz_nm) * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(ctx, MINIMIZE_TOLERANCE_KJ_MOL_NM, MINIMIZE_MAX_ITERATIONS)
    return ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)


def check_cation_separation(system: openmm.System, topology: app.Topology, xyz_nm: np.ndarray,
                            min_A: float = MIN_CATION_SEPARATION_A) -> float:
    """Minimise a copy of the structure; refuse it (SolvmdError naming the pair) if two
    monoatomic cations end closer than ``min_A`` (A). Returns the closest cation-cation
    distance found (A; inf with fewer than two cations)."""
    atoms = cation_atoms(topology)
    if len(atoms) < 2:
        return float("inf")
    xyz_A = minimised_positions_A(system, xyz_nm)
    vectors = topology.getPeriodicBoxVectors()
    box_A = None if vectors is None else np.array([vectors[k][k].value_in_unit(unit.angstrom) for k in range(3)])
    r, i, j = closest_pair_A(xyz_A, atoms, box_A)
    if r < min_A:
        top_atoms = list(topology.atoms())
        raise SolvmdError(f"build refused: after energy minimization the cations {_atom_label(top_atoms[i])} and "
                          f"{_atom_label(top_atoms[j])} are {r:.2f} A apart (physical minimum {min_A} A for a "
                          "cation-cation pair): the force field lets them collapse onto each other; check the "
                          "exclusions and bonded terms of the complexes (forcefields/SOURCES.md, bonded Mg-Cl model)")
    return r
