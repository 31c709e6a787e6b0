"""Hamiltonian replica exchange between umbrella windows (H-REUS) through OpenMM's own sampler.

``sampler: exchange`` in a PMF spec runs every window of one PMF as a replica of one
``openmm.app.Simulation`` driven by ``openmm.app.ReplicaExchangeSampler``: the states are
the windows' bias parameters (``pmf_r0``, ``pmf_k``), each replica runs
``exchange_interval_ps`` of MD per iteration, then states are swapped with the Metropolis
rule. A replica can so carry a rearranged solvation shell from one window to the next
instead of waiting for it in each window.

Each state's energy is the bias force group alone (``groups: {BIAS_GROUP}``): at one
temperature the unbiased energy cancels from the exchange criterion, so the swaps are
exact and the reduced energies the sampler records are exactly the u_kn MBAR needs; the
estimate reads them (``u_all_states`` in each window file) and does not re-evaluate them.

Files (in the PMF folder, beside the independent-window files)::

    window_<k>.npz      state k's samples: CV, shell counts, the replica that was in state k at
                        each iteration and its reduced energies in every state (same fields as
                        an independent window, plus sampler = "exchange")
    exchange.json       neighbour acceptance (mean Metropolis probability from the energies,
                        and the observed swap fraction), replica round trips, per-replica state
                        histories (compressed), wall time and ns/day
    exchange.npz        per iteration: state of every replica, reduced energies (iter, replica,
                        state), CV of every replica
    replica_paths.png   state index of each replica against time
    exchange.chk        checksummed checkpoint (+ exchange.prev.chk), kept when done so a rerun
                        with a larger sampling budget extends the run

Resume after a kill: rerun the same call; the sampler's replica states, state assignment,
iteration count and random state come back from the newest intact checkpoint (the previous
one when the newest is damaged). A checkpoint made for other windows, force constants or
interval is refused, naming the difference.
"""

from __future__ import annotations

import io
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm as mm
from openmm import app, unit

from solvmd.md.platforms import locale_kept
from solvmd.errors import SimulationError
from solvmd.md.checkpoints import latest_checkpoint, save_checkpoint
from solvmd.pmf import cv as cvmod
from solvmd.pmf import progress as prog
from solvmd.pmf.cv import ResolvedCV
from solvmd.pmf.io import atomic_savez, atomic_write_text, read_state, state_arrays
from solvmd.pmf.profile import ShellCounter
from solvmd.pmf_spec import PMFSpec, PMFSpecError, load_spec, spec_json
from solvmd.pmf.simulation import bare_topology, choose_platform, window_system
from solvmd.pmf.windows import Window, window_table

log = logging.getLogger(__name__)

STAGE = "exchange"  # checkpoint stage name: exchange.chk / exchange.prev.chk
EXCHANGE_JSON, EXCHANGE_NPZ = "exchange.json", "exchange.npz"


# ---------------------------------------------------------------------------
# the record of an exchange run
# ---------------------------------------------------------------------------
@dataclass
class ExchangeLog:
    """Everything recorded per iteration (arrays grow by ``append``); reduced energies in kT."""

    state_of_replica: np.ndarray  # (iterations, replicas) int
    u_kT: np.ndarray  # (iterations, replicas, states) reduced bias energy of each replica in each state
    cv_nm: np.ndarray  # (iterations, replicas)
    shell_counts: np.ndarray  # (iterations, replicas, columns) int16

    @classmethod
    def empty(cls, n: int, n_cols: int) -> "ExchangeLog":
        return cls(np.zeros((0, n), int), np.zeros((0, n, n)), np.zeros((0, n)), np.zeros((0, n, n_cols), np.int16))

    def append(self, states: list[int], u: np.ndarray, cv: np.ndarray, counts: np.ndarray) -> None:
        self.state_of_replica = np.concatenate([self.state_of_replica, [states]])
        self.u_kT = np.concatenate([self.u_kT, u[None]])
        self.cv_nm = np.concatenate([self.cv_nm, cv[None]])
        self.shell_counts = np.concatenate([self.shell_counts, counts[None].astype(np.int16)])

    @property
    def n_iterations(self) -> int:
        return len(self.state_of_replica)

    def replica_in_state(self) -> np.ndarray:
        """(iterations, states): which replica held each state."""
        out = np.empty_like(self.state_of_replica)
        rows = np.arange(self.n_iterations)[:, None]
        out[rows, self.state_of_replica] = np.arange(self.state_of_replica.shape[1])[None, :]
        return out

    def arrays(self) -> dict:
        return {"state_of_replica": self.state_of_replica, "u_kT": self.u_kT, "cv_nm": self.cv_nm,
                "shell_counts": self.shell_counts}


# ---------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------
def neighbour_acceptance(log_: ExchangeLog) -> dict:
    """Acceptance between neighbouring states i, i+1.

    ``predicted``: the mean Metropolis probability min(1, exp(-Delta)) of swapping the replicas
    that held i and i+1, from the recorded reduced energies (low-variance, exactly 1 for
    identical states); ``observed``: the fraction of iterations after which the replica of state
    i held state i+1 or the reverse (swaps through any pair count, as the sampler tries all pairs).
    """
    u, rep = log_.u_kT, log_.replica_in_state()
    n_it, n = rep.shape
    it = np.arange(n_it)
    pred, obs = [], []
    for i in range(n - 1):
        a, b = rep[:, i], rep[:, i + 1]
        delta = u[it, a, i + 1] + u[it, b, i] - u[it, a, i] - u[it, b, i + 1]
        pred.append(float(np.mean(np.exp(-np.maximum(delta, 0.0)))) if n_it else float("nan"))
        s = log_.state_of_replica
        moved = (s[:-1] == i) & (s[1:] == i + 1) | (s[:-1] == i + 1) & (s[1:] == i)
        obs.append(float(moved.sum() / max(1, 2 * (n_it - 1))))
    return {"predicted": pred, "observed": obs}


def round_trips(state_of_replica: np.ndarray) -> list[int]:
    """Per replica: completed trips lowest state -> highest state -> lowest state."""
    n = state_of_replica.shape[1]
    out = []
    for r in range(n):
        trips, target = 0, None
        for s in state_of_replica[:, r]:
            if s == 0:
                trips += target == "down"
                target = "up"
            elif s == n - 1 and target == "up":
                target = "down"
        out.append(int(trips))
    return out


def compressed_history(states: np.ndarray) -> list[list[int]]:
    """[[iteration, state], ...] at every change of state (run-length form of one replica's path)."""
    change = np.nonzero(np.diff(states))[0] + 1
    return [[0, int(states[0])]] + [[int(i), int(states[i])] for i in change] if len(states) else []


def exchange_summary(log_: ExchangeLog, spec: PMFSpec, wall_s: float, platform: str) -> dict:
    acc = neighbour_acceptance(log_)
    n = log_.state_of_replica.shape[1]
    md_ps = n * (spec.equil_ps + log_.n_iterations * spec.exchange_interval_ps)
    return {
        "sampler": "openmm.app.ReplicaExchangeSampler (Hamiltonian exchange over the windows' bias parameters)",
        "n_states": n, "iterations": log_.n_iterations, "exchange_interval_ps": spec.exchange_interval_ps,
        "attempts_per_iteration": n * n,
        "neighbour_acceptance_predicted": acc["predicted"], "neighbour_acceptance_observed": acc["observed"],
        "min_neighbour_acceptance": float(np.nanmin(acc["predicted"])) if n > 1 else None,
        "acceptance_note": "predicted = mean min(1, exp(-Delta)) of swapping the replicas in states i, i+1 at each "
                           "iteration, from the sampler's reduced energies; observed = fraction of iterations after "
                           "which a replica moved between i and i+1",
        "round_trips": round_trips(log_.state_of_replica), "total_round_trips": int(sum(round_trips(
            log_.state_of_replica))),
        "state_history": [compressed_history(log_.state_of_replica[:, r]) for r in range(n)],
        "platform": platform, "wall_s": round(wall_s, 2),
        "ns_per_day": round(md_ps / 1000.0 / wall_s * 86400.0, 3) if wall_s > 0 else None,
    }


# ---------------------------------------------------------------------------
# the simulation
# ---------------------------------------------------------------------------
def _fingerprint(spec: PMFSpec, wins: list[Window]) -> dict:
    """What a resumed run must share with the checkpoint it resumes."""
    return {"r0_nm": [round(w.r0_nm, 9) for w in wins], "k_kJ_mol_nm2": [round(w.k_kJ_mol_nm2, 6) for w in wins],
            "exchange_interval_ps": spec.exchange_interval_ps, "timestep_fs": spec.timestep_fs,
            "temperature_K": spec.temperature_K, "equil_ps": spec.equil_ps}


def _simulation(system_xml, spec: PMFSpec, rcv: ResolvedCV, w0: Window, topology, platform, threads):
    from solvmd.md.protocol import check_timestep_masses

    system = window_system(system_xml, spec, rcv, w0.k_kJ_mol_nm2, w0.r0_nm)
    check_timestep_masses(system, spec.timestep_fs, f"pmf {spec.name}: timestep_fs")
    integ = mm.LangevinMiddleIntegrator(spec.temperature_K * unit.kelvin, spec.friction_per_ps / unit.picosecond,
                                        spec.timestep_fs * unit.femtosecond)
    integ.setRandomNumberSeed(int(spec.seed) % 2**31 or 1)
    plat, props = choose_platform(platform or spec.platform, threads)
    top = topology if topology is not None else bare_topology(system.getNumParticles())
    with locale_kept():
        return app.Simulation(top, system, integ, plat, props)


def _initial_states(sim, spec: PMFSpec, rcv: ResolvedCV, wins: list[Window], out_dir: Path) -> list[mm.State]:
    """Each replica's start: init/window_<k>.xml in its own window, fresh velocities (seed + k)."""
    ctx, out = sim.context, []
    for w in wins:
        path = out_dir / "init" / f"window_{w.k_index}.xml"
        if not path.is_file():
            raise PMFSpecError(f"pmf {spec.name}: {path} is missing; run pmf-prepare first")
        pos, box, _ = state_arrays(read_state(path))
        if box is not None:
            ctx.setPeriodicBoxVectors(*box)
        ctx.setPositions(cvmod.image_positions(rcv, pos, box) if rcv.kind == "height" or rcv.meta.get("hold")
                         else pos)
        ctx.setParameter(cvmod.R0, w.r0_nm)
        ctx.setParameter(cvmod.K, w.k_kJ_mol_nm2)
        ctx.setVelocitiesToTemperature(spec.temperature_K * unit.kelvin, spec.seed + 1000 * (w.k_index + 1))
        out.append(ctx.getState(getPositions=True, getVelocities=True, getParameters=True,
                                getIntegratorParameters=True))
    return out


class ExchangeRun:
    """One H-REUS PMF: the sampler, its record, its checkpoint."""

    def __init__(self, system_xml, spec: PMFSpec, out_dir: Path, topology=None, platform=None, threads=None):
        self.spec, self.out_dir = spec, out_dir
        # the spec's windows are the states; windows an estimate adds to close a gap (added_windows.json)
        # run as independent windows beside the exchange run, and MBAR combines both
        self.wins = window_table(spec, out_dir)[: len(spec.centers())]
        self.rcv = ResolvedCV.from_json(out_dir / "cv.json")
        self.sim = _simulation(system_xml, spec, self.rcv, self.wins[0], topology, platform, threads)
        self.kT = spec.kT
        states = [{cvmod.R0: w.r0_nm, cvmod.K: w.k_kJ_mol_nm2, "groups": {cvmod.BIAS_GROUP}} for w in self.wins]
        self.sampler = app.ReplicaExchangeSampler(states, self.sim, spec.exchange_steps)
        self.counter = ShellCounter.load(out_dir)
        self.log = ExchangeLog.empty(len(self.wins), len(self.counter.columns) if self.counter else 0)
        self.equil_done = 0  # replicas equilibrated so far
        self.sampler.reporters.append(self._record)

    # -- recording --------------------------------------------------------
    def _record(self, sampler) -> None:
        n = len(self.wins)
        u = np.array([[e.value_in_unit(unit.kilojoule_per_mole) for e in row] for row in sampler.replicaStateEnergy])
        cv = np.empty(n)
        counts = np.zeros((n, self.log.shell_counts.shape[2]), np.int16)
        for r, st in enumerate(sampler.replicaConformation):
            pos, box, _ = state_arrays(st)
            cv[r] = cvmod.cv_value(self.rcv, pos, box)
            if self.counter is not None:
                counts[r] = self.counter.count(pos, box)
        if not np.all(np.isfinite(cv)) or not np.all(np.isfinite(u)):
            raise SimulationError(f"pmf {self.spec.name}: non-finite CV or energy at exchange iteration "
                                  f"{sampler.currentIteration}; lower timestep_fs or k_kJ_mol_nm2")
        self.log.append(list(sampler.replicaStateIndex), u / self.kT, cv, counts)

    # -- checkpoints ------------------------------------------------------
    def save(self) -> None:
        s = self.sampler
        meta = {"fingerprint": _fingerprint(self.spec, self.wins), "equil_done": self.equil_done,
                "iteration": s.currentIteration, "replicaStateIndex": list(s.replicaStateIndex),
                "previous": list(s._previousReplicaStateIndex), "random_state": _jsonable(random.getstate())}
        buf = io.BytesIO()
        np.savez(buf, meta=json.dumps(meta), states=np.array([mm.XmlSerializer.serialize(x) for x in
                                                              s.replicaConformation]), **self.log.arrays())
        save_checkpoint(self.out_dir, STAGE, s.currentIteration, buf.getvalue())

    def resume(self) -> bool:
        chk = latest_checkpoint(self.out_dir, [STAGE], report=lambda m: log.warning("pmf %s: %s", self.spec.name, m))
        if chk is None:
            return False
        with np.load(io.BytesIO(chk.payload)) as z:
            meta = json.loads(str(z["meta"]))
            _check_fingerprint(self.spec, meta["fingerprint"], _fingerprint(self.spec, self.wins), chk.path)
            self.sampler.replicaConformation = [mm.XmlSerializer.deserialize(str(x)) for x in z["states"]]
            self.log = ExchangeLog(*(np.asarray(z[k]) for k in ("state_of_replica", "u_kT", "cv_nm", "shell_counts")))
        s = self.sampler
        s.currentIteration, s.replicaStateIndex = int(meta["iteration"]), list(meta["replicaStateIndex"])
        s._previousReplicaStateIndex = list(meta["previous"])
        random.setstate(_tupled(meta["random_state"]))
        self.equil_done = int(meta["equil_done"])
        log.info("pmf %s: exchange resumes at iteration %d (%s)", self.spec.name, s.currentIteration, chk.path.name)
        return True

    # -- running ----------------------------------------------------------
    def run(self, n_iterations: int) -> float:
        """Equilibrate every replica in its own window (no exchange), then sample to ``n_iterations``;
        returns the wall time (s)."""
        spec, s, n = self.spec, self.sampler, len(self.wins)
        if not self.resume():
            s.replicaConformation = _initial_states(self.sim, spec, self.rcv, self.wins, self.out_dir)
            random.seed(int(spec.seed))
        ckpt_iters = max(1, int(spec.checkpoint_ps / spec.exchange_interval_ps))
        total = n * (spec.n_equil_steps + n_iterations * spec.exchange_steps)
        done = self.equil_done * spec.n_equil_steps + n * s.currentIteration * spec.exchange_steps
        label = f"pmf {spec.name} exchange"
        prog.plan(label, total - done, spec.timestep_fs, None,
                  f"{n} replicas: equilibrate {spec.equil_ps:g} ps each, then {n_iterations} iterations of "
                  f"{spec.exchange_interval_ps:g} ps")
        bar = prog.Progress(label, total, spec.timestep_fs, done=done)
        t0 = time.perf_counter()
        while self.equil_done < n:
            if spec.n_equil_steps:
                s.simulateReplica(self.equil_done, spec.n_equil_steps)
            self.equil_done += 1
            self.save()
            bar.update(self.equil_done * spec.n_equil_steps, f"replica {self.equil_done}/{n} equilibrated")
        while s.currentIteration < n_iterations:
            s.simulate(min(ckpt_iters, n_iterations - s.currentIteration))
            self.save()
            acc = neighbour_acceptance(self.log)["predicted"]
            bar.update(n * (spec.n_equil_steps + s.currentIteration * spec.exchange_steps),
                       f"iteration {s.currentIteration}/{n_iterations}, min neighbour acceptance {min(acc):.2f}")
        bar.update(total, "done", force=True)
        return time.perf_counter() - t0


def _jsonable(x):
    return [_jsonable(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tupled(x):
    return tuple(_tupled(v) for v in x) if isinstance(x, list) else x


def _check_fingerprint(spec: PMFSpec, saved: dict, now: dict, path: Path) -> None:
    changed = [k for k in now if saved.get(k) != now[k]]
    if changed:
        diff = "; ".join(f"{k}: checkpoint {saved.get(k)}, spec {now[k]}" for k in changed)
        raise PMFSpecError(f"pmf {spec.name}: {path} was made for another exchange spec ({diff}). Delete "
                           f"{path.parent}/exchange*.chk and the window files, or use a new pmf name")


# ---------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------
def write_state_windows(run: ExchangeRun, wall_s: float) -> list[Path]:
    """window_<k>.npz for every state from the exchange record (the estimate's input)."""
    spec, lg = run.spec, run.log
    rep = lg.replica_in_state()
    it = np.arange(lg.n_iterations)
    time_ps = spec.equil_ps + (it + 1) * spec.exchange_interval_ps
    platform = run.sim.context.getPlatform().getName()
    md_ps = spec.equil_ps + lg.n_iterations * spec.exchange_interval_ps
    paths = []
    for w in run.wins:
        k = w.k_index
        extra = {"shell_counts": lg.shell_counts[it, rep[:, k]], "shell_columns": np.array(run.counter.columns),
                 "shell_cutoff_nm": run.counter.cut} if run.counter is not None else {}
        x = lg.cv_nm[it, rep[:, k]]
        sigma = w.sigma_nm(spec.kT)
        path = run.out_dir / f"window_{k}.npz"
        atomic_savez(path, cv_nm=x, time_ps=time_ps, window=k, kind=run.rcv.kind, equil_ps=float(spec.equil_ps),
                     seed=spec.seed, groups=json.dumps(run.rcv.groups), spec_json=spec_json(spec), platform=platform,
                     wall_s=wall_s / len(run.wins), ns_per_day=md_ps / 1000.0 / max(wall_s / len(run.wins), 1e-9) * 86400,
                     drift_sigma=(float(np.mean(x)) - w.r0_nm) / sigma, sampler="exchange",
                     replica=rep[:, k], u_all_states=lg.u_kT[it, rep[:, k], :], r0_nm=float(w.r0_nm),
                     k_kJ_mol_nm2=float(w.k_kJ_mol_nm2), temperature_K=float(spec.temperature_K),
                     timestep_fs=float(spec.timestep_fs), sample_interval_steps=int(spec.exchange_steps), **extra)
        paths.append(path)
    return paths


def write_outputs(run: ExchangeRun, wall_s: float, plots: bool = True) -> list[Path]:
    paths = write_state_windows(run, wall_s)
    summary = exchange_summary(run.log, run.spec, wall_s, run.sim.context.getPlatform().getName())
    atomic_write_text(run.out_dir / EXCHANGE_JSON, json.dumps(summary, indent=1))
    atomic_savez(run.out_dir / EXCHANGE_NPZ, **run.log.arrays())
    if plots:
        from solvmd.pmf.plots import plot_replica_paths

        plot_replica_paths(run.log.state_of_replica, run.spec.exchange_interval_ps, run.out_dir / "replica_paths.png")
    log.info("pmf %s: exchange done, %d iterations, min neighbour acceptance %.3f, %d round trips",
             run.spec.name, run.log.n_iterations, summary["min_neighbour_acceptance"], summary["total_round_trips"])
    return paths


def run_exchange(system_xml, spec, out_dir, topology=None, platform: str | None = None, threads: int | None = None,
                 segment: int = 1, plots: bool = True) -> list[Path]:
    """Run (or resume) an exchange PMF; write the window files and, last, the segment's marker.

    Needs the folder's ``cv.json`` and ``init/window_<k>.xml`` (:func:`solvmd.pmf.umbrella.prepare_windows`).
    ``segment`` 1 samples ``sample_ps`` per replica; segment j >= 2 continues the same run to the
    total the estimate planned for it in ``extend.json`` (:mod:`solvmd.pmf.extend`).
    """
    from solvmd import records
    from solvmd.pmf.extend import exchange_total_ps

    spec = load_spec(spec)
    if spec.sampler != "exchange":
        raise PMFSpecError(f"pmf {spec.name}: sampler is {spec.sampler!r}; run_exchange needs sampler: exchange")
    out_dir = Path(out_dir)
    n_iter = int(round(exchange_total_ps(spec, out_dir, segment) / spec.exchange_interval_ps))
    run = ExchangeRun(system_xml, spec, out_dir, topology, platform, threads)
    wall = run.run(n_iter)
    paths = write_outputs(run, wall, plots)
    if segment > 1:
        atomic_write_text(out_dir / records.exchange_marker(segment), (out_dir / EXCHANGE_JSON).read_text())
    return paths


def exchange_iterations_done(out_dir) -> int:
    """Iterations recorded in a finished exchange run's ``exchange.npz`` (0 when none)."""
    path = Path(out_dir) / EXCHANGE_NPZ
    if not path.is_file():
        return 0
    with np.load(path) as z:
        return int(len(z["state_of_replica"]))


__all__ = ["run_exchange", "ExchangeRun", "ExchangeLog", "neighbour_acceptance", "round_trips", "exchange_summary",
           "exchange_iterations_done"]
