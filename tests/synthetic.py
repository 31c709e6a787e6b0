"""Test data: small synthetic systems with known answers (tests) and a large synthetic electrolyte (benchmark).

Lives in tests/, not in the package: it is test data, not library code.

Nothing here is physics: these are configurations built to make an analysis answer
exactly known, or to give a realistic *amount* of structure for a speed comparison.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import MDAnalysis as mda
import numpy as np
from MDAnalysis.coordinates.memory import MemoryReader

from solvmd.geometry import random_rotation, rotation_to


@dataclass
class Molecule:
    """A residue template: residue name, atom names, elements, coordinates (A, centred)."""

    resname: str
    names: list[str]
    elements: list[str]
    xyz: np.ndarray

    @property
    def n_atoms(self) -> int:
        return len(self.names)


def build_universe(
    residues: list[Molecule | tuple[str, list[str], list[str]]],
    coords: np.ndarray,
    box: np.ndarray | list[float] | None,
    dt_ps: float = 1.0,
    masses: bool = True,
) -> mda.Universe:
    """Universe with one residue per entry and an in-memory trajectory.

    ``coords``: (frames, atoms, 3) or (atoms, 3); ``box``: [a, b, c, alpha, beta, gamma]
    (or an array of them per frame), or None for no box.
    """
    res = [r if isinstance(r, Molecule) else Molecule(r[0], list(r[1]), list(r[2]), np.zeros((len(r[1]), 3))) for r in residues]
    n_atoms = sum(r.n_atoms for r in res)
    resindex = np.concatenate([np.full(r.n_atoms, i) for i, r in enumerate(res)]) if res else np.zeros(0, int)
    coords = np.asarray(coords, dtype=np.float32)
    if coords.ndim == 2:
        coords = coords[None]
    u = mda.Universe.empty(n_atoms, n_residues=len(res), atom_resindex=resindex, trajectory=False)
    u.add_TopologyAttr("names", [n for r in res for n in r.names])
    u.add_TopologyAttr("elements", [e for r in res for e in r.elements])
    u.add_TopologyAttr("types", [e for r in res for e in r.elements])
    u.add_TopologyAttr("resnames", [r.resname for r in res])
    u.add_TopologyAttr("resids", np.arange(1, len(res) + 1))
    if masses:
        table = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998, "S": 32.06, "P": 30.974,
                 "Li": 6.94, "LI": 6.94, "Na": 22.99, "Mg": 24.305, "Cl": 35.45}  # fmt: skip
        u.add_TopologyAttr("masses", [table.get(e, 12.0) for r in res for e in r.elements])
    dims = None
    if box is not None:
        b = np.asarray(box, dtype=np.float32)
        dims = np.tile(b, (coords.shape[0], 1)) if b.ndim == 1 else b
    u.load_new(coords, format=MemoryReader, dimensions=dims, dt=dt_ps)
    return u


def write_trajectory(u: mda.Universe, topology: Path, trajectory: Path) -> tuple[Path, Path]:
    """Write the first frame as topology (PDB/GRO/...) and all frames as trajectory (DCD/XTC/...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.trajectory[0]
        u.atoms.write(str(topology))
        with mda.Writer(str(trajectory), u.atoms.n_atoms) as w:
            for _ in u.trajectory:
                w.write(u.atoms)
    return Path(topology), Path(trajectory)


# ---------------------------------------------------------------- benchmark electrolyte


def _template(name: str) -> Molecule:
    """All-atom template from the solvmd species registry (RDKit conformer), centred."""
    from solvmd import species

    sp = species.get(name)
    xyz = sp.coordinates(seed=7)
    xyz = xyz - xyz.mean(0)
    elements = [a.GetSymbol() for a in sp.mol.GetAtoms()]
    return Molecule(sp.residue, sp.atom_names, elements, xyz)


def lattice_electrolyte(
    n_salt: int = 100,
    solvent_per_salt: int = 8,
    n_frames: int = 500,
    seed: int = 1,
    dt_ps: float = 1.0,
    cation: str = "Li",
    anion: str = "FSI",
    solvent: str = "DME",
    exchange_prob: float = 0.01,
) -> tuple[mda.Universe, dict]:
    """A coarse synthetic LiFSI/DME-like electrolyte (all atoms) for speed comparisons.

    Construction: cations sit on a jittered lattice; each gets two bidentate solvents
    (both O at 2.1 A) and 0-2 monodentate anions (one O at 2.0 A) along tetrahedral
    directions; about a quarter of the cations come in pairs bridged by a shared anion
    (AGG). The remaining solvents and anions fill the space at random orientations.
    Each frame every rigid unit (cation complex or free molecule) random-walks, every
    atom gets 0.08 A noise, and bound solvents swap places with free ones with
    probability ``exchange_prob`` per frame (finite residence times). Molecules are
    wrapped whole into the box. A structure generator, not a simulation.
    """
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    cat, an, sol = _template(cation), _template(anion), _template(solvent)
    an_O = [i for i, e in enumerate(an.elements) if e == "O"]
    sol_O = [i for i, e in enumerate(sol.elements) if e == "O"][:2]
    n_sol = n_salt * solvent_per_salt
    n_atoms = n_salt * (cat.n_atoms + an.n_atoms) + n_sol * sol.n_atoms
    L = float((n_atoms / 0.095) ** (1 / 3))  # ~0.095 atoms/A^3, liquid ether with H
    tetra = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)

    def solvent_at(cpos, direction):
        xs = sol.xyz @ random_rotation(rng).T
        o_a, o_b = xs[sol_O[0]], xs[sol_O[1]]
        axis = (o_b - o_a) / np.linalg.norm(o_b - o_a)
        mid = 0.5 * (o_a + o_b)
        w = mid - xs.mean(0)
        w -= np.dot(w, axis) * axis
        w /= np.linalg.norm(w) + 1e-12
        R = rotation_to(-w, direction)  # molecule body away from the cation
        xs = xs @ R.T
        o_a, o_b = xs[sol_O[0]], xs[sol_O[1]]
        mid = 0.5 * (o_a + o_b)
        half = 0.5 * np.linalg.norm(o_a - o_b)
        h = np.sqrt(max(2.1**2 - half**2, 0.2))
        site = mid - direction * h
        return xs + (cpos - site)

    def anion_at(cpos, direction, o):
        xa = an.xyz @ random_rotation(rng).T
        out = xa[o] - xa.mean(0)
        xa = xa @ rotation_to(-out, direction).T
        out = (xa[o] - xa.mean(0)) / np.linalg.norm(xa[o] - xa.mean(0))
        return xa + (cpos - (xa[o] + 2.0 * out))

    mols: list[tuple[Molecule, np.ndarray]] = []
    unit_of_mol: list[int] = []
    n_units = 0
    n_grid = int(np.ceil(n_salt ** (1 / 3)))
    sites = (np.array([(i, j, k) for i in range(n_grid) for j in range(n_grid) for k in range(n_grid)], float) + 0.5)
    sites *= L / n_grid
    rng.shuffle(sites)
    anions_used = cat_count = 0
    for centre in sites:
        if cat_count >= n_salt:
            break
        centre = centre + rng.normal(scale=0.5, size=3)
        paired = cat_count + 1 < n_salt and rng.random() < 0.25 and anions_used < n_salt
        cats = [centre]
        members = []
        if paired:  # Li-FSI-Li: one O of the anion on each cation
            xa = an.xyz @ random_rotation(rng).T
            c0 = xa.mean(0)
            o1 = an_O[0]
            o2 = max(an_O, key=lambda i: np.linalg.norm(xa[i] - xa[o1]))
            p1 = xa[o1] + 2.0 * (xa[o1] - c0) / np.linalg.norm(xa[o1] - c0)
            p2 = xa[o2] + 2.0 * (xa[o2] - c0) / np.linalg.norm(xa[o2] - c0)
            mols.append((an, xa + centre - p1))
            members.append(len(mols) - 1)
            cats = [centre, p2 + centre - p1]
            anions_used += 1
        for cpos in cats:
            mols.append((cat, cat.xyz + cpos))
            members.append(len(mols) - 1)
            cat_count += 1
            d = tetra @ random_rotation(rng).T
            n_an = 0 if anions_used >= n_salt else int(rng.choice([0, 1, 2], p=[0.4, 0.45, 0.15]))
            if paired:
                n_an = min(n_an, 1)
            for k in range(2):
                mols.append((sol, solvent_at(cpos, d[k])))
                members.append(len(mols) - 1)
            for k in range(min(n_an, n_salt - anions_used)):
                mols.append((an, anion_at(cpos, d[2 + k], an_O[rng.integers(len(an_O))])))
                members.append(len(mols) - 1)
                anions_used += 1
        unit_of_mol += [n_units] * len(members)
        n_units += 1
    n_sol_bound = sum(1 for t, _ in mols if t is sol)
    free_list = [an] * (n_salt - anions_used) + [sol] * (n_sol - n_sol_bound)
    rng.shuffle(free_list)
    occupied = np.concatenate([x for _, x in mols])
    n_fine = int(np.ceil((len(free_list) * 1.6) ** (1 / 3)))
    grid = (np.array([(i, j, k) for i in range(n_fine) for j in range(n_fine) for k in range(n_fine)], float) + 0.5)
    grid *= L / n_fine
    dist, _ = cKDTree(occupied % L, boxsize=L).query(grid % L)
    grid = grid[np.argsort(-dist, kind="stable")][: len(free_list)]
    for tmpl, p in zip(free_list, grid):
        mols.append((tmpl, tmpl.xyz @ random_rotation(rng).T + p))
        unit_of_mol.append(n_units)
        n_units += 1

    # residues ordered cations, anions, solvents (like a packmol build)
    rank = {id(cat): 0, id(an): 1, id(sol): 2}
    order = sorted(range(len(mols)), key=lambda i: rank[id(mols[i][0])])
    templates = [mols[i][0] for i in order]
    X = np.concatenate([mols[i][1] for i in order])
    unit_of = np.array([unit_of_mol[i] for i in order])
    sizes = np.array([t.n_atoms for t in templates])
    start = np.concatenate([[0], np.cumsum(sizes)])
    atom_mol = np.repeat(np.arange(len(templates)), sizes)
    is_sol = np.array([t is sol for t in templates])
    unit_size = np.bincount(unit_of, minlength=n_units)
    bound = np.nonzero(is_sol & (unit_size[unit_of] > 1))[0]
    free_sol = np.nonzero(is_sol & (unit_size[unit_of] == 1))[0]
    step_sigma = np.where(unit_size > 1, 0.05, 0.08)  # A per frame and axis
    offsets = np.zeros((n_units, 3))
    frames = np.empty((n_frames, X.shape[0], 3), np.float32)
    for f in range(n_frames):
        if f:
            offsets += rng.normal(size=(n_units, 3)) * step_sigma[:, None]
            for bi in np.nonzero(rng.random(bound.size) < exchange_prob)[0]:
                b = bound[bi]
                j = rng.integers(free_sol.size)
                fr = free_sol[j]
                sb, sf = slice(start[b], start[b + 1]), slice(start[fr], start[fr + 1])
                # the free molecule takes the bound one's place (and joins its complex)
                X[sb], X[sf] = X[sf].copy(), X[sb].copy()
                unit_of[b], unit_of[fr] = unit_of[fr], unit_of[b]
                bound[bi], free_sol[j] = fr, b
        pos = X + offsets[unit_of[atom_mol]] + rng.normal(scale=0.08, size=X.shape)
        shift = -np.floor(pos[start[:-1]] / L) * L
        frames[f] = pos + np.repeat(shift, sizes, axis=0)
    resnames = [t.resname for t in templates]
    u = build_universe(templates, frames, [L, L, L, 90, 90, 90], dt_ps=dt_ps)
    info = {
        "box_A": round(L, 3),
        "n_atoms": int(X.shape[0]),
        "n_frames": n_frames,
        "residues": {rn: resnames.count(rn) for rn in dict.fromkeys(resnames)},
        "note": "synthetic lattice-based electrolyte (structure generator, not MD)",
    }
    return u, info


# ---------------------------------------------------------------- small random systems (tests)

LI = Molecule("LI", ["Li1"], ["Li"], np.zeros((1, 3)))
ANION3 = Molecule("FSI", ["N1", "O1", "O2"], ["N", "O", "O"], np.array([[0, 0, 0], [1.3, 0.6, 0], [-1.3, 0.6, 0.0]]))
SOLVENT3 = Molecule("DME", ["O1", "C1", "O2"], ["O", "C", "O"], np.array([[-1.4, 0, 0], [0, 0.5, 0], [1.4, 0, 0.0]]))


def random_system(
    n_cat: int = 6,
    n_an: int = 8,
    n_sol: int = 12,
    n_frames: int = 10,
    box: float = 15.0,
    seed: int = 0,
    dt_ps: float = 1.0,
) -> mda.Universe:
    """Cations, 3-atom anions (N + 2 O donors) and 3-atom solvents (2 O donors), rigid
    molecules at uniformly random positions/orientations, independently every frame."""
    rng = np.random.default_rng(seed)
    mols = [LI] * n_cat + [ANION3] * n_an + [SOLVENT3] * n_sol
    frames = []
    for _ in range(n_frames):
        xyz = [m.xyz @ random_rotation(rng).T + rng.uniform(0, box, 3) for m in mols]
        frames.append(np.concatenate(xyz) % box)  # wrap atoms individually (molecules may be split)
    return build_universe(mols, np.array(frames), [box, box, box, 90, 90, 90], dt_ps=dt_ps)
