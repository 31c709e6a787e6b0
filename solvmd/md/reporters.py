"""OpenMM reporters for ``solvmd md``: thermo log + progress, trajectory frames, checkpoints.

Each reporter follows OpenMM's reporter protocol (``describeNextReport`` / ``report``)
and is attached to ``Simulation.reporters`` for one stage. Intervals count from the
stage's first step and every reporter also fires at the stage's last step, so the
checkpoint at a stage end always has its thermo row (and frame) before it.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from openmm import unit

from solvmd.errors import SimulationError
from solvmd.io import write_text_atomic
from solvmd.log import get_logger
from solvmd.md.checkpoints import save_checkpoint
from solvmd.md.trajectory import TrajectoryWriter

LOG = get_logger("md")
THERMO_COLUMNS = ["stage", "step", "time_ps", "T_K", "V_nm3", "density_g_cm3", "Epot_kJ_mol", "Ekin_kJ_mol",
                  "ns_per_day"]
MOLAR_GAS_CONSTANT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)


@dataclass(frozen=True)
class Stage:
    """One MD stage: global step range, ensemble and temperature ramp (K)."""

    name: str
    start: int
    steps: int
    npt: bool
    t_from_K: float
    t_to_K: float

    @property
    def end(self) -> int:
        return self.start + self.steps

    def temperature_at(self, step: int) -> float:
        """Thermostat temperature (K) at global ``step`` (linear ramp over the stage)."""
        if self.steps == 0 or self.t_from_K == self.t_to_K:
            return self.t_to_K
        frac = min(1.0, max(0.0, (step - self.start) / self.steps))
        return self.t_from_K + (self.t_to_K - self.t_from_K) * frac


class StageReporter:
    """Base: fires every ``interval`` steps counted from the stage start, and at its end."""

    needs: tuple[bool, bool, bool, bool] = (False, False, False, False)  # positions, velocities, forces, energy

    def __init__(self, stage: Stage, interval: int):
        self.stage, self.interval = stage, interval

    def describeNextReport(self, simulation):  # noqa: N802 (OpenMM's protocol)
        step = simulation.currentStep
        rel = step - self.stage.start
        to_next = self.interval - rel % self.interval
        to_end = self.stage.end - step
        steps = min(to_next, to_end) if to_end > 0 else to_next
        return (steps, *self.needs, False)


class ThermoReporter(StageReporter):
    """thermo.csv rows, the blow-up check and the progress line (ns/day, ETA) on the ``solvmd.md`` logger."""

    needs = (False, False, False, True)

    def __init__(self, stage: Stage, interval: int, thermo_path: Path, run: "RunClock",
                 dof: int, mass_g: float, dt_ps: float, n_atoms: int, max_energy_per_atom: float):
        super().__init__(stage, interval)
        self.path, self.run = thermo_path, run
        self.dof, self.mass_g, self.dt_ps = dof, mass_g, dt_ps
        self.n_atoms, self.max_energy = n_atoms, max_energy_per_atom

    def report(self, simulation, state) -> None:
        step = simulation.currentStep
        epot = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        ekin = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        if not math.isfinite(epot) or abs(epot) / self.n_atoms > self.max_energy:
            raise SimulationError(f"stage {self.stage.name}, step {step}: potential energy {epot:.4g} kJ/mol is "
                                  "not finite or exploding; lower the timestep, minimize longer or check the packing")
        volume = float(np.linalg.det(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)))
        density = self.mass_g / (volume * 1e-21)
        temp = 2.0 * ekin / (self.dof * MOLAR_GAS_CONSTANT)
        rate = self.run.tick(step)
        row = [self.stage.name, step, round(step * self.dt_ps, 6), round(temp, 3), round(volume, 5),
               round(density, 5), round(epot, 3), round(ekin, 3), round(rate, 3)]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(row)
        with open(self.path, "a") as fh:
            fh.write(buf.getvalue())
        LOG.info(f"{self.stage.name}: step {step}/{self.run.total_steps}  {step * self.dt_ps:.1f}/"
              f"{self.run.total_steps * self.dt_ps:.1f} ps  T {temp:.1f} K  rho {density:.4f} g/cm3  "
              f"{rate:.2f} ns/day  ETA {self.run.eta(step)}")


class FrameReporter(StageReporter):
    """Production frames into the trajectory (with its frame index for exact resume)."""

    needs = (True, False, False, False)

    def __init__(self, stage: Stage, interval: int, writer: TrajectoryWriter):
        super().__init__(stage, interval)
        self.writer = writer

    def describeNextReport(self, simulation):  # noqa: N802
        steps, *rest = super().describeNextReport(simulation)
        rel = simulation.currentStep + steps - self.stage.start
        if rel % self.interval:  # the stage end is not a frame step: skip past it
            steps += self.interval - rel % self.interval
        return (steps, *rest)

    def report(self, simulation, state) -> None:
        self.writer.write(simulation.currentStep, state.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                          state.getPeriodicBoxVectors())


class CheckpointReporter(StageReporter):
    """Checksummed checkpoints (:mod:`solvmd.md.checkpoints`); attach it last."""

    def __init__(self, stage: Stage, interval: int, out_dir: Path):
        super().__init__(stage, interval)
        self.out_dir = out_dir

    def report(self, simulation, state) -> None:
        save_checkpoint(self.out_dir, self.stage.name, simulation.currentStep,
                        simulation.context.createCheckpoint())


class RunClock:
    """Wall-clock bookkeeping of one invocation: ns/day between reports and the ETA."""

    def __init__(self, total_steps: int, dt_ps: float, first_step: int):
        self.total_steps, self.dt_ps = total_steps, dt_ps
        self.started = time.perf_counter()
        self.first_step = first_step
        self.last_step, self.last_time = first_step, self.started
        self.rates: list[float] = []

    def restart_interval(self, step: int) -> None:
        """Start timing afresh at ``step`` (after a stage switch or a minimization)."""
        self.last_step, self.last_time = step, time.perf_counter()

    def tick(self, step: int) -> float:
        """ns/day since the previous tick."""
        now = time.perf_counter()
        rate = (step - self.last_step) * self.dt_ps / 1000.0 / max(now - self.last_time, 1e-9) * 86400.0
        self.last_step, self.last_time = step, now
        if step > self.first_step:
            self.rates.append(rate)
        return rate

    def eta(self, step: int) -> str:
        recent = float(np.mean(self.rates[-20:])) if self.rates else 0.0
        if recent <= 0:
            return "--:--:--"
        seconds = (self.total_steps - step) * self.dt_ps / 1000.0 / recent * 86400.0
        return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 86400:.1f} d"

    def wall_s(self) -> float:
        """Wall seconds since this invocation started."""
        return time.perf_counter() - self.started

    def whole_run_ns_per_day(self, step: int) -> float | None:
        """Simulated ns per day of wall time over this whole invocation (setup included)."""
        wall = time.perf_counter() - self.started
        done = (step - self.first_step) * self.dt_ps / 1000.0
        return done / wall * 86400.0 if done > 0 and wall > 0 else None


def reset_thermo(path: Path, resume_step: int | None) -> None:
    """thermo.csv with its header and the rows up to ``resume_step`` (all rows dropped if None)."""
    rows: list[str] = []
    if resume_step is not None and path.exists():
        lines = path.read_text().splitlines()
        if lines and lines[0].split(",") == THERMO_COLUMNS:
            rows = [ln for ln in lines[1:] if ln and int(ln.split(",")[1]) <= resume_step]
    write_text_atomic(path, "\n".join([",".join(THERMO_COLUMNS)] + rows) + "\n")
