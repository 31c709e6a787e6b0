"""``solvmd md``: minimize -> NVT heating -> [anneal -> cool-down] -> NPT equilibration -> production.

The loop is OpenMM's ``Simulation.step`` with reporters (:mod:`solvmd.md.reporters`)
for thermo rows + progress, trajectory frames and checkpoints. Resumable: each stage
writes checksummed checkpoints (:mod:`solvmd.md.checkpoints`; the newest two kept) every
``checkpoint_interval_ps`` and at its end. A rerun loads the newest valid checkpoint,
cuts ``thermo.csv`` and the trajectory back to its step and continues, so the finished
run has exactly the frames of an uninterrupted one. ``md.json`` and ``final.xml`` are
written last: their presence means the run is complete.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import openmm
from openmm import app, unit

from solvmd import records
from solvmd.assembly.system import check_box, load_build, versions
from solvmd.errors import SimulationError, SolvmdError
from solvmd.io import atomic_path, folder_lock, write_text_atomic
from solvmd.log import get_logger, log_to
from solvmd.md.barostats import make_barostat
from solvmd.md.checkpoints import Checkpoint, latest_checkpoint, save_checkpoint
from solvmd.md.platforms import PlatformChoice, cpu_properties, locale_kept, select_platform
from solvmd.md.protocol import MDProtocol, check_timestep_masses
from solvmd.md.reporters import (THERMO_COLUMNS, CheckpointReporter, FrameReporter, RunClock, Stage,  # noqa: F401
                                 ThermoReporter, reset_thermo)
from solvmd.md.trajectory import TrajectoryWriter

LOG = get_logger("md")
AVOGADRO = unit.AVOGADRO_CONSTANT_NA.value_in_unit(unit.mole**-1)
STAGES = ("minimize", "heat", "anneal", "cool", "equilibrate", "production")


def plan(protocol: MDProtocol, temperature_K: float) -> list[Stage]:
    """Stages with global step ranges and temperature ramps (minimization takes no MD steps)."""
    p, T = protocol, temperature_K
    hot = p.anneal_K if p.anneal_K is not None else T
    lengths = [("heat", p.heat_ps, False, p.heat_start_K, T), ("anneal", p.anneal_ps, False, hot, hot),
               ("cool", p.cool_ps, False, hot, T), ("equilibrate", p.equilibrate_ps, True, T, T),
               ("production", p.production_ps, True, T, T)]
    stages, start = [Stage("minimize", 0, 0, False, T, T)], 0
    for name, ps, npt, t_from, t_to in lengths:
        if name in ("anneal", "cool") and p.anneal_K is None:
            continue
        stages.append(Stage(name, start, p.steps(ps), npt, t_from, t_to))
        start += p.steps(ps)
    return stages


def check_timestep(protocol: MDProtocol, system: openmm.System, temperature_K: float) -> None:
    """Refuse a timestep the build cannot take, or an anneal not above the run temperature."""
    check_timestep_masses(system, protocol.timestep_fs, "md.timestep_fs")
    if protocol.anneal_K is not None and protocol.anneal_K <= temperature_K:
        raise SolvmdError(f"md.anneal_K = {protocol.anneal_K} K must be above the run temperature "
                          f"{temperature_K} K (recipe temperature_K)")


class MDRun:
    """One resumable MD run of a finished build into ``out_dir``."""

    def __init__(self, build_dir: str | Path, out_dir: str | Path, protocol: MDProtocol, log=sys.stderr):
        self.build_dir, self.out = Path(build_dir), Path(out_dir)
        self.protocol = protocol
        self.log = log
        self.pdb, self.system, self.manifest = load_build(self.build_dir)
        self.temperature = float(self.manifest["temperature_K"])
        self.pressure = float(self.manifest.get("pressure_bar", 1.01325))
        check_timestep(protocol, self.system, self.temperature)
        self.dt_ps = protocol.timestep_fs / 1000.0
        self.stages = plan(protocol, self.temperature)
        self.total_steps = self.stages[-1].end
        masses = np.array([self.system.getParticleMass(i).value_in_unit(unit.dalton)
                           for i in range(self.system.getNumParticles())])
        self.mass_g = masses.sum() / AVOGADRO
        has_cmm = any(isinstance(f, openmm.CMMotionRemover) for f in self.system.getForces())
        self.dof = 3 * int((masses > 0).sum()) - self.system.getNumConstraints() - (3 if has_cmm else 0)
        self.choice: PlatformChoice | None = None  # chosen in run(), where its messages reach ``log``
        self.traj_path = self.out / records.traj_name(protocol.trajectory_format)
        self.writer: TrajectoryWriter | None = None

    # ------------------------------------------------------------------ setup
    @property
    def platform(self) -> openmm.Platform:
        return self.choice.platform

    @property
    def properties(self) -> dict[str, str]:
        return self.choice.properties

    def _choose_platform(self) -> PlatformChoice:
        """The platform (probed in a child process unless CPU/Reference), once per run."""
        if self.choice is None:
            p = self.protocol
            self.choice = select_platform(p.platform, p.precision, p.allow_cpu_fallback)
        return self.choice

    def _simulation(self, stage: Stage, on_cpu: bool = False) -> app.Simulation:
        """A Simulation of ``stage`` on the chosen platform (``on_cpu``: on the CPU platform)."""
        system = openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(self.system))
        if stage.npt:
            barostat = make_barostat(self.manifest.get("barostat"), self.pressure, self.temperature,
                                     self.protocol.barostat_interval_steps, self.protocol.seed)
            if barostat is not None:
                system.addForce(barostat)
        integrator = openmm.LangevinMiddleIntegrator(
            stage.t_from_K * unit.kelvin, self.protocol.friction_per_ps / unit.picosecond,
            self.protocol.timestep_fs * unit.femtosecond)
        integrator.setRandomNumberSeed(self.protocol.seed)
        if on_cpu:
            return app.Simulation(self.pdb.topology, system, integrator, openmm.Platform.getPlatformByName("CPU"),
                                  cpu_properties())
        with locale_kept():
            return app.Simulation(self.pdb.topology, system, integrator, self.platform, self.properties)

    def _check_folder(self) -> None:
        """Refuse a partial run of another protocol or system, or a foreign trajectory; then
        record this run's identity (records.claim_folder) and protocol."""
        p = self.protocol
        if self.traj_path.exists() and not TrajectoryWriter.belongs_to_solvmd(self.traj_path):
            raise SolvmdError(f"{self.traj_path} exists but was not written by solvmd md (no frame index); "
                              "move it away or choose another output folder")
        started = self.out / records.PROTOCOL_JSON
        if started.exists() and json.loads(started.read_text()) != p.model_dump(mode="json"):
            raise SolvmdError(f"{self.out} holds a partial run with a different protocol ({records.PROTOCOL_JSON}); "
                              "rerun with the same protocol to resume, or use another output folder")
        records.claim_folder(self.out, records.fingerprint(self.build_dir, p, step=records.MD))
        records.write_record(started, p.model_dump(mode="json"))

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        """Run, resume or skip (finished) the protocol; messages go to ``log`` and the ``solvmd.md`` logger."""
        with log_to(self.log), folder_lock(self.out, "solvmd md"):
            return self._run()

    def _run(self) -> dict:
        p = self.protocol
        self.out.mkdir(parents=True, exist_ok=True)
        done = self.out / records.MD_JSON
        if done.exists():
            records.read_md(self.out)  # a damaged md.json is an error naming the file and field
            info = json.loads(done.read_text())
            if info.get("protocol") == p.model_dump(mode="json"):
                records.check_identity(self.out, records.fingerprint(self.build_dir, p, step=records.MD))
                LOG.info(f"{self.out} is already complete; nothing to do")
                return info
            raise SolvmdError(f"{self.out} holds a finished run with a different protocol; "
                              "use another output folder or delete md.json to redo it")
        check_box(min(self.manifest["box_nm"]), self.manifest["cutoff_nm"])
        self._choose_platform()  # a bad platform, device or precision stops here, before the folder is claimed
        self._check_folder()
        chk = latest_checkpoint(self.out, [s.name for s in self.stages],
                                report=lambda msg: LOG.warning(f"checkpoint {msg}"))
        LOG.info(f"platform {self.platform.getName()} {self.properties}; {self.system.getNumParticles()} atoms; "
              f"timestep {p.timestep_fs} fs, hydrogen mass {self.manifest.get('hydrogen_mass_amu')} amu; "
              f"{'resuming from ' + chk.path.name if chk else 'fresh start'}")
        sim, stage_index = self._start(chk)
        reset_thermo(self.out / records.THERMO_CSV, None if chk is None else chk.step)
        self.clock = RunClock(self.total_steps, self.dt_ps, sim.currentStep)
        for stage in self.stages[stage_index:]:
            if stage.name == "minimize":
                continue
            if stage is not self.stages[stage_index]:
                sim = self._switch(sim, stage)
            self._run_stage(sim, stage, None if chk is None else chk.step)
        if self.writer is not None:
            self.writer.close()
        return self._finish(sim, None if chk is None else {"stage": chk.stage, "step": chk.step})

    def _start(self, chk: Checkpoint | None) -> tuple[app.Simulation, int]:
        """A simulation at the checkpoint (or minimized), and the index of its stage."""
        if chk is None:
            return self._minimize(self.stages[0]), 0
        index = next(k for k, s in enumerate(self.stages) if s.name == chk.stage)
        sim = self._simulation(self.stages[index])
        sim.context.loadCheckpoint(chk.payload)
        LOG.info(f"checkpoint {chk.path.name} at step {sim.currentStep}")
        return sim, index

    def _minimize(self, stage: Stage) -> app.Simulation:
        """Minimise (on the CPU platform when the chosen platform's minimiser failed its probe)."""
        on_cpu = self.choice.minimize_platform == "CPU"
        msim = self._simulation(stage, on_cpu=on_cpu)
        msim.context.setPositions(self.pdb.positions)
        e0 = msim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        msim.minimizeEnergy(maxIterations=self.protocol.minimize_max_iterations)
        e1 = msim.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        if not math.isfinite(e1):
            raise SimulationError(f"stage minimize: energy is {e1} after minimization; check the packing "
                                  "(packing.tolerance_A) and the force-field files")
        LOG.info(f"minimize{' (on the CPU platform)' if on_cpu else ''}: potential energy {e0:.4g} -> {e1:.4g} kJ/mol")
        sim = msim
        if on_cpu:
            sim = self._simulation(stage)
            sim.context.setPositions(msim.context.getState(getPositions=True).getPositions())
        sim.context.setVelocitiesToTemperature(self.protocol.heat_start_K * unit.kelvin, self.protocol.seed)
        save_checkpoint(self.out, stage.name, 0, sim.context.createCheckpoint())
        return sim

    def _switch(self, sim: app.Simulation, stage: Stage) -> app.Simulation:
        """Carry positions, velocities, box and step count into a simulation for ``stage``."""
        state = sim.context.getState(getPositions=True, getVelocities=True)
        new = self._simulation(stage)
        new.context.setPeriodicBoxVectors(*state.getPeriodicBoxVectors())
        new.context.setPositions(state.getPositions())
        new.context.setVelocities(state.getVelocities())
        new.context.setStepCount(sim.currentStep)
        return new

    def _reporters(self, stage: Stage, resume_step: int | None) -> list:
        p = self.protocol
        thermo = ThermoReporter(stage, p.steps(p.report_interval_ps), self.out / records.THERMO_CSV, self.clock,
                                self.dof, self.mass_g, self.dt_ps, self.system.getNumParticles(),
                                p.max_energy_kJ_mol_per_atom)
        reporters = [thermo]
        if stage.name == "production":
            reporters.append(FrameReporter(stage, p.steps(p.frame_interval_ps), self._writer(stage, resume_step)))
        return reporters + [CheckpointReporter(stage, p.steps(p.checkpoint_interval_ps), self.out)]

    def _writer(self, stage: Stage, resume_step: int | None) -> TrajectoryWriter:
        """The production trajectory (and its topology.pdb), cut back to ``resume_step``."""
        if self.writer is None:
            frame = self.protocol.steps(self.protocol.frame_interval_ps)
            resume = resume_step if resume_step is not None and resume_step >= stage.start else None
            if resume is None or not (self.out / "topology.pdb").exists():
                self._write_pdb(self.out / "topology.pdb", self._sim_state)
            self.writer = TrajectoryWriter(self.traj_path, self.pdb.topology, self.dt_ps,
                                           first_step=stage.start + frame, interval=frame, resume_step=resume)
        return self.writer

    def _write_pdb(self, path: Path, state: openmm.State) -> None:
        with atomic_path(path) as tmp, open(tmp, "w") as fh:
            top = self.pdb.topology
            top.setPeriodicBoxVectors(state.getPeriodicBoxVectors())
            app.PDBFile.writeFile(top, state.getPositions(), fh)

    def _run_stage(self, sim: app.Simulation, stage: Stage, resume_step: int | None) -> None:
        """Step through ``stage`` (in report-sized chunks on a temperature ramp)."""
        self._sim_state = sim.context.getState(getPositions=True)
        sim.reporters = self._reporters(stage, resume_step)
        self.clock.restart_interval(sim.currentStep)
        chunk = self.protocol.steps(self.protocol.report_interval_ps) if stage.t_from_K != stage.t_to_K else stage.steps
        while sim.currentStep < stage.end:
            n = min(chunk, stage.end - sim.currentStep)
            sim.integrator.setTemperature(stage.temperature_at(sim.currentStep + n) * unit.kelvin)
            try:
                sim.step(n)
            except openmm.OpenMMException as err:
                advice = ("the box is too small for the cutoff under NPT fluctuations: build a larger system "
                          "(size.salt_units / size.target_atoms) or lower forcefield.cutoff_nm"
                          if "twice the nonbonded cutoff" in str(err) else "Lower the timestep or equilibrate longer")
                raise SimulationError(f"stage {stage.name}: simulation failed before step {sim.currentStep + n}: "
                                      f"{err}. {advice}") from None

    def _finish(self, sim: app.Simulation, resumed_from: dict | None) -> dict:
        state = sim.context.getState(getPositions=True, getVelocities=True, getEnergy=True)
        write_text_atomic(self.out / records.FINAL_XML, openmm.XmlSerializer.serialize(state))
        self._write_pdb(self.out / records.FINAL_PDB, state)
        info = self._record(sim, resumed_from)
        records.validate_record(info, records.MDRecord, str(self.out / records.MD_JSON), "MD record")
        records.write_record(self.out / records.MD_JSON, info)
        LOG.info(f"done: {info['n_frames']} frames in {self.traj_path}; production density "
              f"{info['density_production_mean_g_cm3']} g/cm3 (estimate {info['density_estimate_g_cm3']:.4f}); "
              f"{info['ns_per_day']} ns/day over the whole run")
        return info

    def _record(self, sim: app.Simulation, resumed_from: dict | None) -> dict:
        """The md.json record of a finished run."""
        p, name = self.protocol, self.platform.getName()
        thermo = np.genfromtxt(self.out / records.THERMO_CSV, delimiter=",", names=True, dtype=None, encoding="utf-8")
        prod = np.atleast_1d(thermo["density_g_cm3"][np.atleast_1d(thermo["stage"]) == "production"])
        speed = self.clock.whole_run_ns_per_day(sim.currentStep)
        return {
            "platform": name,
            "platform_properties": self.properties,
            "platform_choice": self.choice.record(),
            "precision": self.properties.get("Precision", "single/double (CPU)" if name == "CPU" else "double"),
            "timestep_fs": p.timestep_fs,
            "hydrogen_mass_amu": self.manifest.get("hydrogen_mass_amu"),
            "mixing": self.manifest.get("mixing", "exact"),
            "correction_cutoff_nm": self.manifest.get("correction_cutoff_nm"),
            "stages": {s.name: {"start_step": s.start, "steps": s.steps, "npt": s.npt, "T_from_K": s.t_from_K,
                                "T_to_K": s.t_to_K} for s in self.stages},
            "steps_done": sim.currentStep,
            "frame_interval_ps": p.frame_interval_ps,
            "n_frames": len(TrajectoryWriter.indexed_frames(self.traj_path)),
            "trajectory": self.traj_path.name,
            "topology": "topology.pdb",
            "density_estimate_g_cm3": self.manifest.get("density_estimate_g_cm3"),
            "density_production_mean_g_cm3": float(prod.mean()) if len(prod) else None,
            "density_production_std_g_cm3": float(prod.std(ddof=1)) if len(prod) > 1 else None,
            "ns_per_day": None if speed is None else round(speed, 3),
            "ns_per_day_note": "simulated ns / wall time of this whole invocation (setup, minimization, output included)",
            "wall_time_s_this_invocation": round(self.clock.wall_s(), 2),
            "resumed_from": resumed_from,
            "temperature_K": self.temperature,
            "pressure_bar": self.pressure,
            "protocol": p.model_dump(mode="json"),
            "versions": versions(),
        }


def run_md(build_dir: str | Path, out_dir: str | Path, protocol: MDProtocol, log=sys.stderr) -> dict:
    """Run (or resume, or skip if complete) the MD protocol for a finished build."""
    return MDRun(build_dir, out_dir, protocol, log).run()
