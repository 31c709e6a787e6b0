"""Tagged atoms for a PMF: one small resolver per CV kind (distance, height, site_distance).

Atoms given in the spec are used as they are (checked against the System). Otherwise the
cation is one whose first shell (donor atoms within ``shell_cutoff_nm``, counted per
molecule) has the most common composition among the candidates. For a ``distance`` CV the
candidates are cations with the partner species in their shell, the partner is that shell's
molecule with the donor nearest the cation, and ties go to the lowest index. For ``height`` /
``site_distance`` the cation whose CV value lies nearest the window range is taken (ties:
the lower CV, then the lower index), so the windows start near where it already is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openmm as mm
from openmm import unit

from solvmd.geometry import minimum_image_vectors
from solvmd.errors import SolvmdError
from solvmd.pmf import cv as cvmod
from solvmd.pmf.cv import ResolvedCV
from solvmd.pmf_spec import PMFSpec, PMFSpecError

CATION_ELEMENTS = ("Li", "Na", "K", "Mg", "Ca", "Zn", "Al")
DEFAULT_DONORS = ("O", "N", "F", "Cl")


class CVSelectionError(SolvmdError):
    """The CV names atoms or residues that do not exist, or no suitable ion/molecule is found."""


@dataclass
class Selection:
    """What every resolver needs: the spec, the System and one structure (nm)."""

    spec: PMFSpec
    system: mm.System
    pos: np.ndarray
    box: np.ndarray | None
    topology: object | None
    periodic: bool
    meta: dict = field(default_factory=dict)

    @property
    def cv(self):
        return self.spec.cv

    def fail(self, msg: str) -> CVSelectionError:
        return CVSelectionError(f"pmf {self.spec.name}: {msg}")


# ---------------------------------------------------------------------------
# topology helpers
# ---------------------------------------------------------------------------
def _registry_roles() -> dict[str, tuple[str, tuple[str, ...]]]:
    """residue name -> (role, donor elements), from the species registry when available."""
    try:
        from solvmd import species

        return {sp.residue.upper(): (sp.role, tuple(sp.donors)) for sp in species.registry().values()}
    except SolvmdError:  # registry unreadable: fall back on element heuristics
        return {}


def load_topology(topology):
    """An OpenMM Topology from a PDB path (or passed through); None stays None."""
    if topology is None or not isinstance(topology, (str, Path)):
        return topology
    from openmm.app import PDBFile

    path = Path(topology)
    if not path.is_file():
        raise CVSelectionError(f"topology {path} does not exist")
    return PDBFile(str(path)).topology


def _molecules_from_system(system: mm.System) -> list[list[int]]:
    """Connected components of HarmonicBondForce bonds and constraints."""
    parent = list(range(system.getNumParticles()))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = [system.getConstraintParameters(i)[:2] for i in range(system.getNumConstraints())]
    for f in system.getForces():
        if isinstance(f, mm.HarmonicBondForce):
            pairs += [f.getBondParameters(i)[:2] for i in range(f.getNumBonds())]
    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    comps: dict[int, list[int]] = {}
    for i in range(len(parent)):
        comps.setdefault(find(i), []).append(i)
    return list(comps.values())


def molecule_of(atoms, system, topology) -> list[int]:
    """All atoms of the residues (or bonded molecules without a topology) holding ``atoms``."""
    atoms = {int(a) for a in atoms}
    groups = ([[a.index for a in r.atoms()] for r in topology.residues()] if topology is not None
              else _molecules_from_system(system))
    return sorted({i for g in groups if atoms & set(g) for i in g})


def mass_weights(system, atoms) -> list[float]:
    """Masses (Da) of ``atoms``; all ones when they are all frozen (mass 0)."""
    m = [system.getParticleMass(int(a)).value_in_unit(unit.dalton) for a in atoms]
    return m if sum(m) > 0.0 else [1.0] * len(atoms)


def cation_atom(res) -> int:
    """The metal atom of a cation residue."""
    atoms = list(res.atoms())
    if len(atoms) == 1:
        return atoms[0].index
    for a in atoms:
        if a.element is not None and a.element.symbol in CATION_ELEMENTS:
            return a.index
    raise CVSelectionError(f"residue {res.name} {res.index} has no metal atom ({', '.join(CATION_ELEMENTS)}) to tag")


def residue_names(topology) -> list[str]:
    return sorted({r.name for r in topology.residues()})


def cation_names(topology) -> set[str]:
    """Residue names that are cations: by the species registry, else single metal atoms."""
    roles = _registry_roles()
    names = set()
    for res in topology.residues():
        nm, atoms = res.name.upper(), list(res.atoms())
        role = roles.get(nm, (None,))[0]
        single_metal = len(atoms) == 1 and atoms[0].element is not None and atoms[0].element.symbol in CATION_ELEMENTS
        if role == "cation" or (role is None and single_metal):
            names.add(nm)
    return names


def donor_elements(sel: Selection) -> tuple[str, ...]:
    """Donor elements of the solvents and anions present (spec ``donors`` wins)."""
    if sel.cv.donors is not None:
        return tuple(sel.cv.donors)
    roles = _registry_roles()
    d = set()
    for nm in {r.name.upper() for r in sel.topology.residues()}:
        role, dn = roles.get(nm, (None, ()))
        if role in ("solvent", "anion"):
            d |= set(dn)
    return tuple(sorted(d)) or DEFAULT_DONORS


def shells(sel: Selection, cation_res, donors, cutoff) -> list[dict[int, tuple[float, int]]]:
    """For each cation residue: {residue index: (distance nm, donor atom)} of the nearest donor within cutoff."""
    top = sel.topology
    cations = cation_names(top)
    atoms = list(top.atoms())
    donor_atoms = np.array([a.index for a in atoms if a.element is not None and a.element.symbol in donors
                            and a.residue.name.upper() not in cations], int)
    out = []
    for res in cation_res:
        shell: dict[int, tuple[float, int]] = {}
        if donor_atoms.size:
            d = sel.pos[donor_atoms] - sel.pos[cation_atom(res)]
            r = np.linalg.norm(minimum_image_vectors(d, sel.box).reshape(np.shape(d)) if sel.box is not None else d, axis=1)
            for j in np.nonzero(r < cutoff)[0]:
                a = int(donor_atoms[j])
                ri = atoms[a].residue.index
                if ri not in shell or r[j] < shell[ri][0]:
                    shell[ri] = (float(r[j]), a)
        out.append(shell)
    return out


def cation_residues(sel: Selection) -> list:
    """The candidate cation residues: ``cv.cation`` by name, else every cation residue."""
    top, want = sel.topology, (sel.cv.cation.upper() if sel.cv.cation else None)
    present = ", ".join(residue_names(top))
    if want is not None and want not in {r.name.upper() for r in top.residues()}:
        raise sel.fail(f"cv.cation residue {sel.cv.cation!r} (the ion species) is not in this system; "
                       f"residues present: {present}")
    names = {want} if want else cation_names(top)
    res = [r for r in top.residues() if r.name.upper() in names]
    if not res:
        raise sel.fail(f"no cation residue found (residues present: {present}); set cv.cation or cv.cation_atoms")
    return res


def modal(sel: Selection, shell_list) -> list[int]:
    """Positions in ``shell_list`` whose composition is the most common one (recorded in meta)."""
    names = {r.index: r.name for r in sel.topology.residues()}
    comps = [tuple(sorted(Counter(names[i] for i in sh).items())) for sh in shell_list]
    mode, count = Counter(comps).most_common(1)[0]
    sel.meta["shell_composition"] = dict(mode)
    sel.meta["shell_composition_fraction"] = count / len(comps)
    return [i for i, c in enumerate(comps) if c == mode]


def check_indices(sel: Selection) -> None:
    n = sel.system.getNumParticles()
    for name in ("cation_atoms", "partner_atoms", "surface_atoms", "site_atoms"):
        bad = [a for a in (getattr(sel.cv, name, None) or ()) if a >= n]
        if bad:
            raise CVSelectionError(f"cv.{name} names atoms {bad} that do not exist: the System has {n} atoms "
                                   f"(0..{n - 1})")


# ---------------------------------------------------------------------------
# one resolver per CV kind: each returns (groups, weights, z0_nm, moving atoms, description)
# ---------------------------------------------------------------------------
def _distance(sel: Selection):
    cv, top, sys = sel.cv, sel.topology, sel.system
    if cv.cation_atoms is not None and cv.partner_atoms is not None:
        g1, g2 = list(cv.cation_atoms), list(cv.partner_atoms)
        w2 = mass_weights(sys, g2) if cv.partner_site == "com" else [1.0] * len(g2)
        return [g1, g2], [[1.0] * len(g1), w2], None, g2, f"distance cation{g1} - partner{g2} ({cv.partner_site})"
    want = cv.partner.upper() if cv.partner else None
    if want is not None and want not in {r.name.upper() for r in top.residues()}:
        raise sel.fail(f"cv.partner residue {cv.partner!r} not in the topology; residues present: "
                       f"{', '.join(residue_names(top))}")
    donors = donor_elements(sel)
    cres = [list(top.atoms())[cv.cation_atoms[0]].residue] if cv.cation_atoms is not None else cation_residues(sel)
    sh = shells(sel, cres, donors, cv.shell_cutoff_nm)
    resname = {r.index: r.name.upper() for r in top.residues()}
    cands = (list(range(len(cres))) if cv.partner_atoms is not None
             else [i for i, s in enumerate(sh) if any(resname[r] == want for r in s)])
    if not cands:
        raise sel.fail(f"no {cv.cation or 'cation'} has a {cv.partner} donor ({', '.join(donors)}) within "
                       f"shell_cutoff_nm={cv.shell_cutoff_nm} nm in this structure; raise shell_cutoff_nm or give "
                       "cation_atoms / partner_atoms")
    keep = [cands[i] for i in modal(sel, [sh[i] for i in cands])]
    ci = keep[0] if cv.hold is None else _nearest_hold(sel, cres, keep)
    g1 = list(cv.cation_atoms) if cv.cation_atoms is not None else [cation_atom(cres[ci])]
    sel.meta["cation_residue"] = {"name": cres[ci].name, "index": cres[ci].index, "id": cres[ci].id}
    if cv.partner_atoms is not None:
        g2 = list(cv.partner_atoms)
        w2 = mass_weights(sys, g2) if cv.partner_site == "com" else [1.0] * len(g2)
    else:
        d, donor, pres = min((d, a, r) for r, (d, a) in sh[ci].items() if resname[r] == want)
        presidue = list(top.residues())[pres]
        g2 = [donor] if cv.partner_site == "donor" else [a.index for a in presidue.atoms()]
        w2 = [1.0] if cv.partner_site == "donor" else mass_weights(sys, g2)
        sel.meta["partner_residue"] = {"name": presidue.name, "index": presidue.index, "id": presidue.id}
        sel.meta["partner_donor_distance_nm"] = d
    return [g1, g2], [[1.0] * len(g1), w2], None, g2, f"distance cation{g1} - partner{g2} ({cv.partner_site})"


def _nearest_hold(sel: Selection, cres, keep) -> int:
    """Of the candidate cations, the one whose height is nearest ``cv.hold.height_nm``."""
    gs = _hold_sheet(sel)
    heights = {i: _height_of(sel, [cation_atom(cres[i])], gs) for i in keep}
    return min(keep, key=lambda i: (abs(heights[i] - sel.cv.hold.height_nm), i))


def _hold_sheet(sel: Selection) -> list[int]:
    want = {s.upper() for s in sel.cv.hold.surface}
    gs = [a.index for a in sel.topology.atoms() if a.residue.name.upper() in want] if sel.topology else []
    if not gs:
        raise sel.fail(f"cv.hold.surface residues {list(sel.cv.hold.surface)} not found: holding the ion at a height "
                       "needs a sheet (and the topology)")
    return gs


def _record_hold(sel: Selection, cation: list[int]) -> None:
    """meta["hold"]: the restraint that keeps the cation at the contact layer (see cv.make_hold_force)."""
    gs = _hold_sheet(sel)
    h = sel.cv.hold
    sel.meta["hold"] = {"groups": [list(cation), gs], "height_nm": h.height_nm, "k_kJ_mol_nm2": h.k_kJ_mol_nm2,
                        "start_height_nm": _height_of(sel, list(cation), gs)}


def _height_of(sel: Selection, cation: list[int], sheet: list[int]) -> float:
    """Cation height above the sheet centroid, wrapped to [-Lz/2, Lz/2)."""
    r = ResolvedCV("height", [cation, sheet], [[1.0] * len(cation), [1.0] * len(sheet)], periodic=sel.periodic)
    x = cvmod.cv_value(r, sel.pos)
    if sel.box is not None:
        x -= sel.box[2, 2] * np.floor((x + 0.5 * sel.box[2, 2]) / sel.box[2, 2])
    return float(x)


def _surface_atoms(sel: Selection) -> list[int] | None:
    cv = sel.cv
    if cv.surface_atoms is not None:
        return list(cv.surface_atoms)
    if cv.surface is None:
        return None
    want = {s.upper() for s in cv.surface}
    gs = [a.index for a in sel.topology.atoms() if a.residue.name.upper() in want]
    if not gs:
        raise sel.fail(f"cv.surface residues {list(cv.surface)} not in the topology: a height CV needs a sheet, and "
                       f"this system has none (residues present: {', '.join(residue_names(sel.topology))}); on a bulk "
                       "system use a distance CV")
    return gs


def _site_atoms(sel: Selection) -> list[int]:
    cv = sel.cv
    if cv.site_atoms is not None:
        return list(cv.site_atoms)
    gs = [a.index for a in sel.topology.atoms() if a.element is not None and a.element.symbol == cv.site_element]
    if not gs:
        present = sorted({a.element.symbol for a in sel.topology.atoms() if a.element is not None})
        raise sel.fail(f"cv.site_element {cv.site_element!r} not in the structure (elements present: "
                       f"{', '.join(present)}): a site_distance CV needs a sheet with that metal (an M-N4 site)")
    return gs


def _cv_of(sel: Selection, cation: list[int], other: list[int] | None, z0=None) -> float:
    """The CV for a trial cation; a height is wrapped to the image in [-Lz/2, Lz/2)."""
    groups = [cation] + ([other] if other is not None else [])
    r = ResolvedCV(sel.cv.kind, groups, [[1.0] * len(g) for g in groups], z0_nm=z0, periodic=sel.periodic)
    x = cvmod.cv_value(r, sel.pos, sel.box)
    if sel.cv.kind == "height" and sel.box is not None:
        lz = sel.box[2, 2]
        x -= lz * np.floor((x + 0.5 * lz) / lz)
    return float(x)


def _nearest_to_range(sel: Selection, other, z0=None) -> list[int]:
    """The tagged cation: modal shell, CV nearest the window range (explicit cation_atoms win)."""
    if sel.cv.cation_atoms is not None:
        return list(sel.cv.cation_atoms)
    cres = cation_residues(sel)
    keep = modal(sel, shells(sel, cres, donor_elements(sel), sel.cv.shell_cutoff_nm))
    lo, hi = sel.spec.range_nm
    scores = []
    for i in keep:
        c = [cation_atom(cres[i])]
        x = min(_cv_of(sel, c, [s], z0) for s in other) if sel.cv.kind == "site_distance" else _cv_of(sel, c, other, z0)
        scores.append((max(lo - x, 0.0, x - hi), x, i))
    _, x, ci = min(scores)
    sel.meta["cation_residue"] = {"name": cres[ci].name, "index": cres[ci].index, "id": cres[ci].id}
    sel.meta["start_cv_nm"] = x
    return [cation_atom(cres[ci])]


def _height(sel: Selection):
    z0 = sel.cv.z0_nm
    gs = _surface_atoms(sel)
    g1 = _nearest_to_range(sel, gs, z0)
    groups = [g1] + ([gs] if gs is not None else [])
    desc = f"height cation{g1} - " + (f"plane z0={z0} nm" if gs is None else f"centroid z of {len(gs)} surface atoms")
    return groups, [[1.0] * len(g) for g in groups], z0, g1, desc


def _site_distance(sel: Selection):
    gs = _site_atoms(sel)
    g1 = _nearest_to_range(sel, gs)
    if sel.cv.site_atoms is None and len(gs) > 1:
        gs = [min(gs, key=lambda s: _cv_of(sel, g1, [s]))]  # the nearest site atom
    return [g1, gs], [[1.0] * len(g1), [1.0] * len(gs)], None, g1, f"site_distance cation{g1} - site{gs}"


RESOLVERS = {"distance": _distance, "height": _height, "site_distance": _site_distance}


def _needs_topology(cv) -> bool:
    if cv.cation_atoms is None:
        return True
    return {"distance": cv.kind == "distance" and cv.partner_atoms is None,
            "height": cv.kind == "height" and cv.surface is not None,
            "site_distance": cv.kind == "site_distance" and cv.site_element is not None}[cv.kind]


def _selection(spec, system, positions, box, topology) -> Selection:
    periodic = system.usesPeriodicBoundaryConditions()
    box = None if (box is None or not periodic) else np.asarray(box, float)
    sel = Selection(spec, system, np.asarray(positions, float), box, load_topology(topology), periodic)
    if _needs_topology(spec.cv) and sel.topology is None:
        raise sel.fail("choosing the tagged atoms automatically needs the topology (system.pdb); pass topology= or "
                       "give the atoms explicitly (cation_atoms, partner_atoms, surface_atoms, site_atoms)")
    n = system.getNumParticles()
    if sel.topology is not None and sel.topology.getNumAtoms() != n:
        raise CVSelectionError(f"topology has {sel.topology.getNumAtoms()} atoms but the System has {n}")
    check_indices(sel)
    return sel


def check_height_range(spec: PMFSpec, box) -> None:
    """A height range must stay below half the box height: above it the ion is nearer the sheet's image."""
    if spec.cv.kind != "height" or box is None:
        return
    lz = float(np.asarray(box, float)[2, 2])
    if spec.range_nm[1] >= 0.5 * lz:
        raise PMFSpecError(f"pmf {spec.name}: range_nm upper end {spec.range_nm[1]} nm is at or above half the box "
                           f"height ({0.5 * lz:.3g} nm): the ion would be nearer the sheet's periodic image, i.e. "
                           "the range crosses the sheet; lower range_nm or build a thicker liquid slab")


def resolve_cv(spec: PMFSpec, system: mm.System, positions, box=None, topology=None) -> ResolvedCV:
    """Explicit atoms for the spec's CV (see the module docstring for the choice)."""
    sel = _selection(spec, system, positions, box, topology)
    check_height_range(spec, sel.box)
    groups, weights, z0, moving, desc = RESOLVERS[spec.cv.kind](sel)
    if getattr(spec.cv, "hold", None) is not None:
        _record_hold(sel, groups[0])
        desc += f", cation held at {spec.cv.hold.height_nm} nm above the sheet"
    if spec.cv.kind == "distance" and set(groups[0]) & set(groups[1]):
        raise sel.fail(f"cation and partner groups share atoms {groups}")
    rcv = ResolvedCV(kind=spec.cv.kind, groups=[[int(a) for a in g] for g in groups],
                     weights=[[float(x) for x in w] for w in weights], z0_nm=z0, periodic=sel.periodic,
                     description=desc, meta=sel.meta)
    rcv.meta["moving_atoms"] = molecule_of(moving, system, sel.topology)
    return rcv

