"""Packing molecules into a box with packmol (the binary shipped by the PyPI package).

packmol gets one single-molecule PDB per species (RDKit 3D coordinates), a fixed seed
and a box shrunk by the tolerance so periodic images do not overlap. Its exit code and
its output are checked; a failure names the species and what to change.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from openmm import app, unit

from solvmd import complexes
from solvmd import species as species_registry
from solvmd.errors import SolvmdError


def packmol_executable() -> str:
    """Path of the packmol binary: the one next to this Python first, then PATH."""
    local = Path(sys.executable).parent / "packmol"
    if local.is_file():
        return str(local)
    found = shutil.which("packmol")
    if found is None:
        raise SolvmdError("packmol not found: install it with `pip install packmol`")
    return found


def _write_unit_pdb(path: Path, name: str, seed: int) -> None:
    """One packing unit as a single packmol structure (OpenMM ``PDBFile``), coordinates in A, centred.

    A species: its RDKit conformer (``seed``). A pre-assembled complex: all its member residues,
    packed rigid as a whole.
    """
    if complexes.is_complex(name):
        from solvmd.assembly.complex_geometry import build_structure

        st = build_structure(name)
        members, xyz = st.members, st.xyz_A
    else:
        members, xyz = [name], species_registry.get(name).coordinates(seed)
    top = app.Topology()
    chain = top.addChain("A")
    for member in members:
        sp = species_registry.get(member)
        res = top.addResidue(sp.residue, chain)
        for atom_name, atom in zip(sp.atom_names, sp.mol.GetAtoms()):
            top.addAtom(atom_name, app.Element.getBySymbol(atom.GetSymbol()), res)
    with open(path, "w") as fh:
        app.PDBFile.writeFile(top, (xyz - xyz.mean(axis=0)) * unit.angstrom, fh)


def _read_pdb_xyz(path: Path) -> np.ndarray:
    """Atom positions (A) of a PDB file, in file order (OpenMM ``PDBFile``)."""
    return app.PDBFile(str(path)).getPositions(asNumpy=True).value_in_unit(unit.angstrom)


def pack(
    counts: dict[str, int],
    box_A: tuple[float, float, float] | float,
    seed: int,
    tolerance_A: float = 2.0,
    nloop: int = 200,
    region_z_A: tuple[float, float] | None = None,
    timeout_s: float = 1800.0,
) -> np.ndarray:
    """Pack ``counts`` molecules into a periodic box with packmol.

    Args:
        counts: species or complex name -> number of units, in the order they will appear
            (a pre-assembled complex is packed as one rigid structure).
        box_A: box edge lengths in angstrom (a float for a cube).
        seed: packmol random seed (recorded in the manifest).
        tolerance_A: minimum distance between atoms of different molecules, angstrom.
        nloop: packmol GENCAN loop budget per species.
        region_z_A: optional (z_lo, z_hi) slab to fill instead of the whole box height.
        timeout_s: wall-clock limit for packmol.

    Returns:
        Coordinates in angstrom, shape (n_atoms, 3), molecules in ``counts`` order.
    """
    box = np.broadcast_to(np.asarray(box_A, dtype=float), (3,))
    margin = tolerance_A / 2.0
    lo = np.array([margin, margin, margin])
    hi = box - margin
    if region_z_A is not None:
        lo[2], hi[2] = region_z_A[0] + margin, region_z_A[1] - margin
    if np.any(hi - lo <= 0):
        raise SolvmdError(f"packing region {lo}..{hi} angstrom is empty; the box is too small")

    with tempfile.TemporaryDirectory(prefix="solvmd-packmol-") as tmp:
        tmp = Path(tmp)
        _write_input(tmp, counts, box, lo, hi, seed, tolerance_A, nloop)
        try:
            with open(tmp / "pack.inp") as stdin:
                proc = subprocess.run(
                    [packmol_executable()], stdin=stdin, cwd=tmp, capture_output=True, text=True, timeout=timeout_s
                )
        except subprocess.TimeoutExpired:
            raise SolvmdError(
                f"packmol did not finish in {timeout_s:.0f} s packing {counts} into {box.round(1)} angstrom; "
                "lower the density or the tolerance (packing.tolerance_A)"
            ) from None
        out = proc.stdout + proc.stderr
        if proc.returncode != 0 or "Success!" not in out or not (tmp / "packed.pdb").exists():
            raise SolvmdError(_explain_failure(out, proc.returncode, counts, box))
        xyz = _read_pdb_xyz(tmp / "packed.pdb")
    expected = sum(complexes.unit_n_atoms(n) * k for n, k in counts.items())
    if len(xyz) != expected:
        raise SolvmdError(f"packmol wrote {len(xyz)} atoms, expected {expected}")
    return xyz


def _write_input(tmp: Path, counts: dict[str, int], box: np.ndarray, lo: np.ndarray, hi: np.ndarray, seed: int,
                 tolerance_A: float, nloop: int) -> None:
    """``pack.inp`` and one PDB per unit in ``tmp``: every unit ``inside box lo..hi`` (A), periodic box ``box``."""
    lines = [f"tolerance {tolerance_A}", f"seed {seed}", "filetype pdb", "output packed.pdb", f"nloop {nloop}",
             "movebadrandom", f"pbc 0. 0. 0. {box[0]:.4f} {box[1]:.4f} {box[2]:.4f}"]
    for name, n in counts.items():
        _write_unit_pdb(tmp / f"{name}.pdb", name, seed)
        lines += [
            f"structure {name}.pdb",
            f"  number {n}",
            f"  inside box {lo[0]:.4f} {lo[1]:.4f} {lo[2]:.4f} {hi[0]:.4f} {hi[1]:.4f} {hi[2]:.4f}",
            "end structure",
        ]
    (tmp / "pack.inp").write_text("\n".join(lines) + "\n")


def _explain_failure(out: str, code: int, counts: dict[str, int], box: np.ndarray) -> str:
    culprit = ""
    for line in out.splitlines():
        if "structure" in line.lower() and ("could not" in line.lower() or "failed" in line.lower()):
            culprit = line.strip()
    tail = "\n".join(out.strip().splitlines()[-8:])
    species_hint = ", ".join(f"{n} x{k}" for n, k in counts.items())
    return (
        f"packmol failed (exit code {code}) packing [{species_hint}] into a {box.round(1)} angstrom box. "
        f"{culprit + ' ' if culprit else ''}"
        "Lower the density estimate (larger box), reduce packing.tolerance_A, or raise packing.nloop.\n"
        f"packmol said:\n{tail}"
    )
