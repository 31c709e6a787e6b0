"""Desolvation profile: the tagged ion's first shell along the PMF coordinate.

For each sample of each window: how many molecules of each solvent / anion species have a
donor atom within ``cutoff_nm`` of the ion (counted per molecule: a bidentate DME counts once),
and how many sheet atoms of each element (metal site, N, C) lie within the same cutoff.
:func:`write_profile` averages them per window into ``profile.csv`` (``r0_nm``,
``cv_mean_nm``, ``n_<species>``, ``n_surface_<element>``, ``n_solvent_total``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from solvmd.geometry import minimum_image_vectors
from solvmd.pmf.io import atomic_write_text

SHELL = "shell.json"


def shell_map(topology, rcv, donors, cutoff_nm: float, surface_residues=("GRA",)) -> dict:
    """Atoms to count around the ion: donor atoms (with species, residue) and sheet atoms (by element)."""
    ion = set(rcv.groups[0])
    cations = {r.name.upper() for r in topology.residues() if ion & {a.index for a in r.atoms()}}
    sheet = {s.upper() for s in surface_residues}
    don, res, spc, surf, surf_el = [], [], [], [], []
    for a in topology.atoms():
        rn = a.residue.name.upper()
        el = a.element.symbol if a.element is not None else "X"
        if rn in sheet:
            surf.append(a.index)
            surf_el.append(el)
        elif el in donors and rn not in cations and a.index not in ion:
            don.append(a.index)
            res.append(a.residue.index)
            spc.append(a.residue.name)
    return {"cutoff_nm": float(cutoff_nm), "ion_atom": int(rcv.groups[0][0]), "donor_atoms": don,
            "donor_residue": res, "donor_species": spc, "surface_atoms": surf, "surface_elements": surf_el}


def write_shell_map(path, data: dict) -> Path:
    return atomic_write_text(Path(path), json.dumps(data))


class ShellCounter:
    """Per-sample first-shell counts of the tagged ion from positions (nm) and box (nm)."""

    def __init__(self, data: dict):
        self.cut = data["cutoff_nm"]
        self.ion = data["ion_atom"]
        self.don = np.asarray(data["donor_atoms"], int)
        self.res = np.asarray(data["donor_residue"], int)
        spc = np.asarray(data["donor_species"], str)
        self.species = sorted(set(spc.tolist()))
        self.spc_idx = np.array([self.species.index(s) for s in spc], int)
        self.surf = np.asarray(data["surface_atoms"], int)
        el = np.asarray(data["surface_elements"], str)
        self.elements = sorted(set(el.tolist()))
        self.el_idx = np.array([self.elements.index(e) for e in el], int)
        self.columns = [f"n_{s}" for s in self.species] + [f"n_surface_{e}" for e in self.elements]

    @classmethod
    def load(cls, folder) -> "ShellCounter | None":
        path = Path(folder) / SHELL
        return cls(json.loads(path.read_text())) if path.is_file() else None

    def _near(self, atoms, pos, box):
        d = pos[atoms] - pos[self.ion]
        if box is not None:
            d = minimum_image_vectors(d, box).reshape(np.shape(d))
        return np.linalg.norm(d, axis=1) < self.cut

    def count(self, pos, box) -> np.ndarray:
        """[molecules per species..., sheet atoms per element...] within the cutoff."""
        out = np.zeros(len(self.columns), np.int16)
        if self.don.size:
            near = self._near(self.don, pos, box)
            for s in range(len(self.species)):
                out[s] = len(np.unique(self.res[near & (self.spc_idx == s)]))
        if self.surf.size:
            near = self._near(self.surf, pos, box)
            out[len(self.species):] = np.bincount(self.el_idx[near], minlength=len(self.elements))
        return out


def profile_table(paths) -> pd.DataFrame | None:
    """Mean shell counts per window (sorted by sampled mean) from ``window_<k>.npz``; None without counts."""
    rows = []
    for p in paths:
        with np.load(p) as z:
            if "shell_counts" not in z:
                return None
            cols = [str(c) for c in z["shell_columns"]]
            m = np.asarray(z["shell_counts"], float).mean(axis=0)
            row = {"window": int(z["window"]), "r0_nm": float(z["r0_nm"]), "cv_mean_nm": float(np.mean(z["cv_nm"]))}
            row.update({c: float(v) for c, v in zip(cols, m)})
            rows.append(row)
    df = pd.DataFrame(rows).sort_values("cv_mean_nm").fillna(0.0)  # where each window sampled
    solv = [c for c in df.columns if c.startswith("n_") and not c.startswith("n_surface_")]
    df["n_shell_total"] = df[solv].sum(axis=1)
    return df.reset_index(drop=True)


def write_profile(paths, out_csv) -> pd.DataFrame | None:
    df = profile_table(paths)
    if df is not None:
        atomic_write_text(out_csv, df.to_csv(index=False, float_format="%.5g"))
    return df
