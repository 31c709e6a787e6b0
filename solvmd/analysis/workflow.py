"""The whole analysis: one pass over the trajectory, then pure functions of the contact table.

``analyze(spec)`` returns the tables (pandas DataFrames); ``run_analysis(spec, out_dir)``
also writes them, with the figures, to one folder. Every file is written under a
temporary name and moved into place, so a killed run never leaves a file that looks
finished; ``analysis.json`` (resolved spec, cutoffs, frames, warnings, versions) is
written last.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from solvmd import records
from solvmd.io import atomic_path, write_text_atomic
from solvmd.analysis import columns as C
from solvmd.analysis import plots, residence, speciation, structure
from solvmd.analysis import transport as transport_mod
from solvmd.analysis.contacts import (
    AnalysisWarning,
    ContactTable,
    Groups,
    SolvationPass,
    TransportRequest,
    build_contact_table,
    check_frame_box,
    open_universe,
    resolve_groups,
)
from solvmd.analysis.spec import AnalysisSpec
from solvmd.errors import SolvmdError
from solvmd.geometry import min_half_width

DEFAULT_R_MAX_A = 8.0

CSV_FILES = {
    "rdf": "rdf.csv",
    "coordination": "coordination.csv",
    "coordination_distribution": "coordination_distribution.csv",
    "coordination_frames": "coordination_frames.csv",
    "shells": "shells.csv",
    "speciation": "speciation.csv",
    "clusters": "clusters.csv",
    "residence": "residence.csv",
    "residence_acf": "residence_acf.csv",
    "transport": "transport.csv",
    "msd": "msd.csv",
}


class AnalysisResults(dict):
    """``dict[str, DataFrame]`` of all tables, plus the contact table and run metadata."""

    contacts: ContactTable
    cutoffs: dict[str, dict]
    meta: dict
    transport_info: dict  # windows, frames, blocks, warnings of the transport analysis


def _frame_slice(spec: AnalysisSpec, n_frames: int) -> tuple[int, int, int]:
    fr = spec.frames
    if fr.start >= n_frames:
        raise SolvmdError(f"frames.start: {fr.start} is beyond the trajectory ({n_frames} frames)")
    if fr.stop is not None and fr.stop > n_frames:
        raise SolvmdError(f"frames.stop: {fr.stop} is beyond the trajectory ({n_frames} frames, 0..{n_frames - 1}); "
                          f"use stop <= {n_frames} or leave it empty for all frames")
    stop = n_frames if fr.stop is None else fr.stop
    return fr.start, stop, fr.step


def _timestep(spec: AnalysisSpec, u) -> tuple[float, str]:
    if spec.timestep_ps is not None:
        return float(spec.timestep_ps), "spec timestep_ps"
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        try:
            dt = float(u.trajectory.dt)
        except Exception:  # noqa: BLE001
            dt = float("nan")
    if rec and any("dt" in str(w.message) for w in rec) or not (dt > 0):
        warnings.warn(
            "timestep_ps: the trajectory carries no frame interval; residence times and transport "
            "need it - set timestep_ps in the spec",
            AnalysisWarning,
            stacklevel=3,
        )
        return float("nan"), "unknown"
    return dt, "trajectory"


def _transport_request(spec: AnalysisSpec, u, g: Groups) -> tuple[TransportRequest, list[float | None]]:
    species, residues, charges = [], [], []
    topo_q = hasattr(u.atoms, "charges")

    def charge_of(name: str, rg, aliases: list[str]) -> float | None:
        for key in [name, *aliases]:
            if key in spec.charges:
                return float(spec.charges[key])
        names = set(rg.resnames) if hasattr(rg, "resnames") else set()
        if len(names) == 1 and (rn := next(iter(names))) in spec.charges:
            return float(spec.charges[rn])
        if topo_q:
            q = float(np.mean([r.atoms.charges.sum() for r in rg])) / spec.charge_scale
            if abs(q - round(q)) > 0.05:
                warnings.warn(
                    f"charges: topology charge of {name} / charge_scale = {q:.3f} is not an integer; "
                    f"give its formal charge in `charges`",
                    AnalysisWarning,
                    stacklevel=4,
                )
            return float(round(q))
        return None

    cat_res = g.cations.residues
    resnames = list(dict.fromkeys(cat_res.resnames)) if hasattr(cat_res, "resnames") else ["cation"]
    for rn in resnames:
        rg = cat_res[cat_res.resnames == rn] if hasattr(cat_res, "resnames") else cat_res
        species.append(str(rn))
        residues.append(rg)
        charges.append(charge_of(str(rn), rg, ["cation"]))
    covered = set(cat_res.ix.tolist())
    for n in g.partner_names:
        rg = g.partner_residues[n]
        species.append(n)
        residues.append(rg)
        charges.append(charge_of(n, rg, []))
        covered |= set(rg.ix.tolist())
    known = set(species) | {"cation"}
    for key, q in spec.charges.items():
        if key in known:
            continue
        try:
            rg = u.select_atoms(f"resname {key}").residues
        except Exception:  # noqa: BLE001
            rg = u.residues[[]]
        if rg.n_residues == 0:
            raise SolvmdError(
                f"charges.{key}: no residue named {key} and no partner of that name "
                f"(partners: {g.partner_names}; cation species: {resnames})"
            )
        rg = rg[[r not in covered for r in rg.ix]]
        if rg.n_residues:
            species.append(key)
            residues.append(rg)
            charges.append(float(q))
    return TransportRequest(species, residues, spec.transport.remove_com_drift), charges


def _store_radius(spec: AnalysisSpec, r_max: float) -> float:
    """Pairs closer than this are kept during the pass (automatic cutoffs are rarely larger;
    if one is, a second, contacts-only pass collects them)."""
    return min(r_max, max([spec.rdf.first_peak_max_A + 2.0, *spec.cutoffs_A.values()]))


def _rdf_range(spec: AnalysisSpec, dims) -> float:
    """RDF range (A): the spec's, or 8 A capped at half the box; every cutoff must lie inside it."""
    half = min_half_width(dims)
    if spec.rdf.r_max_A is not None:
        r_max = float(spec.rdf.r_max_A)
        if r_max > half + 1e-6:
            raise SolvmdError(
                f"rdf.r_max_A: {r_max} A is more than half the box width ({half:.2f} A); choose <= {half:.2f}"
            )
    else:
        r_max = min(DEFAULT_R_MAX_A, math.floor(half / spec.rdf.bin_A) * spec.rdf.bin_A)
    for name, c in spec.cutoffs_A.items():
        if c > r_max:
            raise SolvmdError(f"cutoffs_A.{name}: {c} A is beyond the RDF range {r_max:.2f} A")
    return r_max


def analyze(spec: AnalysisSpec, verbose: bool = True, universe=None) -> AnalysisResults:
    """Run every analysis in memory; returns the tables (no files written).

    ``universe``: an already loaded MDAnalysis Universe to analyse instead of opening
    ``spec.topology``/``spec.trajectory`` (those are then only recorded).
    """
    u = universe if universe is not None else open_universe(spec)
    g = resolve_groups(u, spec)
    frames = _frame_slice(spec, u.trajectory.n_frames)
    check_frame_box(u.trajectory[frames[0]].dimensions, frames[0], getattr(u.trajectory, "filename", None))
    r_max = _rdf_range(spec, u.trajectory[frames[0]].dimensions)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always", AnalysisWarning)
        res, passed, transport, charges, dt, dt_source = _analyze(spec, u, g, frames, r_max, verbose)
    msgs = []
    for w in rec:  # re-emit after recording; the analysis' own warnings also go to analysis.json
        if issubclass(w.category, AnalysisWarning):
            msgs.append(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    times = res.contacts.times_ps
    res.meta = {
        "n_atoms": int(u.atoms.n_atoms),
        "n_cations": int(g.cations.n_atoms),
        "cation_species": [str(x) for x in dict.fromkeys(g.cations.residues.resnames)]
        if hasattr(g.cations.residues, "resnames") else [],
        "n_frames_analysed": int(passed.frames.size),
        "frames": dict(zip(("start", "stop", "step"), frames)),
        "dt_ps": dt,
        "dt_source": dt_source,
        "analysed_time_ps": float(times[-1]) if times.size else 0.0,
        "r_max_A": r_max,
        "partners": {
            n: {"selection": spec.partners[n], "n_molecules": int(g.partner_res[n].size),
                "n_donor_atoms": int(g.n_donors_per_partner[k]),
                "donor_types": [t for p, t in g.type_labels if p == n]}
            for k, n in enumerate(g.partner_names)
        },  # fmt: skip
        "transport_charges_e": dict(zip(transport.species, charges)) if transport else {},
        "transport": getattr(res, "transport_info", {}),
        "warnings": msgs,
    }
    return res


def _contact_pass(spec: AnalysisSpec, g: Groups, frames, r_max: float, transport, dt: float, verbose: bool):
    """The one pass over the frames, the RDFs and cutoffs from it, and the contact table.

    Returns (pass results, RDF table, cutoff info per partner, contact table).
    """
    start, stop, step = frames
    store_r = _store_radius(spec, r_max)
    sp = SolvationPass(g, r_max, spec.rdf.bin_A, store_r, transport=transport, verbose=verbose)
    sp.run(start=start, stop=stop, step=step)
    passed = sp.results
    times = (passed.frames - passed.frames[0]) * dt
    rdf = structure.rdf_table(passed.rdf_counts, g.type_labels, g.n_donors_per_type, g.cations.n_atoms,
                              passed.frames.size, passed.inv_volume_sum, spec.rdf.bin_A)
    cut_info = structure.determine_cutoffs(rdf, g.partner_names, spec.cutoffs_A, spec.rdf)
    for n, info in cut_info.items():
        if info[C.CUTOFF] is None:
            warnings.warn(
                f"partner {n}: not coordinating ({info['reason']}); CN reported as 0, no cutoff "
                f"(override with cutoffs_A.{n} if it does coordinate)",
                AnalysisWarning,
            )
    cutoffs = {n: info[C.CUTOFF] for n, info in cut_info.items()}
    need = max([c for c in cutoffs.values() if c is not None], default=0.0)
    if need > store_r:  # an automatic cutoff beyond the stored contacts: collect them again
        sp2 = SolvationPass(g, None, spec.rdf.bin_A, need, transport=None, verbose=verbose)
        sp2.run(start=start, stop=stop, step=step)
        for key in ("pair_cation", "pair_donor", "pair_r", "pair_frame"):
            passed[key] = sp2.results[key]
    return passed, rdf, cut_info, build_contact_table(passed, g, cutoffs, times)


def _analyze(spec: AnalysisSpec, u, g: Groups, frames, r_max: float, verbose: bool):
    """All tables (warnings are raised, not recorded, here)."""
    dt, dt_source = _timestep(spec, u)
    transport, charges = _transport_request(spec, u, g) if spec.transport.enabled else (None, [])
    passed, rdf, cut_info, ct = _contact_pass(spec, g, frames, r_max, transport, dt, verbose)
    res = AnalysisResults()
    res["rdf"] = rdf
    res["cutoffs"] = pd.DataFrame([{C.PARTNER: n, **info} for n, info in cut_info.items()])
    res["coordination"] = structure.coordination_table(ct, rdf)
    res["coordination_distribution"] = structure.coordination_distribution(ct)
    res["coordination_frames"] = structure.coordination_per_frame(ct)
    res["shells"] = structure.shell_census(ct)
    res["speciation"] = speciation.speciation_table(ct)
    res["clusters"] = speciation.cluster_table(ct)
    if not spec.anions:
        warnings.warn("anions: no partner is listed as an anion; SSIP/CIP/AGG and clusters are not computed",
                      AnalysisWarning)
    if spec.residence.enabled:
        res["residence"], res["residence_acf"] = residence.residence_times(ct, spec.residence.max_lag_ps)
    if transport is not None and np.isfinite(dt):
        transport_mod.check_uniform_times(passed.traj_times_ps)
        res["transport"], res["msd"], res.transport_info = transport_mod.transport_table(
            passed.com_A, passed.com_species, transport.species, charges, ct.times_ps, passed.volumes_A3,
            spec.temperature_K, spec.transport, masses=passed.com_masses,
            barycentric=spec.transport.remove_com_drift, max_step_A=passed.max_step_A,
            min_half_box_A=passed.min_half_box_A,
        )  # fmt: skip
    res["contacts"] = ct.pairs
    res.contacts, res.cutoffs = ct, cut_info
    return res, passed, transport, charges, dt, dt_source


# --------------------------------------------------------------------------- writing


_atomic_write_text = write_text_atomic


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def write_results(res: AnalysisResults, spec: AnalysisSpec, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for key, fname in CSV_FILES.items():
        if key in res:
            _atomic_csv(res[key], out_dir / fname)
            written[key] = out_dir / fname
    cut = {
        "cation": spec.cation,
        "rdf": spec.rdf.model_dump(),
        "partners": {
            n: {
                "selection": spec.partners[n],
                **{k: info[k] for k in (C.CUTOFF, C.CUTOFF_SOURCE, C.COORDINATING, "auto_cutoff_A",
                                        C.PEAK_R, C.PEAK_G, C.MIN_R, C.MIN_G, "reason")},
            }
            for n, info in res.cutoffs.items()
        },  # fmt: skip
    }
    _atomic_write_text(out_dir / "cutoffs.json", json.dumps(_jsonable(cut), indent=2) + "\n")
    written["cutoffs.json"] = out_dir / "cutoffs.json"
    cation_label = "/".join(res.meta.get("cation_species", [])) or "cation"
    figs = {
        "rdf.png": lambda: plots.plot_rdf(res["rdf"], res["coordination"], cation_label),
        "coordination.png": lambda: plots.plot_coordination(res["coordination"]),
        "shells.png": lambda: plots.plot_shells(res["shells"]),
    }
    if len(res["speciation"]):
        figs["speciation.png"] = lambda: plots.plot_speciation(res["speciation"])
    if "transport" in res:
        figs["transport.png"] = lambda: plots.plot_transport(res["transport"], res["msd"],
                                                             spec.transport.diffusive_tolerance)
    for fname, make in figs.items():
        plots.save(make(), out_dir / fname)
        written[fname] = out_dir / fname
    meta = {
        "spec": json.loads(spec.model_dump_json()),
        **res.meta,
        "files": sorted(p.name for p in written.values()),
        "versions": _versions(),
    }
    _atomic_write_text(out_dir / records.ANALYSIS_JSON, json.dumps(_jsonable(meta), indent=2) + "\n")
    written[records.ANALYSIS_JSON] = out_dir / records.ANALYSIS_JSON
    return written


def _versions() -> dict[str, str]:
    import MDAnalysis
    import scipy

    import solvmd

    return {"solvmd": solvmd.__version__, "MDAnalysis": MDAnalysis.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "pandas": pd.__version__}  # fmt: skip


def run_analysis(
    spec: AnalysisSpec, out_dir: Path, verbose: bool = True, universe=None
) -> dict[str, pd.DataFrame]:
    """Analyse the trajectory named in ``spec`` and write every table and figure to ``out_dir``.

    Returns the tables as ``{name: DataFrame}`` (keys: rdf, cutoffs, coordination,
    coordination_distribution, coordination_frames, shells, speciation, clusters,
    residence, residence_acf, transport, msd, contacts).
    """
    res = analyze(spec, verbose=verbose, universe=universe)
    write_results(res, spec, Path(out_dir))
    return res
