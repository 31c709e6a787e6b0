"""Surface builders: pristine graphene, N-doped graphene, M-N4 single-atom sites.

A sheet lies in the plane z = 0 of an orthorhombic box, periodic in x and y with bonds
across the boundary. It is built from the 4-atom rectangular graphene cell
(a x sqrt(3) a, a = sqrt(3) d_CC, zigzag rows along x, C-C bonds parallel to y), repeated
to the whole number of cells closest to the requested size.

Defects, each a neutral group (its charges compensated on the C atoms bonded to its N):

- graphitic N: one C replaced by N (3 C neighbours);
- pyridinic N: an N3 monovacancy (one C removed, its 3 neighbours replaced by N);
- M-N4: a divacancy (the two C atoms of one C-C bond removed), the 4 C atoms around
  it replaced by N, the metal in the plane at the bond centre; the N are moved
  radially to the metal's M-N bond length.

Defect footprints (removed atoms, N, and the C atoms bonded to the N) never overlap,
so no N-N bond forms and every C carries at most one compensation. Parameters come
from ``forcefields/surfaces.yaml`` (sources in ``forcefields/SOURCES.md``).

Everything here is pure geometry and bookkeeping (no OpenMM); lengths in nm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from solvmd.errors import SolvmdError
from solvmd.geometry import minimum_image, self_pairs_within
from solvmd.surface_recipe import (KINDS, METALS, SHEET_RESIDUE, TWO_SIXTH, SurfaceSpec, cc_bond_nm,  # noqa: F401
                                   check_sheet_size, lattice_cells, missing_site_charges, surface_parameters)
from solvmd.units import KJ_PER_KCAL



# --------------------------------------------------------------------------- sheet


@dataclass
class Sheet:
    """A built sheet (all atoms at z = 0). Lengths in nm, charges in e, LJ sigma nm / eps kJ/mol.

    ``roles``: C, C_alpha (bonded to an N, carries compensation), N_graphitic,
    N_pyridinic, N_site, metal. ``bonds`` include the bonds across the periodic boundary.
    An M-N4 sheet whose metal has no sourced site charges keeps its geometry (the DFT flake
    of forcefields/tools/mn4_site_charges.py is cut from it), but reading ``charges`` is a
    SolvmdError saying how to compute them (``charges_missing``).
    """

    spec: SurfaceSpec
    box_xy_nm: tuple[float, float]
    n_cells: tuple[int, int]
    elements: list[str]
    roles: list[str]
    xyz_nm: np.ndarray
    q_e: np.ndarray  # read through ``charges``
    sigma_nm: np.ndarray
    epsilon_kJ_mol: np.ndarray
    bonds: list[tuple[int, int]]
    site_atoms: list[int] = field(default_factory=list)  # metal atom indices (sheet-local)
    site_positions_nm: list[tuple[float, float]] = field(default_factory=list)
    defects: dict[str, int] = field(default_factory=dict)
    lj_sources: dict[str, str] = field(default_factory=dict)
    charge_sources: dict[str, float] = field(default_factory=dict)
    charges_missing: str | None = None

    @property
    def charges(self) -> np.ndarray:
        """Atomic charges (e); an error for an M-N4 metal without sourced site charges."""
        if self.charges_missing is not None:
            raise SolvmdError(self.charges_missing)
        return self.q_e

    @property
    def n_atoms(self) -> int:
        return len(self.elements)

    @property
    def net_charge(self) -> float:
        return float(self.charges.sum())

    @property
    def atom_names(self) -> list[str]:
        """Unique within the sheet residue (PDB readers drop repeated names as alternate
        locations): element + running number per element (C1 .. C999), then element +
        a letter + two base-36 digits (C A00 ...) to stay within 4 characters."""
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        count: dict[str, int] = {}
        out = []
        for e in self.elements:
            k = count[e] = count.get(e, 0) + 1
            if len(f"{e}{k}") <= 4 and k < 1000:
                out.append(f"{e}{k}")
            else:
                m = k - 1000
                out.append(f"{e}{digits[10 + m // 1296]}{digits[(m // 36) % 36]}{digits[m % 36]}")
        return out

    def geometry(self) -> dict:
        """Bond-length statistics (nm) by bond type, e.g. ``{"C-C": {min, max, n}, "Zn-N": ...}``."""
        out: dict[str, dict] = {}
        L = np.array([*self.box_xy_nm, 1e9])
        for i, j in self.bonds:
            r = float(np.linalg.norm(minimum_image(self.xyz_nm[j] - self.xyz_nm[i], L)))
            key = "-".join(sorted((self.elements[i], self.elements[j]), key=lambda e: (e in ("C", "N"), e)))
            s = out.setdefault(key, {"min_nm": r, "max_nm": r, "n": 0})
            s["min_nm"], s["max_nm"], s["n"] = min(s["min_nm"], r), max(s["max_nm"], r), s["n"] + 1
        return out


def graphene_lattice(nx: int, ny: int) -> tuple[np.ndarray, tuple[float, float], list[tuple[int, int]]]:
    """Pristine periodic graphene: positions (n, 3) nm, box (Lx, Ly) nm, bonds (periodic)."""
    d = cc_bond_nm()
    a = math.sqrt(3.0) * d
    basis = np.array([[0.0, 0.0], [0.0, d], [a / 2, 1.5 * d], [a / 2, 2.5 * d]])
    cells = np.array([(i * a, j * 3.0 * d) for j in range(ny) for i in range(nx)])
    xy = (cells[:, None, :] + basis[None, :, :]).reshape(-1, 2)
    L = np.array([nx * a, ny * 3.0 * d])
    xyz = np.zeros((len(xy), 3))
    xyz[:, :2] = xy
    bonds = _bonds(xyz, L, d)
    return xyz, (float(L[0]), float(L[1])), bonds


def _bonds(xyz: np.ndarray, L: np.ndarray, d: float) -> list[tuple[int, int]]:
    """C-C bonds of the flat lattice: pairs between 0.5 and 1.2 bond lengths apart in the plane."""
    flat = np.column_stack([xyz[:, :2], np.zeros(len(xyz))])
    pairs = self_pairs_within(flat, 1.2 * d, [L[0], L[1], 1e3, 90.0, 90.0, 90.0], min_cutoff=0.5 * d)
    return [(int(i), int(j)) for i, j in pairs]


def _neighbours(n: int, bonds: list[tuple[int, int]]) -> list[list[int]]:
    nb: list[list[int]] = [[] for _ in range(n)]
    for i, j in bonds:
        nb[i].append(j)
        nb[j].append(i)
    return nb


@dataclass
class _Defect:
    kind: str  # "MN4" | "pyridinic" | "graphitic"
    removed: list[int]
    nitrogens: list[int]
    alpha: list[int]
    centre_xy: np.ndarray

    @property
    def footprint(self) -> set[int]:
        return set(self.removed) | set(self.nitrogens) | set(self.alpha)


def _mn4_defect(bond: tuple[int, int], xyz: np.ndarray, nb: list[list[int]], L: np.ndarray) -> _Defect:
    i, j = bond
    nitro = [k for k in nb[i] if k != j] + [k for k in nb[j] if k != i]
    alpha = sorted({m for k in nitro for m in nb[k] if m not in (i, j)})
    centre = xyz[i, :2] + 0.5 * minimum_image(xyz[j, :2] - xyz[i, :2], L)
    return _Defect("MN4", [i, j], nitro, alpha, centre % L)


def _pyridinic_defect(v: int, xyz: np.ndarray, nb: list[list[int]], L: np.ndarray) -> _Defect:
    nitro = list(nb[v])
    alpha = sorted({m for k in nitro for m in nb[k] if m != v})
    return _Defect("pyridinic", [v], nitro, alpha, xyz[v, :2].copy())


def _graphitic_defect(v: int, xyz: np.ndarray, nb: list[list[int]], L: np.ndarray) -> _Defect:
    return _Defect("graphitic", [], [v], list(nb[v]), xyz[v, :2].copy())


def _site_grid(n: int, spacing: float, L: np.ndarray) -> list[np.ndarray]:
    """n points on a near-square grid ``spacing`` apart, centred on the sheet."""
    ncol = math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    pts = []
    for k in range(n):
        r, c = divmod(k, ncol)
        x = (c - (ncol - 1) / 2.0) * spacing
        y = (r - (nrow - 1) / 2.0) * spacing
        pts.append((L / 2.0 + np.array([x, y])) % L)
    return pts


def _lj_params(spec: SurfaceSpec) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    p = surface_parameters()["lj"]
    c = p["C"][spec.carbon_lj]
    n = p["N"]["opls"]
    params = {"C": (c["sigma_A"] / 10.0, c["epsilon_kJ_mol"]), "N": (n["sigma_A"] / 10.0, n["epsilon_kJ_mol"])}
    sources = {"C": c["source"], "N": n["source"]}
    if spec.metal is not None:
        m = p["metals_uff"][spec.metal]
        params[spec.metal] = (m["x_A"] / TWO_SIXTH / 10.0, m["D_kcal_mol"] * KJ_PER_KCAL)
        sources[spec.metal] = (f"UFF {spec.metal}: x = {m['x_A']} A, D = {m['D_kcal_mol']} kcal/mol "
                               "(Rappe et al. 1992); sigma = x / 2^(1/6)")
    return params, sources


def _charges(spec: SurfaceSpec) -> dict[str, float]:
    """Charges (e) by role; an unsourced M-N4 pair is 0 here and refused by ``Sheet.charges``."""
    ch = surface_parameters()["charges"]
    q = {"N_graphitic": float(ch["N_graphitic"]), "N_pyridinic": float(ch["N_pyridinic"])}
    if spec.metal is not None:
        q["metal"] = float(ch["MN4"][spec.metal]["metal"] or 0.0)
        q["N_site"] = float(ch["MN4"][spec.metal]["N_site"] or 0.0)
    q.update({k: float(v) for k, v in spec.charges.items()})
    return q


def build_sheet(spec: SurfaceSpec, cutoff_nm: float | None = None) -> Sheet:
    """Build the sheet for ``spec`` (sheet in z = 0, lengths in nm); errors name the recipe field at fault."""
    nx, ny = check_sheet_size(spec, cutoff_nm) if cutoff_nm is not None else lattice_cells(spec.size_nm)
    if nx < 3 or ny < 2:
        raise SolvmdError(f"surface.size_nm: {list(spec.size_nm)} nm gives only {nx} x {ny} cells; at least 3 x 2 needed")
    xyz, (Lx, Ly), bonds = graphene_lattice(nx, ny)
    L = np.array([Lx, Ly])
    nb = _neighbours(len(xyz), bonds)
    assert all(len(x) == 3 for x in nb), "every graphene C must have 3 neighbours"
    used: set[int] = set()
    defects = _place_mn4_sites(spec, xyz, nb, L, nx * ny, used) if spec.kind == "MN4" else []
    defects += _place_dopants(spec, xyz, nb, L, used)
    return _assemble(spec, (nx, ny), L, xyz, bonds, defects)


def _take(d: _Defect, used: set[int], defects: list[_Defect]) -> bool:
    """Keep defect ``d`` if its footprint is free; marks it used."""
    if d.footprint & used:
        return False
    used |= d.footprint
    defects.append(d)
    return True


def _site_targets(spec: SurfaceSpec, L: np.ndarray) -> tuple[list[np.ndarray], str]:
    """Requested M-N4 site positions (nm) and the recipe field they come from."""
    if spec.site_positions_nm is None:
        spacing = spec.site_spacing_nm if spec.site_spacing_nm is not None else 0.0
        return _site_grid(spec.sites, spacing, L), "surface.site_spacing_nm" if spec.sites > 1 else "surface.size_nm"
    targets = [np.asarray(p, dtype=float) for p in spec.site_positions_nm]
    for p in targets:
        if np.any(p < 0) or np.any(p > L + 1e-9):
            raise SolvmdError(f"surface.site_positions_nm: position {p.tolist()} nm lies outside the sheet "
                              f"(0..{L[0]:.3f} x 0..{L[1]:.3f} nm)")
    return targets, "surface.site_positions_nm"


def _place_mn4_sites(spec, xyz, nb, L, n_cells: int, used: set[int]) -> list[_Defect]:
    """One M-N4 defect per target, on the y-parallel C-C bond nearest to it: (4k, 4k+1) and (4k+2, 4k+3)."""
    ybonds = [(4 * c + o, 4 * c + o + 1) for c in range(n_cells) for o in (0, 2)]
    mids = np.array([(xyz[i, :2] + 0.5 * minimum_image(xyz[j, :2] - xyz[i, :2], L)) % L for i, j in ybonds])
    targets, field_name = _site_targets(spec, L)
    defects: list[_Defect] = []
    for t, p in enumerate(targets):
        dist = np.linalg.norm(minimum_image(mids - p, L), axis=1)
        d = _mn4_defect(ybonds[int(np.argmin(dist))], xyz, nb, L)
        if len(set(d.nitrogens)) != 4 or len(d.footprint) != 14 or not _take(d, used, defects):
            raise SolvmdError(
                f"{field_name}: M-N4 site {t + 1} at {np.round(d.centre_xy, 3).tolist()} nm overlaps another "
                "site (or its own periodic image); the sites' N4 rings and the C atoms bonded to them must "
                "not touch: increase the spacing (>= 0.75 nm), move the sites apart, or enlarge size_nm"
            )
    return defects


def _place_dopants(spec, xyz, nb, L, used: set[int]) -> list[_Defect]:
    """Pyridinic N3 vacancies, then graphitic N, at random (``spec.seed``) on free footprints."""
    n = len(xyz)
    n_graph, n_pyr = spec.graphitic_N or 0, spec.pyridinic_N or 0
    if spec.N_fraction is not None:
        total = int(round(spec.N_fraction * n))
        n_pyr = 3 * int(round(total * spec.pyridinic_share / 3.0))
        n_graph = max(0, total - n_pyr)
    rng = np.random.default_rng(spec.seed)
    defects: list[_Defect] = []
    for kind, count, make, per in (("pyridinic", n_pyr // 3, _pyridinic_defect, 3),
                                   ("graphitic", n_graph, _graphitic_defect, 1)):
        placed = 0
        for v in rng.permutation(n):
            if placed == count:
                break
            placed += _take(make(int(v), xyz, nb, L), used, defects)
        if placed < count:
            fname = f"surface.{kind}_N" if spec.N_fraction is None else "surface.N_fraction"
            raise SolvmdError(
                f"{fname}: only {placed * per} of {count * per} {kind} N fit on the {L[0]:.2f} x {L[1]:.2f} nm sheet "
                f"({n} atoms) besides the other defects (footprints - N and the C atoms bonded to them - must not "
                "overlap); lower the doping or enlarge size_nm"
            )
    return defects


def _decorate(spec, defects, xyz, L) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Elements, roles, charges (e) and positions (nm) of the lattice atoms after the defects."""
    q = _charges(spec)
    n = len(xyz)
    elements, roles, charges, pos = ["C"] * n, ["C"] * n, np.zeros(n), xyz.copy()
    for d in defects:
        if d.kind == "MN4":
            for k in d.nitrogens:
                elements[k], roles[k], charges[k] = "N", "N_site", q["N_site"]
            total = q["metal"] + 4 * q["N_site"]
            # the N move radially to the metal's M-N bond length
            m_n = float(surface_parameters()["geometry"]["MN4_m_n_A"][spec.metal]) / 10.0
            for k in d.nitrogens:
                v = minimum_image(pos[k, :2] - d.centre_xy, L)
                pos[k, :2] = (d.centre_xy + v / np.linalg.norm(v) * m_n) % L
        else:
            role = "N_pyridinic" if d.kind == "pyridinic" else "N_graphitic"
            for k in d.nitrogens:
                elements[k], roles[k], charges[k] = "N", role, q[role]
            total = q[role] * len(d.nitrogens)
        for k in d.alpha:
            roles[k] = "C_alpha"
            charges[k] += -total / len(d.alpha)
    return elements, roles, charges, pos


def _assemble(spec, cells, L, xyz, bonds, defects) -> Sheet:
    """Drop removed atoms, append the metals (bonded to their N4), neutralise, attach LJ parameters."""
    elements, roles, charges, pos = _decorate(spec, defects, xyz, L)
    q = _charges(spec)
    removed = {k for d in defects for k in d.removed}
    keep = np.array([k not in removed for k in range(len(xyz))])
    new_index = -np.ones(len(xyz), dtype=np.int64)
    new_index[keep] = np.arange(int(keep.sum()))
    el = [e for e, k in zip(elements, keep) if k]
    ro = [r for r, k in zip(roles, keep) if k]
    xyz_out, q_out = pos[keep], charges[keep]
    bonds_out = [(int(new_index[i]), int(new_index[j])) for i, j in bonds if keep[i] and keep[j]]
    site_atoms, site_xy = [], []
    for d in (d for d in defects if d.kind == "MN4"):
        idx = len(el)
        el.append(spec.metal)
        ro.append("metal")
        xyz_out = np.vstack([xyz_out, [d.centre_xy[0], d.centre_xy[1], 0.0]])
        q_out = np.append(q_out, q["metal"])
        bonds_out += [(int(new_index[k]), idx) for k in d.nitrogens]
        site_atoms.append(idx)
        site_xy.append((float(d.centre_xy[0]), float(d.centre_xy[1])))
    net = float(q_out.sum())
    if abs(net) > 1e-9:  # cannot happen: every defect is neutral; guard against edits
        raise SolvmdError(f"surface: the sheet has net charge {net:+.3g} e; every defect must be neutral")
    q_out -= net / len(q_out)
    params, lj_sources = _lj_params(spec)
    missing = missing_site_charges(spec)
    if missing is not None:  # no placeholder numbers in the record: the site charges are unknown
        q = {k: v for k, v in q.items() if k not in ("metal", "N_site")}
    counts = {"MN4_sites": sum(d.kind == "MN4" for d in defects),
              "pyridinic_N": 3 * sum(d.kind == "pyridinic" for d in defects),
              "graphitic_N": sum(d.kind == "graphitic" for d in defects), "vacancies": len(removed)}
    return Sheet(
        spec=spec, box_xy_nm=(float(L[0]), float(L[1])), n_cells=cells, elements=el, roles=ro, xyz_nm=xyz_out,
        q_e=q_out, sigma_nm=np.array([params[e][0] for e in el]), epsilon_kJ_mol=np.array([params[e][1] for e in el]),
        bonds=sorted(bonds_out), site_atoms=site_atoms, site_positions_nm=site_xy, defects=counts,
        lj_sources=lj_sources, charge_sources=q, charges_missing=missing,
    )
