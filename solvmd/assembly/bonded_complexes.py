"""Bonded model for the Mg-Cl core of chloro complexes (MCPB-style, Mg-O left nonbonded).

A complex of ``forcefields/complexes.yaml`` with a ``bonded:`` entry gets, in the System:

* a harmonic bond for every metal-Cl contact of its declared geometry (terminal and bridging),
* harmonic angles Cl(b)-M-Cl(b) at each metal and M-Cl(b)-M at each bridging Cl,
* exclusions for the pairs those terms replace: every 1-2 pair (Mg-Cl) and every 1-3 pair of
  a ligand-metal-ligand angle (Cl...Cl), in every NonbondedForce (as an exception with zero
  charge product and epsilon) and every CustomNonbondedForce (as an exclusion), as for
  bonded atoms in any force field (AMBER/MCPB.py convention);
* NOT the metal...metal 1-3 pair of a metal-ligand-metal angle (Mg...Mg through each
  bridging Cl): two cations keep their full nonbonded pair (Coulomb + LJ), because no bonded
  term replaces their mutual repulsion (issue 29: with it excluded the dimer collapsed to
  Mg...Mg 1.2 A in solution). Why, and the source: forcefields/SOURCES.md, "Bonded Mg-Cl model".

The parameters (r0, k, theta0) come from the file named in the ``bonded:`` entry
(``forcefields/qm/mg_complexes_seminario.json``: GFN2-xTB Hessian, Seminario method,
``forcefields/tools/mg_complex_seminario.py``). Metal-O(THF) and everything else stays
nonbonded, so a THF can leave while the Mg-Cl core holds. Units in the file: A, deg,
kJ/mol/A^2, kJ/mol/rad^2 (E = 1/2 k (x - x0)^2).
"""

from __future__ import annotations

import math

import numpy as np
import openmm

from solvmd import complexes as cx_registry
from solvmd.assembly.complex_geometry import complex_instances
from solvmd.errors import SolvmdError

GEOMETRY_TOL_A = 0.30  # a bonded pair further than this from r0 at build time is not the declared complex


def _terms_for(name: str, inst: dict, elements: list[str]) -> tuple[list, list]:
    """(bonds [(i, j, kind)], angles [(i, j, k, kind)]) of one complex instance, global indices."""
    bridging = set(inst["bridging"])
    bonds = [(m, d, "Mg-Cl_bridging" if d in bridging else "Mg-Cl_terminal")
             for m, d in inst["bonds"] if elements[d] == "Cl"]
    angles = []
    br = sorted(bridging)
    for m in inst["metals"]:
        angles += [(a, m, c, "Cl-Mg-Cl") for i, a in enumerate(br) for c in br[i + 1:]]
    if len(inst["metals"]) == 2:
        m1, m2 = inst["metals"]
        angles += [(m1, c, m2, "Mg-Cl-Mg") for c in br]
    return bonds, angles


def _check_geometry(name: str, bonds: list, params: dict, xyz_nm: np.ndarray) -> None:
    for i, j, kind in bonds:
        r = float(np.linalg.norm(xyz_nm[i] - xyz_nm[j])) * 10.0
        r0 = params["bonds"][kind]["r_qm_A"]
        if abs(r - r0) > GEOMETRY_TOL_A:
            raise SolvmdError(f"bonded complex {name}: atoms {i}-{j} ({kind}) are {r:.2f} A apart, the bonded "
                              f"model's equilibrium is {r0:.2f} A (tolerance {GEOMETRY_TOL_A} A): the packed "
                              "structure is not the declared complex geometry")


def excluded_pairs(bonds: list, angles: list, metals: list[int]) -> set[tuple[int, int]]:
    """Atom pairs (i < j, global indices) whose nonbonded interaction the bonded terms replace:
    the 1-2 pair of every bond and the 1-3 pair of every angle, except a 1-3 pair of two
    ``metals`` (a metal-ligand-metal angle), which keeps its nonbonded pair (module docstring)."""
    metal_set = set(metals)
    pairs = {(min(i, j), max(i, j)) for i, j, _ in bonds}
    pairs |= {(min(i, k), max(i, k)) for i, _, k, _ in angles if not {i, k} <= metal_set}
    return pairs


def _exclude(system: openmm.System, pairs: set[tuple[int, int]]) -> None:
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            for i, j in pairs:
                force.addException(i, j, 0.0, 0.1, 0.0, True)
        elif isinstance(force, openmm.CustomNonbondedForce):
            have = {tuple(sorted(force.getExclusionParticles(k))) for k in range(force.getNumExclusions())}
            for i, j in sorted(pairs - have):
                force.addExclusion(i, j)


def _check_charge_scale(name: str, file: str, charge_scale: float | None) -> None:
    """Refuse a bonded complex in a System whose ionic charge scale is not the one its
    effective r0 / theta0 were fitted at (the fit balances the nonbonded forces at that scale)."""
    fitted = cx_registry.bonded_charge_scale(file)
    if charge_scale is not None and fitted is not None and abs(charge_scale - fitted) > 1e-9:
        raise SolvmdError(f"bonded complex {name}: its bonded terms (forcefields/{file}) were fitted at "
                          f"charge_scale {fitted}, the recipe has charge_scale {charge_scale}; use {fitted} or "
                          "refit them (python forcefields/tools/mg_complex_seminario.py --refit)")


def add_complex_bonds(system: openmm.System, units: dict[str, int], elements: list[str],
                      xyz_nm: np.ndarray, params: dict[str, dict] | None = None,
                      charge_scale: float | None = None) -> list[dict]:
    """Add the bonded Mg-Cl model of every bonded complex in ``units`` (packed in that order)
    to ``system``; returns manifest records (complex, counts of terms, parameter file).
    ``params`` (complex name -> terms) replaces the file's terms (used by the fitting script);
    ``charge_scale`` (the System's ionic charge scale), when given, must be the one the
    file's terms were fitted at."""
    records = []
    bond_f = angle_f = None
    for rec in complex_instances(units):
        cx = cx_registry.get(rec["name"])
        if cx.bonded is None:
            continue
        _check_charge_scale(rec["name"], cx.bonded.file, charge_scale)
        p = (params or {}).get(rec["name"]) or cx_registry.bonded_parameters(cx.bonded.file, cx.bonded.entry)
        if bond_f is None:
            bond_f, angle_f = openmm.HarmonicBondForce(), openmm.HarmonicAngleForce()
            bond_f.setName("ComplexBonds")
            angle_f.setName("ComplexAngles")
        n_b = n_a = 0
        for inst in rec["instances"]:
            bonds, angles = _terms_for(rec["name"], inst, elements)
            _check_geometry(rec["name"], bonds, p, xyz_nm)
            for i, j, kind in bonds:
                t = p["bonds"][kind]
                bond_f.addBond(i, j, t["r0_A"] / 10.0, t["k_kJ_mol_A2"] * 100.0)
            for i, j, k, kind in angles:
                t = p["angles"][kind]
                angle_f.addAngle(i, j, k, math.radians(t["theta0_deg"]), t["k_kJ_mol_rad2"])
            _exclude(system, excluded_pairs(bonds, angles, inst["metals"]))
            n_b, n_a = n_b + len(bonds), n_a + len(angles)
        records.append({"name": rec["name"], "bonds": n_b, "angles": n_a,
                        "parameters": f"forcefields/{cx.bonded.file}#{cx.bonded.entry}"})
    if bond_f is not None:
        system.addForce(bond_f)
        system.addForce(angle_f)
    return records
