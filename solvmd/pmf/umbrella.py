"""Umbrella windows: centres, overlap checks, tagged-atom selection, initial structures, sampling.

Files in a PMF folder ``results/<system>/pmf/<cv>/``::

    cv.json               the resolved CV (atoms, weights, how they were chosen)
    spec.json             the PMFSpec the windows were made with
    init/window_<k>.xml   initial State of window k (steered pull or placement)
    window_<k>.npz        CV samples + restraint (r0, k, T, timestep, ...), written atomically
    window_<k>.partial.npz / window_<k>.chk.xml   checkpoint of an unfinished window

Work order: :func:`prepare_windows` once (selection + initial structures), then
:func:`run_window` for each k as independent jobs (any order, any machine, restartable),
then :func:`solvmd.pmf.estimate.estimate_pmf`. :func:`run_windows` does all of it in one
call, windows one after another or in parallel processes.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import openmm as mm
from openmm import unit
from scipy.special import erfc

from solvmd.errors import SimulationError, SolvmdError
from solvmd.pmf import cv as cvmod
from solvmd.pmf.cv import ResolvedCV
from solvmd.pmf.io import apply_state, atomic_savez, atomic_write_text, read_state, read_system, state_arrays
from solvmd.pmf.spec import PMFSpec, PMFSpecError, load_spec, spec_json

log = logging.getLogger(__name__)

CATION_ELEMENTS = ("Li", "Na", "K", "Mg", "Ca", "Zn", "Al")
DEFAULT_DONORS = ("O", "N", "F", "Cl")


class PMFWarning(UserWarning):
    """A PMF setting that will probably give a poor estimate (raised before running)."""


class CVSelectionError(SolvmdError):
    """The CV names atoms or residues that do not exist, or no suitable ion/molecule is found."""


# ---------------------------------------------------------------------------
# windows and predicted overlap
# ---------------------------------------------------------------------------
def window_centers(spec: PMFSpec) -> np.ndarray:
    """Window centres in nm (increasing)."""
    return spec.centers()


def n_windows(spec) -> int:
    """Number of windows (for the Snakemake fan-out)."""
    return len(load_spec(spec).centers())


def window_width(spec: PMFSpec) -> float:
    """Width sqrt(kT/k) (nm) of a window on a flat PMF."""
    return math.sqrt(spec.kT / spec.k_kJ_mol_nm2)


def predicted_overlap(spec: PMFSpec) -> np.ndarray:
    """Predicted overlap of each neighbour pair: the overlap coefficient of two Gaussians of
    width sigma = sqrt(kT/k) whose centres are the spacing apart, erfc(spacing / (2 sqrt(2) sigma)).

    This is the flat-PMF prediction; 1 = identical windows, 0 = disjoint.
    """
    c = window_centers(spec)
    return erfc(np.diff(c) / (2.0 * math.sqrt(2.0) * window_width(spec)))


def check_windows(spec: PMFSpec, warn: bool = True) -> list[str]:
    """Checks before running; returns the warnings (also issued as :class:`PMFWarning`)."""
    msgs = []
    sigma = window_width(spec)
    c = window_centers(spec)
    ov = predicted_overlap(spec)
    worst = int(np.argmin(ov))
    if ov[worst] < spec.min_predicted_overlap:
        gap = c[worst + 1] - c[worst]
        # spacing giving the minimum predicted overlap, and k giving it at this spacing
        from scipy.special import erfcinv

        z = float(erfcinv(spec.min_predicted_overlap))
        max_gap = 2.0 * math.sqrt(2.0) * sigma * z
        max_k = spec.kT * (2.0 * math.sqrt(2.0) * z / gap) ** 2
        msgs.append(
            f"pmf {spec.name}: force constant k={spec.k_kJ_mol_nm2:g} kJ/mol/nm^2 does not match the window "
            f"spacing {gap:.4g} nm: each window spans only sigma=sqrt(kT/k)={sigma:.4g} nm, so neighbour windows "
            f"{worst} and {worst + 1} (r0={c[worst]:.4g}, {c[worst + 1]:.4g} nm) are predicted to overlap "
            f"{ov[worst]:.3g} < min_predicted_overlap={spec.min_predicted_overlap:g}. Use spacing <= {max_gap:.3g} nm "
            f"or k <= {max_k:.3g} kJ/mol/nm^2."
        )
    lo, hi = spec.range_nm
    if sigma > 0.5 * (hi - lo):
        msgs.append(
            f"pmf {spec.name}: force constant k={spec.k_kJ_mol_nm2:g} kJ/mol/nm^2 is too weak to localise windows: "
            f"sigma=sqrt(kT/k)={sigma:.3g} nm exceeds half the range {hi - lo:.3g} nm; raise k."
        )
    if warn:
        for m in msgs:
            warnings.warn(m, PMFWarning, stacklevel=2)
            log.warning(m)
    return msgs


# ---------------------------------------------------------------------------
# tagged atoms
# ---------------------------------------------------------------------------
def _registry_roles() -> dict[str, tuple[str, tuple[str, ...]]]:
    """residue name -> (role, donor elements), from the species registry when available."""
    try:
        from solvmd import species

        return {sp.residue.upper(): (sp.role, tuple(sp.donors)) for sp in species.registry().values()}
    except Exception:  # registry unavailable: fall back on element heuristics
        return {}


def _load_topology(topology):
    if topology is None:
        return None
    if isinstance(topology, (str, Path)):
        from openmm.app import PDBFile

        path = Path(topology)
        if not path.is_file():
            raise CVSelectionError(f"topology {path} does not exist")
        return PDBFile(str(path)).topology
    return topology


def _molecules_from_system(system: mm.System) -> list[list[int]]:
    """Connected components of HarmonicBondForce bonds and constraints."""
    n = system.getNumParticles()
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i, j):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj

    for i in range(system.getNumConstraints()):
        a, b, _ = system.getConstraintParameters(i)
        union(a, b)
    for f in system.getForces():
        if isinstance(f, mm.HarmonicBondForce):
            for i in range(f.getNumBonds()):
                a, b, *_ = f.getBondParameters(i)
                union(a, b)
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
    return list(comps.values())


def _molecule_of(atoms, system, topology) -> list[int]:
    atoms = set(int(a) for a in atoms)
    if topology is not None:
        out = set()
        for res in topology.residues():
            idx = {a.index for a in res.atoms()}
            if idx & atoms:
                out |= idx
        return sorted(out)
    out = set()
    for mol in _molecules_from_system(system):
        if atoms & set(mol):
            out |= set(mol)
    return sorted(out)


def _mass_weights(system, atoms) -> list[float]:
    m = [system.getParticleMass(int(a)).value_in_unit(unit.dalton) for a in atoms]
    if sum(m) <= 0.0:  # all frozen (mass 0): geometric centroid
        return [1.0] * len(atoms)
    return m


def _check_indices(name, atoms, n):
    bad = [a for a in atoms if a >= n]
    if bad:
        raise CVSelectionError(f"cv.{name} names atoms {bad} that do not exist: the System has {n} atoms (0..{n - 1})")


def _cation_atom(res) -> int:
    atoms = list(res.atoms())
    if len(atoms) == 1:
        return atoms[0].index
    for a in atoms:
        if a.element is not None and a.element.symbol in CATION_ELEMENTS:
            return a.index
    raise CVSelectionError(f"residue {res.name} {res.index} has no metal atom ({', '.join(CATION_ELEMENTS)}) to tag")


def _residue_names(topology) -> list[str]:
    return sorted({r.name for r in topology.residues()})


def _shells(topology, pos, box, cation_res, donors, cutoff):
    """For each cation residue: {residue index: nearest donor (distance, atom index)} within cutoff."""
    cations = _cation_names(topology)
    donor_atoms = [
        a.index
        for a in topology.atoms()
        if a.element is not None and a.element.symbol in donors and a.residue.name.upper() not in cations
    ]
    donor_atoms = np.array(donor_atoms, int)
    atoms = list(topology.atoms())
    out = []
    for res in cation_res:
        c = _cation_atom(res)
        if donor_atoms.size == 0:
            out.append({})
            continue
        d = pos[donor_atoms] - pos[c]
        if box is not None:
            d = cvmod._min_image(d, box)
        r = np.linalg.norm(d, axis=1)
        shell: dict[int, tuple[float, int]] = {}
        for j in np.nonzero(r < cutoff)[0]:
            a = int(donor_atoms[j])
            ri = atoms[a].residue.index
            if ri not in shell or r[j] < shell[ri][0]:
                shell[ri] = (float(r[j]), a)
        out.append(shell)
    return out


def _cation_names(topology) -> set[str]:
    """Residue names that are cations: by the species registry, else single metal atoms."""
    roles = _registry_roles()
    names = set()
    for res in topology.residues():
        nm = res.name.upper()
        if nm in names:
            continue
        role = roles.get(nm, (None,))[0]
        atoms = list(res.atoms())
        if role == "cation" or (
            role is None and len(atoms) == 1 and atoms[0].element is not None
            and atoms[0].element.symbol in CATION_ELEMENTS
        ):
            names.add(nm)
    return names


def resolve_cv(spec: PMFSpec, system: mm.System, positions, box=None, topology=None) -> ResolvedCV:
    """Explicit atoms for the spec's CV.

    Atoms given in the spec are used as they are (checked against the System). Otherwise
    the cation is one whose first shell (donor atoms within ``shell_cutoff_nm``, counted per
    molecule) has the most common composition among the candidates; for a ``distance`` CV
    candidates are cations with the partner species in their shell and the partner is that
    shell's molecule with the donor nearest the cation; for ``height`` / ``site_distance``
    ties go to the cation nearest the surface / site. Ties then go to the lowest index.
    """
    cvs = spec.cv
    n = system.getNumParticles()
    periodic = system.usesPeriodicBoundaryConditions()
    pos = np.asarray(positions, float)
    box = None if (box is None or not periodic) else np.asarray(box, float)
    topology = _load_topology(topology)
    meta: dict = {}

    explicit_cation = cvs.cation_atoms is not None
    needs_topology = not explicit_cation
    if cvs.kind == "distance":
        needs_topology |= cvs.partner_atoms is None
    elif cvs.kind == "height":
        needs_topology |= cvs.surface is not None
    else:
        needs_topology |= cvs.site_element is not None
    if needs_topology and topology is None:
        raise CVSelectionError(
            f"pmf {spec.name}: choosing the tagged atoms automatically needs the topology (system.pdb); "
            "pass topology= or give the atoms explicitly (cation_atoms, partner_atoms, surface_atoms, site_atoms)"
        )
    if topology is not None and topology.getNumAtoms() != n:
        raise CVSelectionError(f"topology has {topology.getNumAtoms()} atoms but the System has {n}")
    for fld in ("cation_atoms", "partner_atoms", "surface_atoms", "site_atoms"):
        atoms = getattr(cvs, fld, None)
        if atoms is not None:
            _check_indices(fld, atoms, n)

    roles = _registry_roles()

    def donors_for():
        if cvs.donors is not None:
            return tuple(cvs.donors)
        present = {r.name.upper() for r in topology.residues()}
        d = set()
        for nm in present:
            role, dn = roles.get(nm, (None, ()))
            if role in ("solvent", "anion"):
                d |= set(dn)
        return tuple(sorted(d)) or DEFAULT_DONORS

    def cation_residues():
        names = _cation_names(topology)
        want = cvs.cation.upper() if cvs.cation else None
        if want is not None and want not in {r.name.upper() for r in topology.residues()}:
            raise CVSelectionError(
                f"pmf {spec.name}: cv.cation residue {cvs.cation!r} not in the topology; residues present: "
                f"{', '.join(_residue_names(topology))}"
            )
        res = [r for r in topology.residues() if (r.name.upper() == want if want else r.name.upper() in names)]
        if not res:
            raise CVSelectionError(
                f"pmf {spec.name}: no cation residue found (residues present: {', '.join(_residue_names(topology))}); "
                "set cv.cation or cv.cation_atoms"
            )
        return res

    def modal(cands, shells):
        comps = []
        names = {r.index: r.name for r in topology.residues()}
        for sh in shells:
            comps.append(tuple(sorted(Counter(names[i] for i in sh).items())))
        mode, count = Counter(comps).most_common(1)[0]
        keep = [i for i, c in enumerate(comps) if c == mode]
        meta["shell_composition"] = {k: v for k, v in mode}
        meta["shell_composition_fraction"] = count / len(comps)
        return keep

    # ---- the cation (and partner / surface / site) ----
    if cvs.kind == "distance":
        if explicit_cation and cvs.partner_atoms is not None:
            g1, g2 = list(cvs.cation_atoms), list(cvs.partner_atoms)
            w1 = [1.0] * len(g1)
            w2 = _mass_weights(system, g2) if cvs.partner_site == "com" else [1.0] * len(g2)
        else:
            want = cvs.partner.upper() if cvs.partner else None
            if want is not None and want not in {r.name.upper() for r in topology.residues()}:
                raise CVSelectionError(
                    f"pmf {spec.name}: cv.partner residue {cvs.partner!r} not in the topology; residues present: "
                    f"{', '.join(_residue_names(topology))}"
                )
            donors = donors_for()
            if explicit_cation:
                cres = [list(topology.atoms())[cvs.cation_atoms[0]].residue]
            else:
                cres = cation_residues()
            shells = _shells(topology, pos, box, cres, donors, cvs.shell_cutoff_nm)
            resname = {r.index: r.name.upper() for r in topology.residues()}
            if cvs.partner_atoms is not None:
                cands = list(range(len(cres)))
            else:
                cands = [i for i, sh in enumerate(shells) if any(resname[r] == want for r in sh)]
            if not cands:
                raise CVSelectionError(
                    f"pmf {spec.name}: no {cvs.cation or 'cation'} has a {cvs.partner} donor ({', '.join(donors)}) "
                    f"within shell_cutoff_nm={cvs.shell_cutoff_nm} nm in this structure; raise shell_cutoff_nm "
                    "or give cation_atoms / partner_atoms"
                )
            keep = modal(cands, [shells[i] for i in cands])
            ci = cands[keep[0]]
            cation = cres[ci]
            g1 = [_cation_atom(cation)] if not explicit_cation else list(cvs.cation_atoms)
            w1 = [1.0] * len(g1)
            if cvs.partner_atoms is not None:
                g2 = list(cvs.partner_atoms)
                w2 = _mass_weights(system, g2) if cvs.partner_site == "com" else [1.0] * len(g2)
            else:
                inshell = [(d, a, r) for r, (d, a) in shells[ci].items() if resname[r] == want]
                d, donor, pres = min(inshell)
                presidue = list(topology.residues())[pres]
                if cvs.partner_site == "donor":
                    g2, w2 = [donor], [1.0]
                else:
                    g2 = [a.index for a in presidue.atoms()]
                    w2 = _mass_weights(system, g2)
                meta["partner_residue"] = {"name": presidue.name, "index": presidue.index, "id": presidue.id}
                meta["partner_donor_distance_nm"] = d
            meta["cation_residue"] = {"name": cation.name, "index": cation.index, "id": cation.id}
        groups, weights, z0 = [g1, g2], [w1, w2], None
        moving = g2
        desc = f"distance cation{g1} - partner{g2} ({cvs.partner_site})"
    else:
        # surface / site group first: the cation choice depends on it
        if cvs.kind == "height":
            z0 = cvs.z0_nm
            if cvs.surface_atoms is not None:
                gs = list(cvs.surface_atoms)
            elif cvs.surface is not None:
                want = {s.upper() for s in cvs.surface}
                gs = [a.index for a in topology.atoms() if a.residue.name.upper() in want]
                if not gs:
                    raise CVSelectionError(
                        f"pmf {spec.name}: cv.surface residues {list(cvs.surface)} not in the topology; residues "
                        f"present: {', '.join(_residue_names(topology))}"
                    )
            else:
                gs = None
        else:
            z0 = None
            if cvs.site_atoms is not None:
                gs = list(cvs.site_atoms)
            else:
                gs = [a.index for a in topology.atoms() if a.element is not None and a.element.symbol == cvs.site_element]
                if not gs:
                    present = sorted({a.element.symbol for a in topology.atoms() if a.element is not None})
                    raise CVSelectionError(
                        f"pmf {spec.name}: cv.site_element {cvs.site_element!r} not in the structure; elements "
                        f"present: {', '.join(present)}"
                    )

        def cv_of(c_atoms, site_atoms):
            grp = [list(c_atoms)] + ([list(site_atoms)] if site_atoms is not None else [])
            wts = [[1.0] * len(g) for g in grp]
            r = ResolvedCV(cvs.kind, grp, wts, z0_nm=z0, periodic=periodic)
            if cvs.kind == "height":
                return abs(cvmod.cv_value(r, pos))  # image chosen later
            return cvmod.cv_value(r, pos, box)

        if explicit_cation:
            g1 = list(cvs.cation_atoms)
        else:
            cres = cation_residues()
            shells = _shells(topology, pos, box, cres, donors_for(), cvs.shell_cutoff_nm)
            keep = modal(list(range(len(cres))), shells)
            if cvs.kind == "site_distance" and cvs.site_atoms is None:
                scores = [(min(cv_of([_cation_atom(cres[i])], [s]) for s in gs), i) for i in keep]
            else:
                scores = [(cv_of([_cation_atom(cres[i])], gs), i) for i in keep]
            ci = min(scores)[1]
            g1 = [_cation_atom(cres[ci])]
            meta["cation_residue"] = {"name": cres[ci].name, "index": cres[ci].index, "id": cres[ci].id}
        if cvs.kind == "site_distance" and cvs.site_atoms is None and len(gs) > 1:
            gs = [min(gs, key=lambda s: cv_of(g1, [s]))]  # the nearest site atom
        groups = [g1] + ([gs] if gs is not None else [])
        weights = [[1.0] * len(g) for g in groups]
        moving = g1
        desc = f"{cvs.kind} cation{g1} - " + (f"plane z0={z0} nm" if gs is None else f"{len(gs)} site/surface atoms")

    rcv = ResolvedCV(
        kind=cvs.kind,
        groups=[[int(a) for a in g] for g in groups],
        weights=[[float(x) for x in w] for w in weights],
        z0_nm=z0,
        periodic=periodic,
        description=desc,
        meta=meta,
    )
    rcv.meta["moving_atoms"] = _molecule_of(moving, system, topology)
    if cvs.kind == "distance" and set(rcv.groups[0]) & set(rcv.groups[1]):
        raise CVSelectionError(f"pmf {spec.name}: cation and partner groups share atoms {rcv.groups}")
    return rcv


# ---------------------------------------------------------------------------
# contexts
# ---------------------------------------------------------------------------
def choose_platform(name: str | None = None, threads: int | None = None):
    """(Platform, properties): the named one, else CUDA > OpenCL > CPU (mixed precision on GPUs).

    Delegates to :func:`solvmd.md.platforms.choose_platform` (``SOLVMD_PLATFORM``,
    ``SOLVMD_CPU_THREADS``); ``threads`` sets the CPU thread count (parallel windows).
    """
    from solvmd.md.platforms import choose_platform as md_choose

    plat, props = md_choose(name or "auto")
    props = dict(props)
    if plat.getName() == "CPU" and threads:
        props["Threads"] = str(int(threads))
    return plat, props


def _window_system(system_xml, spec: PMFSpec, rcv: ResolvedCV, r0: float) -> mm.System:
    system = read_system(system_xml)
    if not spec.keep_barostat:
        for i in reversed(range(system.getNumForces())):
            if "Barostat" in type(system.getForce(i)).__name__:
                system.removeForce(i)
    try:
        cvmod.add_bias(system, rcv, spec.k_kJ_mol_nm2, r0)
    except IndexError as e:
        raise CVSelectionError(f"pmf {spec.name}: {e}") from None
    return system


def _integrator(spec: PMFSpec, seed: int) -> mm.LangevinMiddleIntegrator:
    integ = mm.LangevinMiddleIntegrator(
        spec.temperature_K * unit.kelvin, spec.friction_per_ps / unit.picosecond, spec.timestep_fs * unit.femtosecond
    )
    integ.setRandomNumberSeed(int(seed) % 2**31 or 1)
    return integ


def _make_context(system, spec, seed, platform=None, threads=None):
    plat, props = choose_platform(platform or spec.platform, threads)
    return mm.Context(system, _integrator(spec, seed), plat, props)


def _resolved_cv(out_dir: Path, spec: PMFSpec, system_xml, state_xml, topology) -> ResolvedCV:
    path = out_dir / "cv.json"
    if path.is_file():
        return ResolvedCV.from_json(path)
    system = read_system(system_xml)
    pos, box, _ = state_arrays(read_state(state_xml))
    rcv = resolve_cv(spec, system, pos, box, topology)
    rcv.to_json(path)
    return rcv


# ---------------------------------------------------------------------------
# initial structures
# ---------------------------------------------------------------------------
def _place(rcv: ResolvedCV, pos: np.ndarray, box, target: float, rng) -> np.ndarray:
    """Rigidly move the tagged molecule so the CV equals ``target`` (exact for the CV)."""
    pos = pos.copy()
    moving = rcv.meta["moving_atoms"]
    if rcv.kind == "height":
        pos[moving, 2] += target - cvmod.cv_value(rcv, pos)
        return pos
    c = cvmod._centroids(rcv, pos)
    d = c[1] - c[0]
    if rcv.periodic and box is not None:
        d = cvmod._min_image(d[None, :], box)[0]
    r = np.linalg.norm(d)
    if r < 1e-6:
        u = rng.normal(size=3)
        d, r = u / np.linalg.norm(u) * 1e-3, 1e-3
    shift = (target / r - 1.0) * d
    # distance: the partner (group 2) moves; site_distance: the cation (group 1) moves
    pos[moving] += shift if rcv.kind == "distance" else -shift
    return pos


def prepare_windows(
    system_xml,
    state_xml,
    spec,
    out_dir,
    topology=None,
    platform: str | None = None,
    threads: int | None = None,
) -> list[Path]:
    """Resolve the CV (``cv.json``) and write ``init/window_<k>.xml`` for every window.

    ``init: place`` moves the tagged molecule rigidly to each centre and minimises with the
    bias on; ``init: pull`` runs one steered pull from the equilibrated structure, moving the
    restraint centre at ``pull_nm_per_ns`` down to the lowest and up to the highest centre
    and saving the state as the centre passes each window. Existing files are kept.
    """
    spec = load_spec(spec)
    out_dir = Path(out_dir)
    (out_dir / "init").mkdir(parents=True, exist_ok=True)
    check_windows(spec)
    rcv = _resolved_cv(out_dir, spec, system_xml, state_xml, topology)
    atomic_write_text(out_dir / "spec.json", json.dumps(spec.model_dump(mode="json"), indent=2))
    centers = window_centers(spec)
    paths = [out_dir / "init" / f"window_{k}.xml" for k in range(len(centers))]
    todo = [k for k, p in enumerate(paths) if not p.is_file()]
    if not todo:
        return paths
    state0 = read_state(state_xml)
    pos0, box0, _ = state_arrays(state0)
    system = _window_system(system_xml, spec, rcv, float(centers[0]))
    if rcv.kind == "height":
        pos0 = cvmod.image_for_height(rcv, pos0, box0, rcv.meta["moving_atoms"])
    ctx = _make_context(system, spec, spec.seed, platform, threads)
    if box0 is not None and system.usesPeriodicBoundaryConditions():
        ctx.setPeriodicBoxVectors(*box0)
    rng = np.random.default_rng(spec.seed)
    t0 = time.perf_counter()
    if spec.init == "place":
        for k in todo:
            ctx.setPositions(_place(rcv, pos0, box0, float(centers[k]), rng))
            ctx.setParameter(cvmod.R0, float(centers[k]))
            mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 500)
            ctx.setVelocitiesToTemperature(spec.temperature_K * unit.kelvin, spec.seed + k)
            from solvmd.pmf.io import write_state

            write_state(ctx, paths[k])
    else:
        _pull(ctx, rcv, spec, pos0, centers, todo, paths)
    log.info("pmf %s: %d initial structures in %.1f s", spec.name, len(todo), time.perf_counter() - t0)
    return paths


def _pull(ctx, rcv, spec: PMFSpec, pos0, centers, todo, paths):
    from solvmd.pmf.io import write_state

    ctx.setPositions(pos0)
    c0 = cvmod.context_cv(ctx, rcv)
    ctx.setParameter(cvmod.R0, c0)
    mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 200)
    ctx.setVelocitiesToTemperature(spec.temperature_K * unit.kelvin, spec.seed)
    start = ctx.getState(getPositions=True, getVelocities=True)
    dt_ps = spec.timestep_fs / 1000.0
    chunk = 10
    dr = spec.pull_nm_per_ns / 1000.0 * dt_ps * chunk  # nm per chunk
    todo = set(todo)
    down = [k for k in range(len(centers) - 1, -1, -1) if centers[k] <= c0]
    up = [k for k in range(len(centers)) if centers[k] > c0]
    for branch, sign in ((down, -1.0), (up, 1.0)):
        if not any(k in todo for k in branch):
            continue
        ctx.setPositions(start.getPositions())
        ctx.setVelocities(start.getVelocities())
        r = c0
        for k in branch:
            target = float(centers[k])
            while (target - r) * sign > dr:
                r += sign * dr
                ctx.setParameter(cvmod.R0, r)
                ctx.getIntegrator().step(chunk)
            r = target
            ctx.setParameter(cvmod.R0, r)
            ctx.getIntegrator().step(chunk)
            x = cvmod.context_cv(ctx, rcv)
            if not math.isfinite(x):
                raise SimulationError(f"pmf {spec.name}: steered pull gave a non-finite CV near r0={target:.4g} nm")
            if k in todo:
                write_state(ctx, paths[k])
            log.info("pmf %s pull: window %d r0=%.4f nm cv=%.4f nm", spec.name, k, target, x)


# ---------------------------------------------------------------------------
# one window
# ---------------------------------------------------------------------------
def _window_meta(spec: PMFSpec, k: int, r0: float) -> dict:
    return {
        "r0_nm": float(r0),
        "k_kJ_mol_nm2": float(spec.k_kJ_mol_nm2),
        "temperature_K": float(spec.temperature_K),
        "timestep_fs": float(spec.timestep_fs),
        "sample_interval_steps": int(spec.sample_interval_steps),
    }


def _same_restraint(npz, meta) -> bool:
    return all(np.isclose(float(npz[key]), val, rtol=1e-9, atol=1e-12) for key, val in meta.items())


def run_window(
    system_xml,
    state_xml,
    spec,
    k_index: int,
    out_dir,
    platform: str | None = None,
    threads: int | None = None,
    topology=None,
) -> Path:
    """Equilibrate and sample window ``k_index``; write ``window_<k>.npz`` atomically.

    ``state_xml``: the window's initial State (default ``out_dir/init/window_<k>.xml``).
    A window whose npz exists (with the same restraint) is skipped; an unfinished one
    resumes from ``window_<k>.chk.xml`` + ``window_<k>.partial.npz``.
    """
    spec = load_spec(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    centers = window_centers(spec)
    k = int(k_index)
    if not 0 <= k < len(centers):
        raise PMFSpecError(f"pmf {spec.name}: window index {k} out of range 0..{len(centers) - 1}")
    r0 = float(centers[k])
    meta = _window_meta(spec, k, r0)
    final = out_dir / f"window_{k}.npz"
    if final.is_file():
        with np.load(final) as old:
            if not _same_restraint(old, meta):
                raise PMFSpecError(
                    f"{final} was sampled with r0={float(old['r0_nm']):.5g} nm, k={float(old['k_kJ_mol_nm2']):g}, "
                    f"T={float(old['temperature_K']):g} K but the spec now asks r0={r0:.5g}, k={spec.k_kJ_mol_nm2:g}, "
                    f"T={spec.temperature_K:g}: delete the stale windows or use a new pmf name"
                )
        log.info("pmf %s: window %d already done (%s)", spec.name, k, final)
        return final
    if state_xml is None:
        state_xml = out_dir / "init" / f"window_{k}.xml"
    rcv = _resolved_cv(out_dir, spec, system_xml, state_xml, topology)
    system = _window_system(system_xml, spec, rcv, r0)
    seed = spec.seed + 1000 * (k + 1)
    ctx = _make_context(system, spec, seed, platform, threads)
    integ = ctx.getIntegrator()

    chk = out_dir / f"window_{k}.chk.xml"
    partial = out_dir / f"window_{k}.partial.npz"
    n_samples, interval = spec.n_samples, spec.sample_interval_steps
    cv_nm = np.full(n_samples, np.nan)
    equil_done, n_done = 0, 0
    resumed = False
    if chk.is_file() and partial.is_file():
        with np.load(partial) as p:
            if _same_restraint(p, meta) and int(p["n_samples"]) == n_samples:
                equil_done, n_done = int(p["equil_steps_done"]), int(p["samples_done"])
                cv_nm[:n_done] = p["cv_nm"][:n_done]
                resumed = True
        if resumed:
            apply_state(ctx, read_state(chk))
            log.info("pmf %s: window %d resumes at equil %d steps, %d samples", spec.name, k, equil_done, n_done)
    if not resumed:
        st = read_state(state_xml)
        apply_state(ctx, st, use_velocities=False)
        if rcv.kind == "height":
            pos, box, _ = state_arrays(st)
            ctx.setPositions(cvmod.image_for_height(rcv, pos, box, rcv.meta["moving_atoms"]))
        ctx.setVelocitiesToTemperature(spec.temperature_K * unit.kelvin, seed)

    t0 = time.perf_counter()
    dt_ps = spec.timestep_fs / 1000.0
    ckpt_steps = max(interval, int(spec.checkpoint_ps / dt_ps))

    def checkpoint():
        from solvmd.pmf.io import write_state

        write_state(ctx, chk)
        atomic_savez(
            partial, cv_nm=cv_nm, samples_done=n_done, equil_steps_done=equil_done, n_samples=n_samples, **meta
        )

    n_equil = spec.n_equil_steps
    while equil_done < n_equil:
        step = min(ckpt_steps, n_equil - equil_done)
        integ.step(step)
        equil_done += step
        x = cvmod.context_cv(ctx, rcv)
        if not math.isfinite(x):
            raise SimulationError(f"pmf {spec.name} window {k}: non-finite CV during equilibration (step {equil_done})")
        checkpoint()
    per_ckpt = max(1, ckpt_steps // interval)
    report_every = max(1, n_samples // 10)
    while n_done < n_samples:
        integ.step(interval)
        st = ctx.getState(getPositions=True)
        x = cvmod.cv_value(rcv, st.getPositions(asNumpy=True)._value, st.getPeriodicBoxVectors(asNumpy=True)._value)
        if not math.isfinite(x):
            raise SimulationError(
                f"pmf {spec.name} window {k}: non-finite CV at sample {n_done} (r0={r0:.4g} nm); "
                "lower timestep_fs or k_kJ_mol_nm2, or re-equilibrate the input structure"
            )
        cv_nm[n_done] = x
        n_done += 1
        if n_done % per_ckpt == 0 and n_done < n_samples:
            checkpoint()
        if n_done % report_every == 0:
            el = time.perf_counter() - t0
            log.info("pmf %s window %d: %d/%d samples, %.0f s elapsed", spec.name, k, n_done, n_samples, el)
    wall = time.perf_counter() - t0
    time_ps = (np.arange(1, n_samples + 1) * interval + spec.n_equil_steps) * dt_ps
    atomic_savez(
        final,
        cv_nm=cv_nm,
        time_ps=time_ps,
        window=k,
        kind=rcv.kind,
        equil_ps=float(spec.equil_ps),
        seed=seed,
        groups=json.dumps(rcv.groups),
        spec_json=spec_json(spec),
        platform=ctx.getPlatform().getName(),
        wall_s=wall,
        **meta,
    )
    chk.unlink(missing_ok=True)
    partial.unlink(missing_ok=True)
    log.info("pmf %s: window %d r0=%.4f nm done (mean %.4f, sd %.4f nm) in %.1f s", spec.name, k, r0,
             np.mean(cv_nm), np.std(cv_nm), wall)
    return final


def _run_window_job(args):
    system_xml, spec_dict, k, out_dir, platform, threads = args
    return str(run_window(system_xml, None, spec_dict, k, out_dir, platform=platform, threads=threads))


def run_windows(
    system_xml,
    state_xml,
    spec,
    out_dir,
    topology=None,
    n_jobs: int = 1,
    platform: str | None = None,
    threads: int | None = None,
) -> list[Path]:
    """Prepare, then run every window: one after another (``n_jobs=1``) or in ``n_jobs`` processes."""
    spec = load_spec(spec)
    out_dir = Path(out_dir)
    prepare_windows(system_xml, state_xml, spec, out_dir, topology=topology, platform=platform, threads=threads)
    ks = list(range(len(window_centers(spec))))
    if n_jobs <= 1:
        return [run_window(system_xml, None, spec, k, out_dir, platform=platform, threads=threads) for k in ks]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    sys_path = system_xml
    if isinstance(system_xml, mm.System):
        sys_path = out_dir / "system.xml"
        atomic_write_text(sys_path, mm.XmlSerializer.serialize(system_xml))
    jobs = [(str(sys_path), spec.model_dump(mode="json"), k, str(out_dir), platform, threads) for k in ks]
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as ex:
        return [Path(p) for p in ex.map(_run_window_job, jobs)]


def window_paths(out_dir, spec=None) -> list[Path]:
    out_dir = Path(out_dir)
    if spec is not None:
        spec = load_spec(spec)
        return [out_dir / f"window_{k}.npz" for k in range(len(window_centers(spec)))]
    return sorted(out_dir.glob("window_*.npz"), key=lambda p: int(p.stem.split("_")[1]))


def expected_time_ps(spec) -> float:
    spec = load_spec(spec)
    return len(window_centers(spec)) * (spec.equil_ps + spec.sample_ps)


__all__ = [
    "PMFWarning",
    "CVSelectionError",
    "window_centers",
    "n_windows",
    "window_width",
    "predicted_overlap",
    "check_windows",
    "resolve_cv",
    "choose_platform",
    "prepare_windows",
    "run_window",
    "run_windows",
    "window_paths",
]
