"""Collective variables as OpenMM forces, and the same CVs evaluated from positions.

The umbrella bias is ``0.5*pmf_k*(cv - pmf_r0)^2`` in a ``CustomCentroidBondForce`` whose
global parameters ``pmf_r0`` (window centre, nm) and ``pmf_k`` (kJ/mol/nm^2) are set per
window (prefixed so they cannot clash with other global parameters in the System).

CVs (groups are atom-index lists with centroid weights):

- ``distance`` / ``site_distance``: ``distance(g1, g2)`` between the group centroids,
  minimum image when the System is periodic;
- ``height``: ``z1 - z2`` (cation above the surface-atom centroid) or ``z1 - pmf_z0``
  (fixed plane). Not wrapped: OpenMM keeps coordinates unwrapped during a run, and the
  starting cation image is chosen by :func:`image_for_height`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import openmm as mm

from solvmd.geometry import minimum_image_vectors

R0 = "pmf_r0"
K = "pmf_k"
Z0 = "pmf_z0"
BIAS_GROUP = 30  # force group of the umbrella bias alone (its energy is what replica exchange swaps on)
# The contact-layer hold is part of the sampled Hamiltonian, not of the bias: in its own group, so the
# exchange sampler's state energies (group BIAS_GROUP only) and MBAR's u_kn hold the umbrella alone,
# and the PMF is that of the held ion.
HOLD_GROUP = 28  # (29 is mixing.CORRECTION_GROUP)


@dataclass
class ResolvedCV:
    """A CV with explicit atoms: what a window needs, saved as ``cv.json``."""

    kind: str
    groups: list[list[int]]
    weights: list[list[float]]
    z0_nm: float | None = None
    periodic: bool = True
    description: str = ""
    meta: dict = field(default_factory=dict)

    def to_json(self, path: str | Path) -> None:
        from solvmd.pmf.io import atomic_write_text

        atomic_write_text(Path(path), json.dumps(asdict(self), indent=2))

    @classmethod
    def from_json(cls, path: str | Path) -> "ResolvedCV":
        return cls(**json.loads(Path(path).read_text()))


def energy_expression(rcv: ResolvedCV) -> str:
    if rcv.kind in ("distance", "site_distance"):
        cv = "distance(g1,g2)"
    elif rcv.kind == "height":
        cv = "z1-z2" if len(rcv.groups) == 2 else f"z1-{Z0}"
    else:  # pragma: no cover - guarded by the spec
        raise ValueError(f"unknown CV kind {rcv.kind}")
    return f"0.5*{K}*(cv-{R0})^2; cv={cv}"


def make_bias_force(rcv: ResolvedCV, k: float, r0: float) -> mm.CustomCentroidBondForce:
    """Harmonic umbrella on the CV, global parameters ``pmf_k`` and ``pmf_r0``."""
    f = mm.CustomCentroidBondForce(len(rcv.groups), energy_expression(rcv))
    f.addGlobalParameter(K, float(k))
    f.addGlobalParameter(R0, float(r0))
    if rcv.kind == "height" and len(rcv.groups) == 1:
        f.addGlobalParameter(Z0, float(rcv.z0_nm))
    for atoms, w in zip(rcv.groups, rcv.weights):
        f.addGroup([int(a) for a in atoms], [float(x) for x in w])
    f.addBond(list(range(len(rcv.groups))), [])
    f.setUsesPeriodicBoundaryConditions(bool(rcv.periodic) and rcv.kind != "height")
    f.setForceGroup(BIAS_GROUP)
    f.setName("pmf_umbrella")
    return f


def make_hold_force(hold: dict) -> mm.CustomCentroidBondForce:
    """Harmonic restraint 0.5 k (z_ion - z_sheet - h)^2 holding the ion at height h (nm) above a sheet.

    ``hold``: {"groups": [[ion atoms], [sheet atoms]], "height_nm": h, "k_kJ_mol_nm2": k}.
    """
    f = mm.CustomCentroidBondForce(2, "0.5*pmf_hold_k*(z1-z2-pmf_hold_h)^2")
    f.addGlobalParameter("pmf_hold_k", float(hold["k_kJ_mol_nm2"]))
    f.addGlobalParameter("pmf_hold_h", float(hold["height_nm"]))
    for atoms in hold["groups"]:
        f.addGroup([int(a) for a in atoms], [1.0] * len(atoms))
    f.addBond([0, 1], [])
    f.setUsesPeriodicBoundaryConditions(False)
    f.setForceGroup(HOLD_GROUP)
    f.setName("pmf_hold")
    return f


def add_bias(system: mm.System, rcv: ResolvedCV, k: float, r0: float) -> int:
    """Add the umbrella (and a contact-layer hold, if any) to ``system`` after checking its atoms
    exist; returns the umbrella's force index."""
    n = system.getNumParticles()
    hold = rcv.meta.get("hold")
    groups = rcv.groups + (hold["groups"] if hold else [])
    bad = sorted({a for g in groups for a in g if a >= n or a < 0})
    if bad:
        raise IndexError(f"CV atoms {bad} do not exist: the System has {n} particles (indices 0..{n - 1})")
    if hold:
        system.addForce(make_hold_force(hold))
    return system.addForce(make_bias_force(rcv, k, r0))


def _centroids(rcv: ResolvedCV, pos: np.ndarray) -> list[np.ndarray]:
    out = []
    for atoms, w in zip(rcv.groups, rcv.weights):
        w = np.asarray(w, float)
        out.append((pos[..., atoms, :] * w[:, None]).sum(axis=-2) / w.sum())
    return out


def cv_value(rcv: ResolvedCV, positions, box=None) -> np.ndarray | float:
    """CV from positions (nm), shape (n_atoms, 3) or (n_frames, n_atoms, 3); same convention as the force."""
    pos = np.asarray(positions, float)
    c = _centroids(rcv, pos)
    if rcv.kind == "height":
        out = c[0][..., 2] - (c[1][..., 2] if len(c) == 2 else rcv.z0_nm)
        return out if np.ndim(out) else float(out)
    d = c[1] - c[0]
    if rcv.periodic and box is not None:
        shape = d.shape
        d = minimum_image_vectors(d.reshape(-1, 3), np.asarray(box, float)).reshape(shape)
    out = np.linalg.norm(d, axis=-1)
    return out if np.ndim(out) else float(out)


def context_cv(context: mm.Context, rcv: ResolvedCV) -> float:
    st = context.getState(getPositions=True)
    return cv_value(rcv, st.getPositions(asNumpy=True)._value, st.getPeriodicBoxVectors(asNumpy=True)._value)


def image_positions(rcv: ResolvedCV, pos: np.ndarray, box) -> np.ndarray:
    """Positions with the periodic images the restraints expect: the height CV's molecule, and a
    held cation, each shifted by whole box vectors c so its height lies in [-Lz/2, Lz/2)."""
    pos = image_for_height(rcv, pos, box, rcv.meta.get("moving_atoms", rcv.groups[0]))
    hold = rcv.meta.get("hold")
    if hold and box is not None:
        held = ResolvedCV("height", hold["groups"], [[1.0] * len(g) for g in hold["groups"]])
        pos = image_for_height(held, pos, box, hold["groups"][0])
    return pos


def image_for_height(rcv: ResolvedCV, pos: np.ndarray, box: np.ndarray, molecule: list[int]) -> np.ndarray:
    """Shift the cation's molecule by whole box vectors c so its height lies in [-Lz/2, Lz/2)."""
    if rcv.kind != "height" or box is None:
        return pos
    h = cv_value(rcv, pos)
    lz = box[2, 2]
    n = np.floor((h + 0.5 * lz) / lz)
    if n != 0:
        pos = pos.copy()
        pos[molecule] -= n * box[2]
    return pos
