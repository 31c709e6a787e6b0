"""Umbrella windows: initial structures, start checks, sampling with progress and drift reports.

Files in a PMF folder ``results/<system>/pmf/<cv>/``::

    cv.json               the resolved CV (atoms, weights, how they were chosen)
    shell.json            atoms counted for the desolvation profile (with a topology)
    spec.json             the PMFSpec the windows were made with
    added_windows.json    windows proposed by the estimate to close overlap gaps (optional)
    starts.json           each window's start CV vs its centre (the start check)
    init/window_<k>.xml   initial State of window k
    window_<k>.npz        CV samples, shell counts, restraint (r0, k, T, ...), written atomically
    window_<k>.partial.npz / window_<k>.chk (.prev.chk)   samples so far + checksummed Context checkpoint
    window_<k>.end.xml    the State at the window's end (where an extension continues)
    window_<k>.s<j>.npz   extension j of window k (extend.json, solvmd.pmf.extend)

Work order: :func:`prepare_windows` once, then :func:`run_window` for each k as independent
jobs (any order, any machine, restartable), then :func:`solvmd.pmf.estimate.estimate_pmf`.
A window without an initial structure (one added after an overlap gap) starts from the
nearest existing one, moved rigidly to its centre and minimised with its bias on.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import openmm as mm
from openmm import unit

from solvmd.md.platforms import locale_kept
from solvmd import records
from solvmd.geometry import minimum_image_vectors
from solvmd.errors import SimulationError
from solvmd.md.protocol import check_timestep_masses
from solvmd.pmf import cv as cvmod
from solvmd.pmf import progress as prog
from solvmd.pmf.cv import ResolvedCV
from solvmd.pmf.io import atomic_savez, atomic_write_text, read_state, read_system, state_arrays, write_state
from solvmd.pmf.profile import SHELL, ShellCounter, shell_map, write_shell_map
from solvmd.pmf.select import CVSelectionError, donor_elements, load_topology, resolve_cv, Selection
from solvmd.pmf_spec import PMFSpec, PMFSpecError, load_spec, spec_json
from solvmd.pmf.simulation import choose_platform, window_system
from solvmd.pmf.window_run import Samples, WindowRun, tag_of
from solvmd.pmf.windows import (
    PMFWarning, Window, check_windows, n_windows, predicted_overlap, window_centers, window_table, window_width,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# contexts
# ---------------------------------------------------------------------------
def _make_context(system, spec: PMFSpec, seed: int, platform=None, threads=None) -> mm.Context:
    check_timestep_masses(system, spec.timestep_fs, f"pmf {spec.name}: timestep_fs")
    integ = mm.LangevinMiddleIntegrator(spec.temperature_K * unit.kelvin, spec.friction_per_ps / unit.picosecond,
                                        spec.timestep_fs * unit.femtosecond)
    integ.setRandomNumberSeed(int(seed) % 2**31 or 1)
    plat, props = choose_platform(platform or spec.platform, threads)
    with locale_kept():
        return mm.Context(system, integ, plat, props)


def _resolved_cv(out_dir: Path, spec: PMFSpec, system_xml, state_xml, topology) -> ResolvedCV:
    """cv.json (and shell.json, with a topology) of the folder, resolved once."""
    path = out_dir / records.CV_JSON
    if path.is_file():
        return ResolvedCV.from_json(path)
    system = read_system(system_xml)
    pos, box, _ = state_arrays(read_state(state_xml))
    topology = load_topology(topology)
    rcv = resolve_cv(spec, system, pos, box, topology)
    if topology is not None:
        sel = Selection(spec, system, pos, box, topology, system.usesPeriodicBoundaryConditions())
        surface = getattr(spec.cv, "surface", None) or ("GRA",)
        cut = spec.profile_cutoff_nm or spec.cv.shell_cutoff_nm
        write_shell_map(out_dir / SHELL, shell_map(topology, rcv, donor_elements(sel), cut, surface))
    rcv.to_json(path)
    return rcv


# ---------------------------------------------------------------------------
# initial structures
# ---------------------------------------------------------------------------
def _roomiest_xy(pos: np.ndarray, box, moving: list[int], n_grid: int = 16) -> np.ndarray:
    """Lateral shift (nm, x y 0) of the ``moving`` atoms, on an n_grid^2 grid over the box, that
    leaves their nearest other atom farthest away: a height window then starts in a gap of the
    liquid instead of on top of a molecule (the height CV does not depend on x, y)."""
    others = np.setdiff1d(np.arange(len(pos)), moving)
    best, shift = -1.0, np.zeros(3)
    for fx in np.arange(n_grid) / n_grid:
        for fy in np.arange(n_grid) / n_grid:
            s = fx * box[0] + fy * box[1] - np.array([*pos[moving[0], :2], 0.0]) * [1, 1, 0]
            d = minimum_image_vectors((pos[others][None, :, :] - (pos[moving] + s)[:, None, :]).reshape(-1, 3), box)
            m = float(np.min(np.linalg.norm(d, axis=1)))
            if m > best:
                best, shift = m, s
    return shift


def _place(rcv: ResolvedCV, pos: np.ndarray, box, target: float, rng) -> np.ndarray:
    """Rigidly move the tagged molecule so the CV equals ``target`` (exact for the CV); a height
    window's molecule also moves laterally to the roomiest spot at that height."""
    pos = pos.copy()
    moving = rcv.meta["moving_atoms"]
    if rcv.kind == "height":
        pos[moving, 2] += target - cvmod.cv_value(rcv, pos)
        if box is not None and rcv.periodic and len(pos) > len(moving):
            pos[moving] += _roomiest_xy(pos, box, moving)
        return pos
    c = cvmod._centroids(rcv, pos)
    d = c[1] - c[0]
    if rcv.periodic and box is not None:
        d = minimum_image_vectors(d[None, :], box)[0]
    r = np.linalg.norm(d)
    if r < 1e-6:
        u = rng.normal(size=3)
        d, r = u / np.linalg.norm(u) * 1e-3, 1e-3
    shift = (target / r - 1.0) * d
    # distance: the partner (group 2) moves; site_distance: the cation (group 1) moves
    pos[moving] += shift if rcv.kind == "distance" else -shift
    return pos


# Placement only has to clear the clashes the rigid move made (the window's equilibration does
# the rest): a loose tolerance and few iterations keep preparation a small part of the PMF's MD.
# The bias is PLACE_STIFFNESS times stiffer while minimising, so the liquid makes room for the
# tagged molecule instead of pushing it back to the hole it came from. Tolerance (OpenMM: RMS
# force, kJ/mol/nm): on the demo Li+/Zn-N4 height PMF, 13 windows took 61 s at 50, 28 s at 200,
# 21 s at 500, every start within 0.12 restraint widths of its centre. 200 since 2026-12-01, once
# the positive control of tests/test_pmf_null_sheet.py tested the whole profile (it passes at 50
# and 200; the old end-point version lost its margin at 200).
PLACE_MIN_TOL_KJ_MOL_NM = 200.0
PLACE_MIN_ITERATIONS = 200
PLACE_STIFFNESS = 50.0


def _place_and_minimize(ctx, rcv, spec: PMFSpec, pos, box, w: Window, rng, path: Path) -> None:
    """Translate the tagged molecule to the centre, minimise with the bias on, write the State."""
    ctx.setPositions(_place(rcv, pos, box, w.r0_nm, rng))
    ctx.setParameter(cvmod.R0, w.r0_nm)
    ctx.setParameter(cvmod.K, w.k_kJ_mol_nm2 * PLACE_STIFFNESS)
    mm.LocalEnergyMinimizer.minimize(ctx, PLACE_MIN_TOL_KJ_MOL_NM, PLACE_MIN_ITERATIONS)
    ctx.setParameter(cvmod.K, w.k_kJ_mol_nm2)
    ctx.setVelocitiesToTemperature(spec.temperature_K * unit.kelvin, spec.seed + w.k_index)
    write_state(ctx, path)


def start_offsets(out_dir: Path, spec: PMFSpec, rcv: ResolvedCV, wins: list[Window]) -> list[dict]:
    """Start CV of each window's initial structure vs its centre, in restraint widths sqrt(kT/k).

    Windows further than ``max_start_offset_sigma`` are reported (warning); all go to starts.json.
    """
    rows = []
    for w in wins:
        path = out_dir / "init" / f"window_{w.k_index}.xml"
        if not path.is_file():
            continue
        pos, box, _ = state_arrays(read_state(path))
        pos = cvmod.image_positions(rcv, pos, box)
        x = float(cvmod.cv_value(rcv, pos, box))
        off = (x - w.r0_nm) / w.sigma_nm(spec.kT)
        ok = abs(off) <= spec.max_start_offset_sigma
        rows.append({"window": w.k_index, "r0_nm": w.r0_nm, "start_nm": round(x, 5), "offset_sigma": round(off, 3),
                     "ok": bool(ok)})
        if not ok:
            log.warning("pmf %s: window %d starts at %.4f nm, %.1f restraint widths from its centre %.4f nm "
                        "(limit %g): it will spend its equilibration getting there", spec.name, w.k_index, x, off,
                        w.r0_nm, spec.max_start_offset_sigma)
    old = json.loads((out_dir / "starts.json").read_text()) if (out_dir / "starts.json").is_file() else []
    merged = {r["window"]: r for r in old + rows}
    atomic_write_text(out_dir / "starts.json", json.dumps([merged[k] for k in sorted(merged)], indent=2))
    return rows


def prepare_windows(system_xml, state_xml, spec, out_dir, topology=None, platform: str | None = None,
                    threads: int | None = None, strict: bool = False) -> list[Path]:
    """Resolve the CV (``cv.json``), write ``init/window_<k>.xml`` for every window, check the starts.

    ``init: place`` moves the tagged molecule rigidly to each centre and minimises with the
    bias on (no MD); ``init: pull`` runs one steered pull from the equilibrated structure,
    printing its planned length and an estimate first, then progress with ns/day and ETA.
    Existing files are kept. ``strict``: window spacings predicted to leave gaps raise
    :class:`PMFSpecError` before any MD (the CLI's behaviour); otherwise they warn.
    """
    spec = load_spec(spec)
    out_dir = Path(out_dir)
    (out_dir / "init").mkdir(parents=True, exist_ok=True)
    check_windows(spec, strict=strict)
    rcv = _resolved_cv(out_dir, spec, system_xml, state_xml, topology)
    atomic_write_text(out_dir / records.SPEC_JSON, json.dumps(spec.model_dump(mode="json"), indent=2))
    wins = window_table(spec, out_dir)
    paths = [out_dir / "init" / f"window_{w.k_index}.xml" for w in wins]
    todo = [w for w, p in zip(wins, paths) if not p.is_file()]
    if todo:
        t0 = time.perf_counter()
        pos0, box0, _ = state_arrays(read_state(state_xml))
        if spec.init == "place":
            _place_all(system_xml, spec, rcv, pos0, box0, todo, out_dir, platform, threads)
        else:
            _pull(system_xml, spec, rcv, pos0, box0, todo, out_dir, platform, threads)
        wall = time.perf_counter() - t0
        log.info("pmf %s: %d initial structures in %.1f s", spec.name, len(todo), wall)
        atomic_write_text(out_dir / "prepare.json", json.dumps(
            {"init": spec.init, "windows_made": [w.k_index for w in todo], "wall_s": round(wall, 2)}, indent=2))
    start_offsets(out_dir, spec, rcv, wins)
    return paths


def _context_at(system_xml, spec, rcv, w: Window, box, platform, threads, seed=None) -> mm.Context:
    ctx = _make_context(window_system(system_xml, spec, rcv, w.k_kJ_mol_nm2, w.r0_nm), spec,
                        spec.seed if seed is None else seed, platform, threads)
    if box is not None and ctx.getSystem().usesPeriodicBoundaryConditions():
        ctx.setPeriodicBoxVectors(*box)
    return ctx


def _place_all(system_xml, spec, rcv, pos0, box0, todo, out_dir, platform, threads) -> None:
    pos0 = cvmod.image_positions(rcv, pos0, box0)
    ctx = _context_at(system_xml, spec, rcv, todo[0], box0, platform, threads)
    rng = np.random.default_rng(spec.seed)
    for w in todo:
        _place_and_minimize(ctx, rcv, spec, pos0, box0, w, rng, out_dir / "init" / f"window_{w.k_index}.xml")
        log.info("pmf %s: window %d placed at r0=%.4f nm (translation + biased minimisation)", spec.name,
                 w.k_index, w.r0_nm)


def _pull(system_xml, spec: PMFSpec, rcv, pos0, box0, todo: list[Window], out_dir: Path, platform, threads):
    """One steered pull from the start CV down to the lowest and up to the highest window to make."""
    pos0 = cvmod.image_positions(rcv, pos0, box0)
    ctx = _context_at(system_xml, spec, rcv, todo[0], box0, platform, threads)
    ctx.setPositions(pos0)
    c0 = cvmod.context_cv(ctx, rcv)
    k_pull = float(max(w.k_kJ_mol_nm2 for w in todo))
    ctx.setParameter(cvmod.R0, c0)
    ctx.setParameter(cvmod.K, k_pull)
    mm.LocalEnergyMinimizer.minimize(ctx, 10.0, 200)
    ctx.setVelocitiesToTemperature(spec.temperature_K * unit.kelvin, spec.seed)
    start = ctx.getState(getPositions=True, getVelocities=True)
    down = sorted([w for w in todo if w.r0_nm <= c0], key=lambda w: -w.r0_nm)
    up = sorted([w for w in todo if w.r0_nm > c0], key=lambda w: w.r0_nm)
    length = (c0 - down[-1].r0_nm if down else 0.0) + (up[-1].r0_nm - c0 if up else 0.0)
    dt_ps, chunk = spec.timestep_fs / 1000.0, 10
    dr = spec.pull_nm_per_ns / 1000.0 * dt_ps * chunk  # nm per chunk
    total = int(math.ceil(length / dr)) * chunk + chunk * len(todo)
    rate = prog.measure_ns_per_day(ctx, spec.timestep_fs)
    prog.plan(f"pmf {spec.name} pull", total, spec.timestep_fs, rate,
              f"steered pull over {length:.3f} nm at {spec.pull_nm_per_ns:g} nm/ns from the start CV {c0:.3f} nm "
              f"to {len(todo)} window centres")
    bar = prog.Progress(f"pmf {spec.name} pull", total, spec.timestep_fs)
    done = 0
    for branch, sign in ((down, -1.0), (up, 1.0)):
        if not branch:
            continue
        ctx.setPositions(start.getPositions())
        ctx.setVelocities(start.getVelocities())
        r = c0
        for w in branch:
            while (w.r0_nm - r) * sign > dr:
                r += sign * dr
                ctx.setParameter(cvmod.R0, r)
                ctx.getIntegrator().step(chunk)
                done += chunk
                bar.update(done)
            r = w.r0_nm
            ctx.setParameter(cvmod.R0, r)
            ctx.getIntegrator().step(chunk)
            done += chunk
            x = cvmod.context_cv(ctx, rcv)
            if not math.isfinite(x):
                raise SimulationError(f"pmf {spec.name}: steered pull gave a non-finite CV near r0={r:.4g} nm")
            write_state(ctx, out_dir / "init" / f"window_{w.k_index}.xml")
            bar.update(done, f"window {w.k_index} r0={r:.4f} nm cv={x:.4f} nm", force=True)


def _init_from_neighbour(system_xml, spec, rcv, w: Window, out_dir: Path, platform, threads) -> Path:
    """Initial structure of an added window: the nearest existing start, placed at its centre."""
    made = [v for v in window_table(spec, out_dir) if (out_dir / "init" / f"window_{v.k_index}.xml").is_file()]
    if not made:
        raise PMFSpecError(f"pmf {spec.name}: no initial structures in {out_dir / 'init'}; run pmf-prepare first")
    near = min(made, key=lambda v: abs(v.r0_nm - w.r0_nm))
    pos, box, _ = state_arrays(read_state(out_dir / "init" / f"window_{near.k_index}.xml"))
    pos = cvmod.image_positions(rcv, pos, box)
    ctx = _context_at(system_xml, spec, rcv, w, box, platform, threads)
    path = out_dir / "init" / f"window_{w.k_index}.xml"
    _place_and_minimize(ctx, rcv, spec, pos, box, w, np.random.default_rng(spec.seed + w.k_index), path)
    log.info("pmf %s: added window %d starts from window %d moved to r0=%.4f nm", spec.name, w.k_index,
             near.k_index, w.r0_nm)
    start_offsets(out_dir, spec, rcv, [w])
    return path


# ---------------------------------------------------------------------------
# one window
# ---------------------------------------------------------------------------
def _window_meta(spec: PMFSpec, w: Window) -> dict:
    return {"r0_nm": float(w.r0_nm), "k_kJ_mol_nm2": float(w.k_kJ_mol_nm2), "temperature_K": float(spec.temperature_K),
            "timestep_fs": float(spec.timestep_fs), "sample_interval_steps": int(spec.sample_interval_steps)}


def _same_restraint(npz, meta) -> bool:
    return all(np.isclose(float(npz[key]), val, rtol=1e-9, atol=1e-12) for key, val in meta.items())


def _check_stale(final: Path, meta: dict) -> None:
    with np.load(final) as old:
        if not _same_restraint(old, meta):
            raise PMFSpecError(
                f"{final} was sampled with r0={float(old['r0_nm']):.5g} nm, k={float(old['k_kJ_mol_nm2']):g}, "
                f"T={float(old['temperature_K']):g} K but the spec now asks r0={meta['r0_nm']:.5g}, "
                f"k={meta['k_kJ_mol_nm2']:g}, T={meta['temperature_K']:g}: delete the stale windows or use a new pmf name")


def _window_def(spec: PMFSpec, k: int, out_dir: Path) -> Window:
    wins = window_table(spec, out_dir)
    if not 0 <= k < len(wins):
        raise PMFSpecError(f"pmf {spec.name}: window index {k} out of range 0..{len(wins) - 1}")
    return wins[k]


def drift_report(spec: PMFSpec, w: Window, x: np.ndarray) -> dict:
    """Sampled mean vs centre in restraint widths; a slide beyond ``max_drift_sigma`` is logged now."""
    mean, sigma = float(np.mean(x)), w.sigma_nm(spec.kT)
    off = (mean - w.r0_nm) / sigma
    ok = abs(off) <= spec.max_drift_sigma
    if not ok:
        log.warning("pmf %s: window %d (r0=%.4f nm, k=%g) slid to a sampled mean of %.4f nm, %.1f restraint widths "
                    "away (limit %g): the free energy is steep here (mean force ~ %.0f kJ/mol/nm); its neighbours may "
                    "not overlap - stiffen k here or add windows", spec.name, w.k_index, w.r0_nm, w.k_kJ_mol_nm2,
                    mean, off, spec.max_drift_sigma, w.k_kJ_mol_nm2 * (w.r0_nm - mean))
    return {"mean_nm": mean, "drift_sigma": off, "drift_ok": ok}


def run_window(system_xml, state_xml, spec, k_index: int, out_dir, platform: str | None = None,
               threads: int | None = None, topology=None, segment: int = 1) -> Path:
    """Equilibrate and sample window ``k_index``; write ``window_<k>.npz`` atomically.

    ``state_xml``: the window's initial State (default ``out_dir/init/window_<k>.xml``; made
    from the nearest existing start for an added window). A window whose npz exists (same
    restraint) is skipped; an unfinished one resumes from its checkpoint. Progress (ns/day,
    ETA) is logged while it runs, and a drift of the sampled mean beyond ``max_drift_sigma``
    restraint widths is reported as soon as the window ends.
    """
    spec = load_spec(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    w = _window_def(spec, int(k_index), out_dir)
    final = out_dir / records.window_npz(w.k_index, segment)
    if final.is_file():
        _check_stale(final, _window_meta(spec, w))
        log.info("pmf %s: window %d already done (%s)", spec.name, w.k_index, final)
        return final
    if segment > 1:
        return _extend_window(system_xml, spec, w, segment, out_dir, platform, threads)
    default_init = out_dir / "init" / f"window_{w.k_index}.xml"
    rcv = _resolved_cv(out_dir, spec, system_xml, state_xml or default_init, topology)
    if state_xml is None or (Path(state_xml) == default_init and not default_init.is_file()):
        state_xml = default_init if default_init.is_file() else _init_from_neighbour(
            system_xml, spec, rcv, w, out_dir, platform, threads)
    seed = spec.seed + 1000 * (w.k_index + 1)
    run = WindowRun(window_system(system_xml, spec, rcv, w.k_kJ_mol_nm2, w.r0_nm), spec, rcv, out_dir,
                    tag_of(w.k_index), _window_meta(spec, w), seed, platform, threads,
                    f"pmf {spec.name} window {w.k_index}")
    if not run.resume():
        image = (lambda pos, box: cvmod.image_positions(rcv, pos, box)) \
            if rcv.kind == "height" or rcv.meta.get("hold") else None
        run.start(read_state(state_xml), fresh_velocities=True, image=image)
    wall = _finish_window(run, spec, w, rcv, final, seed, out_dir / records.window_end_xml(w.k_index))
    log.info("pmf %s: window %d r0=%.4f nm done (mean %.4f, sd %.4f nm) in %.1f s", spec.name, w.k_index, w.r0_nm,
             np.mean(run.samples.cv_nm), np.std(run.samples.cv_nm), wall)
    return final


def _finish_window(run: WindowRun, spec: PMFSpec, w: Window, rcv, final: Path, seed: int, end_xml: Path) -> float:
    """Sample (resumable), keep the end State for a later extension, write the npz, drop the checkpoint."""
    wall = run.run()
    drift = drift_report(spec, w, run.samples.cv_nm)
    atomic_write_text(end_xml, mm.XmlSerializer.serialize(run.end_state()))
    _write_window(final, spec, w, rcv, run.samples, seed, run.sim.context.getPlatform().getName(), wall, drift)
    run.clean()
    return wall


def _extend_window(system_xml, spec: PMFSpec, w: Window, segment: int, out_dir: Path, platform, threads) -> Path:
    """Extension ``segment`` of window w (extend.json): more sampling from where segment - 1 ended, no
    equilibration, written as window_<k>.s<segment>.npz."""
    from solvmd.pmf.extend import extra_ps, previous_segment

    try:
        before = previous_segment(out_dir, w.k_index, segment)
    except ValueError as err:
        raise PMFSpecError(f"pmf {spec.name}: {err}") from None
    start = out_dir / records.window_end_xml(w.k_index, before)
    if not start.is_file():
        raise PMFSpecError(f"pmf {spec.name}: {start} is missing: segment {before} of window {w.k_index} must "
                           "finish first")
    run_spec = spec.model_copy(update={"equil_ps": 0.0, "sample_ps": extra_ps(out_dir, w.k_index, segment)})
    rcv = ResolvedCV.from_json(out_dir / records.CV_JSON)
    seed = spec.seed + 1000 * (w.k_index + 1) + segment
    run = WindowRun(window_system(system_xml, spec, rcv, w.k_kJ_mol_nm2, w.r0_nm), run_spec, rcv, out_dir,
                    tag_of(w.k_index, segment), _window_meta(spec, w), seed, platform, threads,
                    f"pmf {spec.name} window {w.k_index} segment {segment}")
    if not run.resume():
        run.start(read_state(start), fresh_velocities=False)
    final = out_dir / records.window_npz(w.k_index, segment)
    _finish_window(run, run_spec, w, rcv, final, seed, out_dir / records.window_end_xml(w.k_index, segment))
    log.info("pmf %s: window %d extended by %.1f ps (segment %d)", spec.name, w.k_index, run_spec.sample_ps, segment)
    return final


def _write_window(final: Path, spec: PMFSpec, w: Window, rcv, s: Samples, seed, platform, wall, drift) -> None:
    dt_ps = spec.timestep_fs / 1000.0
    n = len(s.cv_nm)
    time_ps = (np.arange(1, n + 1) * spec.sample_interval_steps + spec.n_equil_steps) * dt_ps
    counter = ShellCounter.load(final.parent)
    extra = {"shell_counts": s.counts, "shell_columns": np.array(counter.columns),
             "shell_cutoff_nm": counter.cut} if counter is not None else {}
    md_ps = (spec.n_equil_steps + n * spec.sample_interval_steps) * dt_ps
    atomic_savez(final, cv_nm=s.cv_nm, time_ps=time_ps, window=w.k_index, kind=rcv.kind, equil_ps=float(spec.equil_ps),
                 seed=seed, groups=json.dumps(rcv.groups), spec_json=spec_json(spec), platform=platform, wall_s=wall,
                 ns_per_day=md_ps / 1000.0 / wall * 86400.0 if wall > 0 else float("nan"),
                 drift_sigma=drift["drift_sigma"], **extra, **_window_meta(spec, w))


def _run_window_job(args):
    """Every segment of one window, in order (the first, then its planned extensions)."""
    from solvmd.pmf.extend import window_segments

    system_xml, spec_dict, k, out_dir, platform, threads = args
    paths = [run_window(system_xml, None, spec_dict, k, out_dir, platform=platform, threads=threads, segment=j)
             for j in window_segments(out_dir, k)]
    return str(paths[0])


def run_windows(system_xml, state_xml, spec, out_dir, topology=None, n_jobs: int = 1, platform: str | None = None,
                threads: int | None = None) -> list[Path]:
    """Prepare, then run every window: one after another (``n_jobs=1``) or in ``n_jobs`` processes;
    with ``sampler: exchange`` all windows as replicas of one replica-exchange run."""
    spec = load_spec(spec)
    out_dir = Path(out_dir)
    prepare_windows(system_xml, state_xml, spec, out_dir, topology=topology, platform=platform, threads=threads)
    if spec.sampler == "exchange":
        from solvmd.pmf.exchange import run_exchange
        from solvmd.pmf.extend import exchange_segments

        paths = run_exchange(system_xml, spec, out_dir, topology=load_topology(topology), platform=platform,
                             threads=threads, segment=exchange_segments(out_dir)[-1])
        added = [w.k_index for w in window_table(spec, out_dir)[len(spec.centers()):]]  # gap windows: independent
        return paths + [Path(_run_window_job((system_xml, spec, k, out_dir, platform, threads))) for k in added]
    ks = [w.k_index for w in window_table(spec, out_dir)]
    if n_jobs <= 1:
        return [Path(_run_window_job((system_xml, spec, k, out_dir, platform, threads))) for k in ks]
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
    """``window_<k>.npz`` of every window of the folder (spec + added), or those present without a spec."""
    out_dir = Path(out_dir)
    if spec is not None:
        return [out_dir / f"window_{w.k_index}.npz" for w in window_table(spec, out_dir)]
    from solvmd.pmf.estimate import window_files

    return window_files(out_dir)


def expected_time_ps(spec, out_dir=None) -> float:
    """Total MD of the windows (ps), preparation excluded."""
    spec = load_spec(spec)
    return n_windows(spec, out_dir) * (spec.equil_ps + spec.sample_ps)


__all__ = [
    "PMFWarning", "CVSelectionError", "window_centers", "n_windows", "window_width", "predicted_overlap",
    "check_windows", "resolve_cv", "choose_platform", "prepare_windows", "run_window", "run_windows",
    "window_paths", "start_offsets", "drift_report",
]
