"""Reading the trajectory once: RDF histograms, the contact table, unwrapped centres of mass.

Shape borrowed from MDAnalysis ``AnalysisBase`` / ``rdf.py``: one pass over the frames,
and per frame ONE box-aware neighbour search (``capped_distance``) between all cation
atoms and all donor atoms of all partners. Everything per atom (which partner, which
molecule, which donor type) is a lookup array built once, so no selection string is
parsed per frame.

The product is a :class:`ContactTable`: one tidy long table with a row per (frame,
cation, donor atom) within that partner's first-shell cutoff, plus the little metadata
every downstream analysis needs (all cations, all partner molecules, the frames). Every
analysis in :mod:`structure`, :mod:`speciation`, :mod:`residence` and :mod:`transport` is a pure function
of it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pandas as pd
from MDAnalysis.analysis.base import AnalysisBase
from MDAnalysis.lib.distances import minimize_vectors

from solvmd.analysis import columns as C
from solvmd.analysis.spec import AnalysisSpec
from solvmd.analysis.trajectory_files import check_trajectory_file, cut_off_message, quiet_reader_teardown
from solvmd.errors import SolvmdError
from solvmd.geometry import box_volume, min_half_width, pairs_within


MAX_COORDINATE_A = 1.0e6  # |x| beyond this (100 um) is not a simulation coordinate but a corrupt frame


class AnalysisWarning(UserWarning):
    """A result that is computed but should not be trusted as is (e.g. a too-short trajectory)."""


# --------------------------------------------------------------------------- universe


def open_universe(spec: AnalysisSpec) -> mda.Universe:
    """Load topology + trajectory; missing files and atom-count mismatches name the field."""
    if not Path(spec.topology).is_file():
        raise SolvmdError(f"topology: file {spec.topology} not found")
    for p in spec.trajectories:
        if not Path(p).is_file():
            raise SolvmdError(f"trajectory: file {p} not found")
    structure = {p: check_trajectory_file(p, spec.trajectory_format)  # headers and record markers, before
                 for p in spec.trajectories}                            # a compiled reader trusts them
    kwargs = dict(spec.universe_kwargs)
    if spec.topology_format:
        kwargs["topology_format"] = spec.topology_format
    if spec.trajectory_format:
        kwargs["format"] = spec.trajectory_format
    trajs = [str(p) for p in spec.trajectories]
    problem = None
    with quiet_reader_teardown():  # a reader that failed to open prints a traceback when collected
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MDAnalysis chatter about guessed attributes
                u = mda.Universe(str(spec.topology), *trajs, **kwargs)
        except ValueError as err:
            msg = " ".join(str(err).split())
            problem = (f"trajectory: atom count does not match topology ({spec.topology}): {msg}"
                       if "number of atoms" in msg or "n_atoms" in msg
                       else f"trajectory/topology: MDAnalysis cannot read {spec.topology} + {trajs}: {msg}")
        except Exception as err:  # noqa: BLE001 - MDAnalysis raises many types for unreadable files
            problem = (f"trajectory/topology: MDAnalysis cannot read {spec.topology} + {trajs}: "
                       f"{type(err).__name__}: {err} (set topology_format / trajectory_format if the "
                       "extension is unusual)")
    if problem is not None:
        raise SolvmdError(problem)
    if u.atoms.n_atoms != u.trajectory.n_atoms:
        raise SolvmdError(
            f"trajectory: {u.trajectory.n_atoms} atoms per frame but topology has {u.atoms.n_atoms}"
        )
    check_trajectory(u, spec.trajectories)  # readable vs expected frames (md.json, frame index, DCD header)
    for p, found in structure.items():
        if found is not None and found[1] < Path(p).stat().st_size:
            raise SolvmdError(cut_off_message(p, *found))
    return u


def _expected_frames(path: Path) -> tuple[int | None, str]:
    """Frames the file should hold, and where that number comes from: ``md.json`` of the
    run that wrote it, solvmd's frame index ``<traj>.frames``, or a DCD header."""
    from solvmd import records
    from solvmd.io import read_json

    md_json = path.parent / records.MD_JSON
    if md_json.is_file():
        try:
            info = read_json(md_json, "MD record")
        except SolvmdError:
            info = {}
        if info.get("trajectory") == path.name and isinstance(info.get("n_frames"), int):
            return info["n_frames"], str(md_json)
    index = path.with_name(path.name + ".frames")
    if index.is_file():
        return sum(1 for ln in index.read_text(errors="replace").splitlines() if ln.strip()), str(index)
    if path.suffix.lower() == ".dcd" and path.stat().st_size >= 12:
        with open(path, "rb") as fh:
            head = fh.read(12)
        n = int.from_bytes(head[8:12], "little", signed=True)
        if head[4:8] == b"CORD" and n > 0:
            return n, "its DCD header"
    return None, ""


def _readable_frames(u: mda.Universe) -> int:
    """Frames that can be read in order (stops at the first unreadable one)."""
    n = 0
    try:
        for _ in u.trajectory:
            n += 1
    except Exception:  # noqa: BLE001 - readers raise OSError, ValueError, EOFError ...
        pass
    return n


def check_trajectory(u: mda.Universe, paths: list[Path]) -> int:
    """Every frame of the trajectory readable, and as many as expected (``md.json``, frame
    index or DCD header); else a SolvmdError with readable vs expected frame counts."""
    traj = u.trajectory
    n = int(traj.n_frames)
    name = ", ".join(str(p) for p in paths)
    try:
        traj[n - 1]
        last_ok = n > 0 and bool(np.all(np.isfinite(traj.ts.positions)))
    except Exception:  # noqa: BLE001
        last_ok = False
    readable = n if last_ok else _readable_frames(u)
    expected, source = _expected_frames(Path(paths[0])) if len(paths) == 1 else (None, "")
    if not last_ok:
        want = f"{expected} expected ({source})" if expected is not None else f"{n} indexed"
        raise SolvmdError(f"trajectory: {name} is truncated or corrupt: {readable} readable frames, {want}; "
                          "rerun the MD step (solvmd md resumes and rewrites it) or analyse a frame range "
                          f"below {readable} (frames.stop)")
    if expected is not None and readable != expected:
        raise SolvmdError(f"trajectory: {name} holds {readable} readable frames but {source} says {expected}; "
                          "the file is truncated or does not belong to that run: rerun the MD step")
    traj[0]
    return readable


def _select(u: mda.Universe, selection: str, field_name: str) -> mda.AtomGroup:
    try:
        ag = u.select_atoms(selection)
    except Exception as err:  # noqa: BLE001 - SelectionError, ValueError, NoDataError ...
        hint = ""
        if "element" in selection and not hasattr(u.atoms, "elements"):
            hint = " (this topology has no element information: select by name or type instead)"
        raise SolvmdError(f"{field_name}: invalid MDAnalysis selection {selection!r}: {err}{hint}") from None
    if ag.n_atoms == 0:
        resnames = sorted(set(u.residues.resnames)) if hasattr(u.residues, "resnames") else []
        raise SolvmdError(
            f"{field_name}: selection {selection!r} matches no atoms "
            f"(residue names in the topology: {', '.join(map(str, resnames[:30])) or 'none'})"
        )
    return ag


def donor_type_labels(atoms: mda.AtomGroup) -> np.ndarray:
    """Element if the topology has it, else atom type, else atom name."""
    for attr in ("elements", "types", "names"):
        if hasattr(atoms, attr):
            vals = np.asarray(getattr(atoms, attr)).astype(str)
            if np.all(np.char.strip(vals) != ""):
                return vals
    return np.array(["X"] * atoms.n_atoms)


@dataclass
class Groups:
    """Resolved selections with per-donor lookup arrays (built once)."""

    cations: mda.AtomGroup
    partner_names: list[str]
    anions: list[str]
    donors: mda.AtomGroup  # all donor atoms, partner by partner, in spec order
    donor_partner: np.ndarray  # partner code of each donor
    donor_type: np.ndarray  # index into type_labels
    type_labels: list[tuple[str, str]]  # (partner, donor type)
    partner_res: dict[str, np.ndarray]  # sorted residue indices of every molecule of the partner
    partner_residues: dict[str, mda.ResidueGroup]

    @property
    def n_donors_per_type(self) -> np.ndarray:
        return np.bincount(self.donor_type, minlength=len(self.type_labels))

    @property
    def n_donors_per_partner(self) -> np.ndarray:
        return np.bincount(self.donor_partner, minlength=len(self.partner_names))


def resolve_groups(u: mda.Universe, spec: AnalysisSpec) -> Groups:
    cations = _select(u, spec.cation, "cation")
    names = list(spec.partners)
    ags = {n: _select(u, spec.partners[n], f"partners.{n}") for n in names}
    cat_ix = set(cations.ix.tolist())
    for n, ag in ags.items():
        shared = cat_ix.intersection(ag.ix.tolist())
        if shared:
            raise SolvmdError(
                f"partners.{n}: selection {spec.partners[n]!r} overlaps the cation selection "
                f"{spec.cation!r} in {len(shared)} atom(s) (e.g. atom index {min(shared)}); "
                "a partner must not contain cation atoms"
            )
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if np.intersect1d(ags[a].residues.ix, ags[b].residues.ix).size:
                raise SolvmdError(
                    f"partners.{a} and partners.{b}: selections share molecules (residues); "
                    "every partner molecule must belong to exactly one partner species"
                )
    donors = sum((ags[n] for n in names[1:]), ags[names[0]])
    donor_partner = np.concatenate([np.full(ags[n].n_atoms, k, dtype=np.int64) for k, n in enumerate(names)])
    type_labels: list[tuple[str, str]] = []
    donor_type = np.empty(donors.n_atoms, dtype=np.int64)
    pos = 0
    for n in names:
        labels = donor_type_labels(ags[n])
        uniq = list(dict.fromkeys(labels.tolist()))
        base = len(type_labels)
        type_labels += [(n, t) for t in uniq]
        lut = {t: base + i for i, t in enumerate(uniq)}
        donor_type[pos : pos + ags[n].n_atoms] = [lut[t] for t in labels]
        pos += ags[n].n_atoms
    return Groups(
        cations=cations,
        partner_names=names,
        anions=list(spec.anions),
        donors=donors,
        donor_partner=donor_partner,
        donor_type=donor_type,
        type_labels=type_labels,
        partner_res={n: np.unique(ags[n].resindices) for n in names},
        partner_residues={n: ags[n].residues for n in names},
    )


def check_frame_box(dims, frame: int, source: str | None = None) -> None:
    """A trajectory frame must carry a finite periodic box (minimum-image distances need it)."""
    if dims is None or not np.all(np.isfinite(dims)) or np.any(np.asarray(dims[:3]) <= 0):
        where = f"{source}: frame {frame}" if source else f"frame {frame}"
        raise SolvmdError(
            f"trajectory: {where} has no periodic box (unit cell); the analysis needs the box "
            "for minimum-image distances - write the box into the trajectory (DCD/XTC/TRR do) "
            "or use a format that stores it"
        )


# --------------------------------------------------------------------------- one pass


@dataclass
class TransportRequest:
    """Which molecules to follow for MSD/conductivity (residue groups per species)."""

    species: list[str]
    residues: list[mda.ResidueGroup]
    remove_com_drift: bool = True


class SolvationPass(AnalysisBase):
    """One pass over the frames: RDF histograms, close contacts, unwrapped molecule centres.

    Per frame: one neighbour search (cations x all donors, range ``r_max``) gives every
    pair once; distances are binned per donor type with one ``bincount``; pairs closer
    than ``store_r`` are kept (compact int32/float32 arrays) for the contact table.

    Public ``results`` after :meth:`run`: ``frames`` (trajectory frame numbers),
    ``volumes_A3``, ``rdf_counts`` (flat (donor type x bin) histogram, or None),
    ``inv_volume_sum`` (sum of 1/V over frames, A^-3), ``pair_cation``/``pair_donor``
    (indices into the groups' cations/donors), ``pair_r`` (A), ``pair_frame`` (index among
    analysed frames); with transport: ``com_A`` (frames, molecules, 3; unwrapped, drift
    removed), ``com_species``, ``com_masses`` (amu per molecule), ``traj_times_ps`` (the
    trajectory's own frame times) and ``max_step_A`` / ``min_half_box_A`` (the largest
    frame-to-frame minimum-image atom displacement and the smallest box half-width: the
    unwrapping check).
    """

    def __init__(self, groups: Groups, r_max: float | None, bin_width: float, store_r: float,
                 transport: TransportRequest | None = None, verbose: bool = True):
        super().__init__(groups.cations.universe.trajectory, verbose=verbose)
        self.g = groups
        self.r_max = r_max
        self.bin_width = bin_width
        self.store_r = store_r
        self.transport = transport
        self.u = groups.cations.universe
        # pairs within one molecule (cation inside a partner residue) are not contacts
        self._need_excl = np.intersect1d(groups.cations.resindices, groups.donors.resindices).size > 0
        self._nbins = int(round(r_max / bin_width)) if r_max is not None else 0
        self._search = max(r_max or 0.0, store_r)

    def _prepare(self):
        r = self.results
        r.rdf_counts = np.zeros(len(self.g.type_labels) * self._nbins, dtype=np.int64) if self.r_max else None
        r.inv_volume_sum = 0.0
        self._volumes, self._frames, self._c, self._d, self._r, self._fi = [], [], [], [], [], []
        self._com: list[np.ndarray] = []
        self._traj_times: list[float] = []
        self._unwrap = _Unwrapper(self.u, self.transport) if self.transport is not None else None

    def _single_frame(self):
        ts, g, r = self._ts, self.g, self.results
        source = getattr(self._trajectory, "filename", None)
        _check_frame(ts.dimensions, ts.frame, self.r_max, source)
        pos = ts.positions
        if not np.isfinite(pos).all() or np.abs(pos).max(initial=0.0) > MAX_COORDINATE_A:
            raise SolvmdError(f"trajectory: {source or 'the trajectory'}: frame {ts.frame} holds non-finite or "
                              f"absurd coordinates (beyond {MAX_COORDINATE_A:g} A: a corrupt frame); rerun the MD "
                              "step or analyse the frames before it (frames.stop)")
        vol = box_volume(ts.dimensions)
        self._volumes.append(vol)
        r.inv_volume_sum += 1.0 / vol
        self._frames.append(ts.frame)
        pairs, dist = pairs_within(g.cations.positions, g.donors.positions, self._search, ts.dimensions)
        if self._need_excl and len(pairs):
            keep = g.cations.resindices[pairs[:, 0]] != g.donors.resindices[pairs[:, 1]]
            pairs, dist = pairs[keep], dist[keep]
        if r.rdf_counts is not None:
            b = (dist / self.bin_width).astype(np.int64)
            ok = b < self._nbins
            r.rdf_counts += np.bincount(g.donor_type[pairs[ok, 1]] * self._nbins + b[ok], minlength=r.rdf_counts.size)
        close = dist <= self.store_r
        self._c.append(pairs[close, 0].astype(np.int32))
        self._d.append(pairs[close, 1].astype(np.int32))
        self._r.append(dist[close].astype(np.float32))
        self._fi.append(np.full(int(close.sum()), self._frame_index, dtype=np.int32))
        if self._unwrap is not None:
            self._com.append(self._unwrap.centres(ts.dimensions))
            self._traj_times.append(float(ts.time))

    def _conclude(self):
        r = self.results
        r.frames = np.asarray(self._frames, dtype=np.int64)
        r.volumes_A3 = np.asarray(self._volumes)
        if r.frames.size == 0:
            raise SolvmdError("frames: the frame range selects no frames of the trajectory")
        cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
        r.pair_cation, r.pair_donor = cat(self._c, np.int32), cat(self._d, np.int32)
        r.pair_r, r.pair_frame = cat(self._r, np.float32), cat(self._fi, np.int32)
        self._c = self._d = self._r = self._fi = []
        if self._unwrap is not None:
            r.com_A = np.stack(self._com)
            r.com_species = self._unwrap.species
            r.com_masses = self._unwrap.mol_mass
            r.traj_times_ps = np.asarray(self._traj_times, dtype=np.float64)
            r.max_step_A, r.min_half_box_A = self._unwrap.max_step, self._unwrap.min_half_box
            self._com = []


def _check_frame(dims, frame: int, r_max: float | None, source: str | None = None) -> None:
    check_frame_box(dims, frame, source)
    if r_max is not None and r_max > min_half_width(dims) + 1e-6:  # cheap for orthorhombic boxes
        raise SolvmdError(
            f"rdf.r_max_A: {r_max} A is more than half the box width at frame {frame} "
            f"({min_half_width(dims):.2f} A); choose a smaller range"
        )


def _unit_weights(atoms: mda.AtomGroup) -> np.ndarray:
    """Masses of the atoms normalised to 1 (equal weights where a mass is missing or <= 0)."""
    w = atoms.masses.astype(np.float64) if hasattr(atoms, "masses") else np.ones(atoms.n_atoms)
    if not np.all(w > 0):
        w = np.ones(atoms.n_atoms)
    return w / w.sum()


class _Unwrapper:
    """Centres of mass of the followed molecules, unwrapped frame to frame (minimum image)."""

    def __init__(self, u: mda.Universe, t: TransportRequest):
        self.u, self.remove_drift = u, t.remove_com_drift
        self.species = np.concatenate([np.full(rg.n_residues, k, dtype=np.int64) for k, rg in enumerate(t.residues)])
        residues = [u.residues[rix] for rg in t.residues for rix in rg.ix]
        self.n_mol = len(residues)
        atom_ix = np.concatenate([res.atoms.ix for res in residues])
        self.mol_of_atom = np.concatenate([np.full(res.atoms.n_atoms, m) for m, res in enumerate(residues)])
        self.w = np.concatenate([_unit_weights(res.atoms) for res in residues])
        has_m = hasattr(u.atoms, "masses")
        self.mol_mass = np.array([float(res.atoms.masses.sum()) if has_m else float(res.atoms.n_atoms)
                                  for res in residues])
        self.max_step, self.min_half_box = 0.0, float("inf")
        if self.remove_drift:
            self.sys_w = _unit_weights(u.atoms)
            self.follow_ix, self.local = np.arange(u.atoms.n_atoms), atom_ix
        else:
            self.follow_ix = np.unique(atom_ix)
            self.local = np.searchsorted(self.follow_ix, atom_ix)
        self.prev = self.unwrapped = None

    def centres(self, dims) -> np.ndarray:
        """(molecules, 3) unwrapped centres at the current frame, system drift removed if asked."""
        x = self.u.atoms.positions[self.follow_ix].astype(np.float64)
        if self.prev is None:
            self.unwrapped = x.copy()
        else:  # displacement since the previous analysed frame, minimum image (no jumps)
            step = minimize_vectors(x - self.prev, dims.astype(np.float64))
            self.unwrapped += step
            if len(step):
                self.max_step = max(self.max_step, float(np.sqrt(np.max(np.einsum("ij,ij->i", step, step)))))
        self.min_half_box = min(self.min_half_box, float(min_half_width(dims)))
        self.prev = x
        xw = self.unwrapped[self.local] * self.w[:, None]
        com = np.stack([np.bincount(self.mol_of_atom, weights=xw[:, k], minlength=self.n_mol) for k in range(3)], 1)
        if self.remove_drift:
            com -= self.sys_w @ self.unwrapped
        return com


# --------------------------------------------------------------------------- contact table


@dataclass
class ContactTable:
    """The tidy long contact table and the metadata analyses need.

    ``pairs`` has one row per (frame, cation, donor atom) with the donor within its
    partner's cutoff: columns ``frame, cation_ix, partner, partner_resix, donor_ix, r_A``.
    ``frames`` are all analysed trajectory frames (a frame with no contacts still counts);
    ``cations`` all cation atom indices; ``partner_res`` every molecule of each partner
    (residue indices); ``anions`` the partners that are anions.
    """

    pairs: pd.DataFrame
    frames: np.ndarray
    times_ps: np.ndarray
    cations: np.ndarray
    partner_res: dict[str, np.ndarray]
    anions: list[str] = field(default_factory=list)
    cutoffs_A: dict[str, float | None] = field(default_factory=dict)

    @property
    def partner_names(self) -> list[str]:
        return list(self.partner_res)

    def memo(self, key: str, compute):
        """Cache an intermediate shared by several analyses (the table itself is never changed)."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    @property
    def n_frames(self) -> int:
        return int(self.frames.size)

    @property
    def n_cations(self) -> int:
        return int(self.cations.size)

    @property
    def dt_ps(self) -> float:
        """Time between consecutive analysed frames."""
        if self.times_ps.size < 2:
            return float("nan")
        return float(self.times_ps[1] - self.times_ps[0])

    @cached_property
    def molecules(self) -> np.ndarray:
        """All partner molecules (residue indices), partner by partner, in spec order."""
        return np.concatenate([self.partner_res[n] for n in self.partner_names])

    @cached_property
    def molecule_partner(self) -> np.ndarray:
        return np.concatenate(
            [np.full(self.partner_res[n].size, k, dtype=np.int64) for k, n in enumerate(self.partner_names)]
        )

    @cached_property
    def codes(self) -> dict[str, np.ndarray]:
        """Integer codes of the table's rows: frame index, cation index, partner, molecule."""
        p = self.pairs
        fi = np.searchsorted(self.frames, p[C.FRAME].to_numpy())
        ci = np.searchsorted(self.cations, p[C.CATION].to_numpy())
        order = np.argsort(self.molecules, kind="stable")
        mol_sorted = self.molecules[order]
        mi = order[np.searchsorted(mol_sorted, p[C.PARTNER_RES].to_numpy())]
        pc = self.molecule_partner[mi]
        return {"f": fi.astype(np.int64), "c": ci.astype(np.int64), "m": mi.astype(np.int64), "p": pc}


def build_contact_table(
    res, groups: Groups, cutoffs: dict[str, float | None], times_ps: np.ndarray
) -> ContactTable:
    """Filter the stored close pairs (``SolvationPass.results``) by each partner's cutoff into the tidy long table."""
    cut = np.array([np.nan if cutoffs.get(n) is None else cutoffs[n] for n in groups.partner_names], dtype=np.float64)
    part = groups.donor_partner[res.pair_donor]
    keep = res.pair_r <= cut[part]  # NaN (not coordinating) -> False
    donor_atoms = groups.donors.ix[res.pair_donor[keep]]
    order = np.lexsort((res.pair_r[keep], groups.cations.ix[res.pair_cation[keep]], res.pair_frame[keep]))
    df = pd.DataFrame(
        {
            C.FRAME: res.frames[res.pair_frame[keep]][order],
            C.CATION: groups.cations.ix[res.pair_cation[keep]][order],
            C.PARTNER: pd.Categorical.from_codes(part[keep][order], categories=groups.partner_names),
            C.PARTNER_RES: groups.donors.resindices[res.pair_donor[keep]][order],
            C.DONOR: donor_atoms[order],
            C.DIST: res.pair_r[keep][order].astype(np.float64),
        }
    )
    return ContactTable(
        pairs=df.reset_index(drop=True),
        frames=res.frames,
        times_ps=times_ps,
        cations=np.sort(groups.cations.ix),
        partner_res=dict(groups.partner_res),
        anions=list(groups.anions),
        cutoffs_A=dict(cutoffs),
    )
