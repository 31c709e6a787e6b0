"""``solvmd md``: minimize -> NVT heating -> NPT equilibration -> NPT production.

Resumable: each stage writes ``<stage>.chk`` (OpenMM checkpoint, atomic) every
``checkpoint_interval_ps`` and at its end. A rerun loads the latest checkpoint, cuts
``thermo.csv`` and the trajectory back to the checkpoint's step and continues, so the
finished run has exactly the frames of an uninterrupted one. ``md.json`` and
``final.xml`` are written last: their presence means the run is complete.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

from solvmd.build.interface import make_barostat
from solvmd.build.system import check_box, load_build, versions
from solvmd.errors import SimulationError, SolvmdError
from solvmd.io import atomic_path, write_json_atomic, write_text_atomic
from solvmd.md.platforms import choose_platform
from solvmd.md.protocol import MDProtocol
from solvmd.md.trajectory import TrajectoryWriter

AVOGADRO = 6.02214076e23
STAGES = ("minimize", "heat", "equilibrate", "production")
THERMO_COLUMNS = ["stage", "step", "time_ps", "T_K", "V_nm3", "density_g_cm3", "Epot_kJ_mol", "Ekin_kJ_mol",
                  "ns_per_day"]


@dataclass(frozen=True)
class Stage:
    name: str
    start: int  # global step at which the stage begins
    steps: int
    npt: bool

    @property
    def end(self) -> int:
        return self.start + self.steps


def plan(protocol: MDProtocol) -> list[Stage]:
    """Stages with global step ranges (minimization takes no MD steps)."""
    n_heat, n_eq, n_prod = (protocol.steps(x) for x in (protocol.heat_ps, protocol.equilibrate_ps,
                                                          protocol.production_ps))
    return [
        Stage("minimize", 0, 0, False),
        Stage("heat", 0, n_heat, False),
        Stage("equilibrate", n_heat, n_eq, True),
        Stage("production", n_heat + n_eq, n_prod, True),
    ]


class ThermoLog:
    """thermo.csv: one row per report, appended and flushed; cut back on resume."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        rows: list[str] = []
        if resume_step is not None and path.exists():
            lines = path.read_text().splitlines()
            if lines and lines[0].split(",") == THERMO_COLUMNS:
                rows = [ln for ln in lines[1:] if ln and int(ln.split(",")[1]) <= resume_step]
        write_text_atomic(path, "\n".join([",".join(THERMO_COLUMNS)] + rows) + "\n")

    def append(self, row: dict) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([row[c] for c in THERMO_COLUMNS])
        with open(self.path, "a") as fh:
            fh.write(buf.getvalue())


class MDRun:
    """One resumable MD run of a finished build into ``out_dir``."""

    def __init__(self, build_dir: str | Path, out_dir: str | Path, protocol: MDProtocol, log=sys.stderr):
        self.build_dir, self.out = Path(build_dir), Path(out_dir)
        self.protocol = protocol
        self.log = log
        self.pdb, self.system, self.manifest = load_build(self.build_dir)
        self.temperature = float(self.manifest["temperature_K"])
        self.pressure = float(self.manifest.get("pressure_bar", 1.01325))
        self.dt_ps = protocol.timestep_fs / 1000.0
        self.stages = plan(protocol)
        self.total_steps = self.stages[-1].end
        masses = np.array([self.system.getParticleMass(i).value_in_unit(unit.dalton)
                           for i in range(self.system.getNumParticles())])
        self.mass_g = masses.sum() / AVOGADRO
        n_constraints = self.system.getNumConstraints()
        has_cmm = any(isinstance(f, openmm.CMMotionRemover) for f in self.system.getForces())
        self.dof = 3 * int((masses > 0).sum()) - n_constraints - (3 if has_cmm else 0)
        self.platform, self.properties = choose_platform(protocol.platform, protocol.precision,
                                                          protocol.allow_cpu_fallback)
        self.traj_path = self.out / f"traj.{protocol.trajectory_format}"
        self.rates: list[float] = []
        self.started = time.time()

    # ------------------------------------------------------------------ setup
    def _simulation(self, stage: Stage) -> app.Simulation:
        system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(self.system))
        if stage.npt:
            barostat = make_barostat(self.manifest.get("barostat"), self.pressure, self.temperature,
                                     self.protocol.barostat_interval_steps, self.protocol.seed)
            if barostat is not None:
                system.addForce(barostat)
        integrator = openmm.LangevinMiddleIntegrator(
            self.temperature * unit.kelvin, self.protocol.friction_per_ps / unit.picosecond,
            self.protocol.timestep_fs * unit.femtosecond)
        integrator.setRandomNumberSeed(self.protocol.seed)
        return app.Simulation(self.pdb.topology, system, integrator, self.platform, self.properties)

    def _checkpoint_path(self, stage: Stage) -> Path:
        return self.out / f"{stage.name}.chk"

    def _save_checkpoint(self, sim: app.Simulation, stage: Stage) -> None:
        with atomic_path(self._checkpoint_path(stage)) as tmp:
            sim.saveCheckpoint(str(tmp))

    def _latest_checkpoint(self) -> Stage | None:
        found = [s for s in self.stages if self._checkpoint_path(s).exists()]
        return found[-1] if found else None

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        p = self.protocol
        self.out.mkdir(parents=True, exist_ok=True)
        done = self.out / "md.json"
        if done.exists():
            info = json.loads(done.read_text())
            if info.get("protocol") == p.model_dump(mode="json"):
                print(f"[md] {self.out} is already complete; nothing to do", file=self.log)
                return info
            raise SolvmdError(f"{self.out} holds a finished run with a different protocol; "
                              "use another output folder or delete md.json to redo it")
        if self.traj_path.exists() and not TrajectoryWriter.belongs_to_solvmd(self.traj_path):
            raise SolvmdError(f"{self.traj_path} exists but was not written by solvmd md (no frame index); "
                              "move it away or choose another output folder")
        check_box(min(self.manifest["box_nm"]), self.manifest["cutoff_nm"])
        started = self.out / "protocol.json"
        if started.exists() and json.loads(started.read_text()) != p.model_dump(mode="json"):
            raise SolvmdError(f"{self.out} holds a partial run with a different protocol (protocol.json); "
                              "rerun with the same protocol to resume, or use another output folder")
        write_json_atomic(started, p.model_dump(mode="json"))

        resume_stage = self._latest_checkpoint()
        print(f"[md] platform {self.platform.getName()} {self.properties}; {self.system.getNumParticles()} atoms; "
              f"{'resuming from ' + resume_stage.name + '.chk' if resume_stage else 'fresh start'}", file=self.log)
        sim = None
        resume_step = None
        if resume_stage is not None:
            sim = self._simulation(resume_stage)
            sim.loadCheckpoint(str(self._checkpoint_path(resume_stage)))
            resume_step = sim.currentStep
            print(f"[md] checkpoint {resume_stage.name}.chk at step {resume_step}", file=self.log)
        self.thermo = ThermoLog(self.out / "thermo.csv", resume_step)
        self.writer: TrajectoryWriter | None = None
        resumed_from = None if resume_stage is None else {"stage": resume_stage.name, "step": resume_step}

        start_index = 0 if resume_stage is None else STAGES.index(resume_stage.name)
        sim_stage = resume_stage
        for stage in self.stages[start_index:]:
            if stage.name == "minimize":
                if sim is None:
                    sim, sim_stage = self._minimize(stage), stage
                continue
            if sim_stage is not stage:
                sim, sim_stage = self._switch(sim, stage), stage
            self._run_stage(sim, stage, resume_step)
        if self.writer is not None:
            self.writer.close()
        return self._finish(sim, resumed_from)

    def _minimize(self, stage: Stage) -> app.Simulation:
        sim = self._simulation(stage)
        sim.context.setPositions(self.pdb.positions)
        e0 = sim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        sim.minimizeEnergy(maxIterations=self.protocol.minimize_max_iterations)
        e1 = sim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        if not math.isfinite(e1):
            raise SimulationError(f"stage minimize: energy is {e1} after minimization; check the packing "
                                  "(packing.tolerance_A) and the force-field files")
        print(f"[minimize] potential energy {e0:.4g} -> {e1:.4g} kJ/mol", file=self.log)
        sim.context.setVelocitiesToTemperature(self.protocol.heat_start_K * unit.kelvin, self.protocol.seed)
        self._save_checkpoint(sim, stage)
        return sim

    def _switch(self, sim: app.Simulation, stage: Stage) -> app.Simulation:
        """Carry positions, velocities, box and step count into a simulation for ``stage``."""
        state = sim.context.getState(getPositions=True, getVelocities=True)
        step = sim.currentStep
        new = self._simulation(stage)
        new.context.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
        new.context.setPositions(state.getPositions())
        new.context.setVelocities(state.getVelocities())
        new.context.setStepCount(step)
        return new

    def _temperature_at(self, stage: Stage, step: int) -> float:
        if stage.name != "heat" or stage.steps == 0:
            return self.temperature
        frac = min(1.0, (step - stage.start) / stage.steps)
        return self.protocol.heat_start_K + (self.temperature - self.protocol.heat_start_K) * frac

    def _run_stage(self, sim: app.Simulation, stage: Stage, resume_step: int | None) -> None:
        p = self.protocol
        report, frame, chk = p.steps(p.report_interval_ps), p.steps(p.frame_interval_ps), p.steps(p.checkpoint_interval_ps)
        base = math.gcd(report, frame) if stage.name == "production" else report
        if stage.name == "production" and self.writer is None:
            topo = self.out / "topology.pdb"
            if not topo.exists() or sim.currentStep == stage.start:
                st = sim.context.getState(getPositions=True)
                with atomic_path(topo) as tmp, open(tmp, "w") as fh:
                    top = self.pdb.topology
                    top.setPeriodicBoxVectors(st.getPeriodicBoxVectors())
                    app.PDBFile.writeFile(top, st.getPositions(), fh)
            self.writer = TrajectoryWriter(self.traj_path, self.pdb.topology, self.dt_ps,
                                           first_step=stage.start + frame, interval=frame,
                                           resume_step=resume_step if resume_step and resume_step >= stage.start else None)
        step = sim.currentStep
        while step < stage.end:
            n = min(base - (step - stage.start) % base, stage.end - step)
            sim.integrator.setTemperature(self._temperature_at(stage, step + n) * unit.kelvin)
            t0 = time.perf_counter()
            try:
                sim.step(n)
            except openmm.OpenMMException as err:
                raise SimulationError(f"stage {stage.name}: simulation failed between steps {step} and {step + n}: "
                                      f"{err}. Lower the timestep or equilibrate longer") from None
            wall = time.perf_counter() - t0
            step = sim.currentStep
            rate = n * self.dt_ps / 1000.0 / max(wall, 1e-9) * 86400.0
            self.rates.append(rate)
            rel = step - stage.start
            if rel % report == 0 or step == stage.end:
                self._report(sim, stage, step, rate)
            if stage.name == "production" and rel % frame == 0:
                st = sim.context.getState(getPositions=True)
                self.writer.write(step, st.getPositions(asNumpy=True).value_in_unit(unit.nanometer),
                                  st.getPeriodicBoxVectors())
            if rel % chk == 0 or step == stage.end:
                self._save_checkpoint(sim, stage)

    def _report(self, sim: app.Simulation, stage: Stage, step: int, rate: float) -> None:
        st = sim.context.getState(getEnergy=True)
        epot = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        ekin = st.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        n = self.system.getNumParticles()
        if not math.isfinite(epot) or abs(epot) / n > self.protocol.max_energy_kJ_mol_per_atom:
            raise SimulationError(f"stage {stage.name}, step {step}: potential energy {epot:.4g} kJ/mol is "
                                  "not finite or exploding; lower the timestep, minimize longer or check the packing")
        box = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        volume = float(np.linalg.det(box))
        temp = 2.0 * ekin / (self.dof * 0.00831446261815324)
        self.thermo.append({
            "stage": stage.name, "step": step, "time_ps": round(step * self.dt_ps, 6), "T_K": round(temp, 3),
            "V_nm3": round(volume, 5), "density_g_cm3": round(self.mass_g / (volume * 1e-21), 5),
            "Epot_kJ_mol": round(epot, 3), "Ekin_kJ_mol": round(ekin, 3), "ns_per_day": round(rate, 3),
        })
        recent = float(np.mean(self.rates[-20:]))
        eta_s = (self.total_steps - step) * self.dt_ps / 1000.0 / max(recent, 1e-9) * 86400.0
        print(f"[{stage.name}] step {step}/{self.total_steps}  {step * self.dt_ps:.1f}/{self.total_steps * self.dt_ps:.1f} ps"
              f"  T {temp:.1f} K  rho {self.mass_g / (volume * 1e-21):.4f} g/cm3  {recent:.2f} ns/day"
              f"  ETA {time.strftime('%H:%M:%S', time.gmtime(eta_s))}", file=self.log, flush=True)

    def _finish(self, sim: app.Simulation, resumed_from: dict | None) -> dict:
        p = self.protocol
        state = sim.context.getState(getPositions=True, getVelocities=True, getEnergy=True)
        write_text_atomic(self.out / "final.xml", openmm.XmlSerializer.serialize(state))
        with atomic_path(self.out / "final.pdb") as tmp, open(tmp, "w") as fh:
            top = self.pdb.topology
            top.setPeriodicBoxVectors(state.getPeriodicBoxVectors())
            app.PDBFile.writeFile(top, state.getPositions(), fh)
        rows = list(csv.DictReader(open(self.out / "thermo.csv")))
        prod = np.array([float(r["density_g_cm3"]) for r in rows if r["stage"] == "production"])
        n_frames = len(self.writer.frames()) if self.writer else 0
        info = {
            "platform": self.platform.getName(),
            "platform_properties": self.properties,
            "precision": self.properties.get("Precision", "single/double (CPU)" if self.platform.getName() == "CPU" else "double"),
            "timestep_fs": p.timestep_fs,
            "stages": {s.name: {"start_step": s.start, "steps": s.steps, "npt": s.npt} for s in self.stages},
            "steps_done": sim.currentStep,
            "frame_interval_ps": p.frame_interval_ps,
            "n_frames": n_frames,
            "trajectory": self.traj_path.name,
            "topology": "topology.pdb",
            "density_estimate_g_cm3": self.manifest.get("density_estimate_g_cm3"),
            "density_production_mean_g_cm3": float(prod.mean()) if len(prod) else None,
            "density_production_std_g_cm3": float(prod.std(ddof=1)) if len(prod) > 1 else None,
            "ns_per_day": float(np.median(self.rates)) if self.rates else None,
            "wall_time_s_this_invocation": round(time.time() - self.started, 2),
            "resumed_from": resumed_from,
            "temperature_K": self.temperature,
            "pressure_bar": self.pressure,
            "protocol": p.model_dump(mode="json"),
            "versions": versions(),
        }
        write_json_atomic(self.out / "md.json", info)
        print(f"[md] done: {n_frames} frames in {self.traj_path}; production density "
              f"{info['density_production_mean_g_cm3']} g/cm3 (estimate {info['density_estimate_g_cm3']:.4f})",
              file=self.log)
        return info


def run_md(build_dir: str | Path, out_dir: str | Path, protocol: MDProtocol, log=sys.stderr) -> dict:
    """Run (or resume, or skip if complete) the MD protocol for a finished build."""
    return MDRun(build_dir, out_dir, protocol, log).run()
