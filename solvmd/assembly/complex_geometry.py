"""Start coordinates of pre-assembled complexes from ideal coordination geometry.

* ``octahedral``: metal at the origin, donors at distance d(element) along +z, -z, +x,
  +y, -x, -y (ligand k on site k; sites 0/1, 2/4 and 3/5 are trans pairs).
* ``face_sharing_bioctahedron``: metals at (0, 0, +-d_MM/2); the 3 bridging ligands in the
  plane z = 0 at radius sqrt(d_b^2 - (d_MM/2)^2), 120 deg apart; each metal's 3 terminal
  donors along the direction from a bridging ligand to that metal, i.e. trans to it.

A molecular ligand is placed with its donor atom on the site and its body pointing away
from the metal (the donor -> centroid-of-its-bonded-neighbours vector along the site
direction, as for an sp2-like ether O bound to a cation), then rotated about that axis
to the angle that keeps it farthest from the atoms already placed. Coordinates in angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solvmd import complexes as cx_registry
from solvmd import species as species_registry
from solvmd.geometry import axis_rotation, rotation_to

REFINE_PASSES = 4  # coordinate-descent passes over the ligand rotation angles
OCTAHEDRON = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]], dtype=float)


@dataclass(frozen=True)
class ComplexStructure:
    """Coordinates of one complex and what binds to what.

    Attributes:
        members: species per residue, in order.
        xyz_A: coordinates, angstrom, shape (n_atoms, 3), residues in ``members`` order.
        metals: atom indices (0-based, within the complex) of the metal ions.
        bridging: atom indices of the bridging ligands.
        bonds: (metal atom, donor atom, start distance in angstrom) for every metal-donor contact.
    """

    members: list[str]
    xyz_A: np.ndarray
    metals: list[int]
    bridging: list[int]
    bonds: list[tuple[int, int, float]]


def place_ligand(name: str, site_A: np.ndarray, outward: np.ndarray, placed_A: np.ndarray) -> tuple[np.ndarray, int]:
    """Coordinates (angstrom) of ligand ``name`` with its donor atom at ``site_A``, pointing along
    ``outward``, rotated about that axis away from ``placed_A``; and the donor's index in the ligand."""
    sp = species_registry.get(name)
    if sp.n_atoms == 1:
        return site_A[None, :].copy(), 0
    element = cx_registry.donor_element(name)
    mol = sp.mol
    donor = next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == element)
    xyz = sp.coordinates() - sp.coordinates()[donor]
    nbrs = [n.GetIdx() for n in mol.GetAtomWithIdx(donor).GetNeighbors()]
    body = xyz[nbrs].mean(axis=0) if nbrs else xyz.mean(axis=0)
    xyz = xyz @ rotation_to(body, outward).T
    best, best_d = xyz, -np.inf
    for angle in np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False):
        trial = xyz @ axis_rotation(outward, angle).T + site_A
        d = np.min(np.linalg.norm(trial[:, None, :] - placed_A[None, :, :], axis=-1)) if len(placed_A) else 0.0
        if d > best_d:
            best, best_d = trial, d
    return best, donor


def build_structure(name: str) -> ComplexStructure:
    """Ideal start geometry of complex ``name`` (see the module docstring)."""
    cx = cx_registry.get(name)
    dist = cx.distances_A
    members: list[str] = []
    blocks: list[np.ndarray] = []
    n = 0
    metals: list[int] = []
    bridging: list[int] = []
    bonds: list[tuple[int, int, float]] = []

    def add(member: str, xyz: np.ndarray) -> int:
        nonlocal n
        members.append(member)
        blocks.append(xyz)
        start = n
        n += len(xyz)
        return start

    if cx.geometry == "octahedral":
        metal_xyz = [np.zeros(3)]
        terminal = [(0, OCTAHEDRON[k]) for k in range(6)]  # (metal slot, direction)
    else:
        half = dist["metal_metal"] / 2.0
        metal_xyz = [np.array([0.0, 0.0, half]), np.array([0.0, 0.0, -half])]
        rho = float(np.sqrt(dist["bridging"] ** 2 - half**2))
        phis = np.radians([0.0, 120.0, 240.0])
        bridge_xyz = [np.array([rho * np.cos(p), rho * np.sin(p), 0.0]) for p in phis]
        terminal = []
        for m in (0, 1):
            for b in bridge_xyz:
                u = metal_xyz[m] - b
                terminal.append((m, u / np.linalg.norm(u)))
    for metal, pos in zip(cx.metals, metal_xyz):
        metals.append(add(metal, pos[None, :]))
    for lig, pos in zip(cx.bridging, bridge_xyz if cx.bridging else []):
        k = add(lig, pos[None, :])
        bridging.append(k)
        for m_atom, m_pos in zip(metals, metal_xyz):
            bonds.append((m_atom, k, float(np.linalg.norm(pos - m_pos))))
    placed: list[tuple[int, str, np.ndarray, np.ndarray]] = []  # (block index, ligand, site, direction)
    for lig, (m, u) in zip(cx.ligands, terminal):
        d = dist[cx_registry.donor_element(lig)]
        site = metal_xyz[m] + d * u
        xyz, donor = place_ligand(lig, site, u, np.concatenate(blocks))
        k = add(lig, xyz)
        placed.append((len(blocks) - 1, lig, site, u))
        bonds.append((metals[m], k + donor, d))
    for _ in range(REFINE_PASSES):  # re-orient each ligand about its axis against all the others
        for b, lig, site, u in placed:
            others = np.concatenate([blk for j, blk in enumerate(blocks) if j != b])
            blocks[b], _ = place_ligand(lig, site, u, others)
    return ComplexStructure(members, np.concatenate(blocks), metals, bridging, bonds)


def complex_instances(units: dict[str, int]) -> list[dict]:
    """Atom indices (0-based, whole system) of every complex instance, for units packed in ``units`` order.

    Returns one entry per complex kind present: ``name``, ``label``, ``count`` and
    ``instances`` (each with ``metals``, ``bridging`` and ``bonds`` = [metal, donor] pairs).
    """
    out = []
    offset = 0
    for name, count in units.items():
        size = cx_registry.unit_n_atoms(name)
        if cx_registry.is_complex(name):
            st = build_structure(name)
            inst = [{"metals": [offset + i * size + m for m in st.metals],
                     "bridging": [offset + i * size + b for b in st.bridging],
                     "bonds": [[offset + i * size + a, offset + i * size + d] for a, d, _ in st.bonds]}
                    for i in range(count)]
            cx = cx_registry.get(name)
            out.append({"name": name, "label": cx.label, "count": count, "charge": cx.charge,
                        "geometry": cx.geometry, "start_distances_A": dict(cx.distances_A), "instances": inst})
        offset += size * count
    return out
