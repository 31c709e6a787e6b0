"""One umbrella window (or one extension of it) as an ``openmm.app.Simulation`` with reporters.

The same pieces ``solvmd md`` uses: a :class:`~solvmd.md.reporters.Stage` per phase
(equilibration, sampling), reporters in OpenMM's protocol, and checksummed checkpoints of
the whole Context (:mod:`solvmd.md.checkpoints`: integrator random state included, the
previous copy kept, a damaged newest copy reported and skipped). Reporters, in the order they
fire at a shared step:

- :class:`SampleReporter`: the CV and the first-shell counts every ``sample_interval_steps``
  of the sampling stage;
- :class:`ProgressReporter`: simulated ps, ns/day and ETA on the ``solvmd.pmf`` logger;
- :class:`WindowCheckpointReporter`: the samples so far (``<tag>.partial.npz``) and then the
  Context checkpoint (``<tag>.chk``), so a checkpoint never has fewer samples on disk than it
  implies; resume reads both and continues at the checkpoint's step.

``<tag>`` is ``window_<k>`` (``window_<k>.s<j>`` for extension j). Steps and sample indices
are counted by the Context's step count; lengths in ps, CV in nm.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openmm as mm
from openmm import app, unit

from solvmd.md.platforms import locale_kept
from solvmd import records
from solvmd.errors import SimulationError
from solvmd.md.checkpoints import checkpoint_paths, latest_checkpoint, save_checkpoint
from solvmd.md.reporters import Stage, StageReporter
from solvmd.pmf import cv as cvmod
from solvmd.pmf import progress as prog
from solvmd.pmf.cv import ResolvedCV
from solvmd.pmf.io import atomic_savez
from solvmd.pmf.profile import ShellCounter
from solvmd.pmf.simulation import bare_topology, choose_platform
from solvmd.pmf_spec import PMFSpec

log = logging.getLogger(__name__)


@dataclass
class Samples:
    """CV samples (nm) and shell counts of one window run, filled in order."""

    cv_nm: np.ndarray
    counts: np.ndarray
    n_done: int = 0
    meta: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int, counter: ShellCounter | None, meta: dict) -> "Samples":
        return cls(np.full(n, np.nan), np.zeros((n, len(counter.columns) if counter else 0), np.int16), 0, meta)


class SampleReporter(StageReporter):
    """The CV (and shell counts) at every sampling step of the sampling stage."""

    needs = (True, False, False, False)

    def __init__(self, stage: Stage, interval: int, rcv: ResolvedCV, counter: ShellCounter | None,
                 samples: Samples, label: str):
        super().__init__(stage, interval)
        self.rcv, self.counter, self.samples, self.label = rcv, counter, samples, label

    def report(self, simulation, state) -> None:
        rel = simulation.currentStep - self.stage.start
        if rel <= 0 or rel % self.interval:
            return  # equilibration's last step, not a sample
        i = rel // self.interval - 1
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        x = cvmod.cv_value(self.rcv, pos, box)
        if not math.isfinite(x):
            raise SimulationError(f"{self.label}: non-finite CV at sample {i}; lower timestep_fs or k_kJ_mol_nm2, "
                                  "or re-equilibrate the input structure")
        self.samples.cv_nm[i] = x
        if self.counter is not None:
            self.samples.counts[i] = self.counter.count(np.asarray(pos), np.asarray(box))
        self.samples.n_done = i + 1


class ProgressReporter(StageReporter):
    """Progress lines (simulated ps, ns/day, ETA) every ``interval`` steps of the run."""

    def __init__(self, stage: Stage, interval: int, bar: prog.Progress, samples: Samples, n: int):
        super().__init__(stage, interval)
        self.bar, self.samples, self.n = bar, samples, n

    def report(self, simulation, state) -> None:
        self.bar.update(simulation.currentStep, f"{self.samples.n_done}/{self.n} samples")


class WindowCheckpointReporter(StageReporter):
    """Samples so far, then the checksummed Context checkpoint (attach it last)."""

    def __init__(self, stage: Stage, interval: int, out_dir: Path, samples: Samples):
        super().__init__(stage, interval)
        self.out_dir, self.samples = out_dir, samples

    @property
    def partial(self) -> Path:
        return self.out_dir / f"{self.stage.name}.partial.npz"

    def report(self, simulation, state) -> None:
        if simulation.currentStep >= self.stage.end:
            return  # the run is done: the window file replaces the checkpoint
        s = self.samples
        atomic_savez(self.partial, cv_nm=s.cv_nm, shell_counts=s.counts, samples_done=s.n_done, **s.meta)
        save_checkpoint(self.out_dir, self.stage.name, simulation.currentStep, simulation.context.createCheckpoint())


def _same_meta(npz, meta: dict) -> bool:
    return all(k in npz and np.isclose(float(npz[k]), v, rtol=1e-9, atol=1e-12) for k, v in meta.items())


class WindowRun:
    """Equilibration + sampling of one window (segment) on one Simulation, resumable."""

    def __init__(self, system: mm.System, spec: PMFSpec, rcv: ResolvedCV, out_dir: Path, tag: str, meta: dict,
                 seed: int, platform=None, threads=None, label: str = ""):
        from solvmd.md.protocol import check_timestep_masses
        check_timestep_masses(system, spec.timestep_fs, f"pmf {spec.name}: timestep_fs")
        integ = mm.LangevinMiddleIntegrator(spec.temperature_K * unit.kelvin, spec.friction_per_ps / unit.picosecond,
                                            spec.timestep_fs * unit.femtosecond)
        integ.setRandomNumberSeed(int(seed) % 2**31 or 1)
        plat, props = choose_platform(platform or spec.platform, threads)
        with locale_kept():
            self.sim = app.Simulation(bare_topology(system.getNumParticles()), system, integ, plat, props)
        self.spec, self.rcv, self.out_dir, self.tag, self.seed = spec, rcv, out_dir, tag, seed
        self.n, self.interval, self.n_equil = spec.n_samples, spec.sample_interval_steps, spec.n_equil_steps
        self.total = self.n_equil + self.n * self.interval
        self.counter = ShellCounter.load(out_dir)
        self.samples = Samples.empty(self.n, self.counter, meta)
        self.label = label or f"pmf {spec.name} {tag}"

    # -- start or resume ----------------------------------------------------
    def resume(self) -> bool:
        """Continue from the newest intact checkpoint with its samples; False when there is none."""
        chk = latest_checkpoint(self.out_dir, [self.tag], report=lambda m: log.warning("%s: %s", self.label, m))
        partial = self.out_dir / f"{self.tag}.partial.npz"
        if chk is None or not partial.is_file():
            return False
        with np.load(partial) as p:
            if not _same_meta(p, self.samples.meta) or len(p["cv_nm"]) != self.n:
                return False
            self.sim.context.loadCheckpoint(chk.payload)
            done = max(0, self.sim.currentStep - self.n_equil) // self.interval
            if int(p["samples_done"]) < done:
                raise SimulationError(f"{partial}: {int(p['samples_done'])} samples but its checkpoint is at sample "
                                      f"{done}; delete {self.tag}.* and rerun the window")
            self.samples.cv_nm[:done] = p["cv_nm"][:done]
            if p["shell_counts"].shape == self.samples.counts.shape:
                self.samples.counts[:done] = p["shell_counts"][:done]
            self.samples.n_done = done
        log.info("%s: resumes at step %d of %d (%d samples)", self.label, self.sim.currentStep, self.total, done)
        return True

    def start(self, state: mm.State, fresh_velocities: bool, image=None) -> None:
        """Positions, box (and velocities unless ``fresh_velocities``) from ``state``; step 0."""
        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        box = state.getPeriodicBoxVectors(asNumpy=True)
        self.sim.context.setPeriodicBoxVectors(*box)
        self.sim.context.setPositions(image(np.asarray(pos), box.value_in_unit(unit.nanometer)) if image else pos)
        if fresh_velocities:
            self.sim.context.setVelocitiesToTemperature(self.spec.temperature_K * unit.kelvin, self.seed)
        else:
            self.sim.context.setVelocities(state.getVelocities())
        self.sim.currentStep = 0

    # -- run --------------------------------------------------------------
    def run(self) -> float:
        """Run to the end (from wherever start/resume left it); returns the wall time (s)."""
        import time

        spec, T = self.spec, self.spec.temperature_K
        ckpt = max(self.interval, int(spec.checkpoint_ps * 1000.0 / spec.timestep_fs))
        whole = Stage(self.tag, 0, self.total, False, T, T)
        bar = prog.Progress(self.label, self.total, spec.timestep_fs, done=self.sim.currentStep)
        prog.plan(self.label, self.total - self.sim.currentStep, spec.timestep_fs, None,
                  f"equilibrate {spec.equil_ps:g} ps + sample {spec.sample_ps:g} ps")
        self.sim.reporters = [
            SampleReporter(Stage("sample", self.n_equil, self.n * self.interval, False, T, T), self.interval,
                           self.rcv, self.counter, self.samples, self.label),
            ProgressReporter(whole, ckpt, bar, self.samples, self.n),
            WindowCheckpointReporter(whole, ckpt, self.out_dir, self.samples),
        ]
        t0 = time.perf_counter()
        self.sim.step(self.total - self.sim.currentStep)
        bar.update(self.total, f"{self.samples.n_done}/{self.n} samples", force=True)
        if self.samples.n_done != self.n:
            raise SimulationError(f"{self.label}: {self.samples.n_done} of {self.n} samples recorded")
        return time.perf_counter() - t0

    def end_state(self) -> mm.State:
        return self.sim.context.getState(getPositions=True, getVelocities=True)

    def clean(self) -> None:
        """Drop the checkpoint files once the window file is written."""
        for p in (*checkpoint_paths(self.out_dir, self.tag), self.out_dir / f"{self.tag}.partial.npz"):
            p.unlink(missing_ok=True)


def tag_of(k: int, segment: int = 1) -> str:
    """Checkpoint/partial file stem of window k (segment j)."""
    return records.window_npz(k, segment)[: -len(".npz")]
