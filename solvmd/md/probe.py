"""Probe a GPU platform in a subprocess before a run commits to it.

A platform counts as usable only if, in a child process, it runs the kernels a real run
needs on a small real system and its results agree with the CPU platform:

1. ``build``: a 400-atom Li-TFSI/DME box (split mixing, hydrogen mass 3 amu, HBonds
   constraints, PME, 0.8 nm cutoff) placed on a grid (no packmol), minimised on the CPU
   platform (which also gives the reference forces and the CPU speed);
2. ``context``: a Context on the platform (kernels compile here);
3. ``energy``: energy and forces at the CPU-minimised positions; the rms force
   difference must stay below ``FORCE_TOL_REL`` of the rms force;
4. ``steps``: ``STEPS`` LangevinMiddle steps of 4 fs with a finite energy (timed);
5. ``minimize``: ``MIN_ITERATIONS`` iterations of OpenMM's minimiser.

The child reports each stage as it starts and ends (``PROBE {json}`` lines on stdout), so a
segmentation fault (PoCL's kernel compiler miscompiles OpenMM 8.6's GPU minimiser on a
CPU device, see ``docs/pocl_minimizer_crash.md``) is attributed to its stage and the
stages before it still count. :func:`probe` runs the child once per platform and
properties per process and caches the result.

Run by hand: ``python -m solvmd.md.probe OpenCL '{"Precision": "mixed"}'``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

STAGES = ("build", "context", "energy", "steps", "minimize")
STEPS = 50
MIN_ITERATIONS = 20
TIMESTEP_FS = 4.0
FORCE_TOL_REL = 1e-2  # a mixed-precision GPU platform agrees with the CPU platform to ~1e-4
ENV_TIMEOUT = "SOLVMD_PROBE_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0  # a cold PoCL kernel compile on 2 busy cores takes ~30 s
_PREFIX = "PROBE "
_CACHE: dict[tuple, "ProbeResult"] = {}


@dataclass
class ProbeResult:
    """What the probe of one platform (with its properties) measured.

    Attributes:
        platform: OpenMM platform name.
        properties: the platform properties probed.
        ok: every stage passed.
        stages: numbers of each passed stage (``steps``: ``ms_per_step``; ``build``:
            ``n_atoms``, ``cpu_ms_per_step``; ``energy``: ``force_err_rel``; ...).
        failed_stage: the stage that failed or crashed (None when ``ok``).
        reason: why it failed, in words (None when ``ok``).
        wall_s: wall time of the child, s.
    """

    platform: str
    properties: dict[str, str]
    ok: bool
    stages: dict[str, dict] = field(default_factory=dict)
    failed_stage: str | None = None
    reason: str | None = None
    wall_s: float = 0.0

    @property
    def steps_ok(self) -> bool:
        """The platform steps MD correctly (whatever its minimiser did)."""
        return "steps" in self.stages

    @property
    def minimize_ok(self) -> bool:
        return "minimize" in self.stages

    @property
    def device_name(self) -> str | None:
        return self.stages.get("context", {}).get("device_name")

    def speed(self) -> str:
        """``3.10 ms/step (CPU platform 1.25 ms/step), 400 atoms`` or ''."""
        steps, build = self.stages.get("steps"), self.stages.get("build", {})
        if not steps:
            return ""
        return (f"{steps['ms_per_step']:.2f} ms/step (CPU platform {build['cpu_ms_per_step']:.2f} ms/step), "
                f"{build['n_atoms']} atoms, {TIMESTEP_FS:g} fs")

    def summary(self) -> str:
        """One line: passed with its numbers, or where and how it failed."""
        if self.ok:
            err = self.stages["energy"]["force_err_rel"]
            return f"passed in {self.wall_s:.0f} s: {self.speed()}; rms force error vs CPU {err:.1e}; minimiser ok"
        passed = [s for s in STAGES if s in self.stages]
        done = f" (passed: {', '.join(passed)}" + (f"; {self.speed()}" if self.steps_ok else "") + ")" if passed else ""
        return f"failed in stage {self.failed_stage}: {self.reason}{done}"

    def record(self) -> dict:
        """JSON-ready form (md.json)."""
        return asdict(self)


# --------------------------------------------------------------------------- the probe system


def probe_system(seed: int = 7):
    """(System, positions nm (N, 3) array, box edge nm) of the probe: 2 Li+, 2 TFSI-, 23 DME on a
    3 x 3 x 3 grid of 0.9 nm cells, randomly oriented; the default build settings (split mixing,
    HMR 3 amu: solvmd.forcefield_settings) with a 0.8 nm cutoff."""
    import numpy as np

    from solvmd import species
    from solvmd.assembly.system import build_topology
    from solvmd.forcefield import create_system

    counts, spacing, n = {"Li": 2, "TFSI": 2, "DME": 23}, 0.9, 3
    box = spacing * n
    topology = build_topology(counts, (box, box, box))
    rng = np.random.default_rng(seed)
    xyz, k = [], 0
    for name, count in counts.items():
        for _ in range(count):
            cell = np.array([k % n, (k // n) % n, k // (n * n)]) * spacing + spacing / 2
            mol = species.get(name).coordinates(seed) / 10.0
            rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
            xyz.append((mol - mol.mean(axis=0)) @ rot.T + cell)
            k += 1
    system = create_system(topology, list(counts), cutoff_nm=0.8)
    return system, np.vstack(xyz), box


# --------------------------------------------------------------------------- child process


def _emit(**data) -> None:
    print(_PREFIX + json.dumps(data), flush=True)


def _cpu_properties() -> dict[str, str]:
    threads = os.environ.get("SOLVMD_CPU_THREADS")
    return {"Threads": threads} if threads else {}


def _context(system, platform: str, props: dict[str, str], box: float):
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond,
                                                 TIMESTEP_FS * unit.femtosecond)
    integrator.setRandomNumberSeed(11)
    ctx = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform), props)
    ctx.setPeriodicBoxVectors(openmm.Vec3(box, 0, 0), openmm.Vec3(0, box, 0), openmm.Vec3(0, 0, box))
    return ctx


def _forces(ctx):
    import numpy as np
    from openmm import unit

    state = ctx.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    return energy, np.asarray(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def _timed_steps(ctx, n: int) -> float:
    """ms per step over ``n`` steps (after a 10-step warm-up); raises on a non-finite energy."""
    ctx.getIntegrator().step(10)
    ctx.getState(getEnergy=True)
    start = time.perf_counter()
    ctx.getIntegrator().step(n)
    energy, _ = _forces(ctx)
    if not math.isfinite(energy):
        raise RuntimeError(f"potential energy {energy} after {n} steps")
    return 1000.0 * (time.perf_counter() - start) / n


def _stage_build() -> tuple:
    import numpy as np
    import openmm

    system, xyz, box = probe_system()
    cpu = _context(system, "CPU", _cpu_properties(), box)
    cpu.setPositions(xyz)
    openmm.LocalEnergyMinimizer.minimize(cpu, 10.0, 200)
    pos = cpu.getState(getPositions=True).getPositions(asNumpy=True)
    energy, forces = _forces(cpu)
    cpu.setVelocitiesToTemperature(300.0, 5)
    cpu_ms = _timed_steps(cpu, STEPS)
    _emit(stage="build", n_atoms=int(system.getNumParticles()), cpu_energy_kJ_mol=energy,
          cpu_ms_per_step=round(cpu_ms, 3))
    return system, pos, box, energy, np.asarray(forces)


def _stage_context(system, platform: str, props: dict, box: float):
    ctx = _context(system, platform, props, box)
    names = ctx.getPlatform().getPropertyNames()
    device = ctx.getPlatform().getPropertyValue(ctx, "DeviceName") if "DeviceName" in names else None
    _emit(stage="context", device_name=device)
    return ctx


def _stage_energy(ctx, pos, cpu_energy: float, cpu_forces) -> None:
    import numpy as np

    ctx.setPositions(pos)
    energy, forces = _forces(ctx)
    rms = float(np.sqrt((cpu_forces ** 2).sum(axis=1).mean()))
    err = float(np.sqrt(((forces - cpu_forces) ** 2).sum(axis=1).mean())) / rms
    _emit(stage="energy", energy_kJ_mol=energy, cpu_energy_kJ_mol=cpu_energy, force_err_rel=err)
    if not (err < FORCE_TOL_REL):
        raise RuntimeError(f"forces differ from the CPU platform's by {err:.2g} of the rms force "
                           f"(tolerance {FORCE_TOL_REL:g})")


def _stage_steps(ctx) -> None:
    ctx.setVelocitiesToTemperature(300.0, 5)
    _emit(stage="steps", ms_per_step=round(_timed_steps(ctx, STEPS), 3), steps=STEPS)


def _stage_minimize(ctx) -> None:
    import openmm

    before, _ = _forces(ctx)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, MIN_ITERATIONS)
    after, _ = _forces(ctx)
    if not math.isfinite(after):
        raise RuntimeError(f"energy {after} after minimisation")
    _emit(stage="minimize", energy_before_kJ_mol=before, energy_after_kJ_mol=after)


def child_main(platform: str, props: dict[str, str]) -> int:
    """The probe's child: run the stages in order, reporting each; exit status 1 on an error."""
    stage = "build"
    try:
        _emit(begin="build")
        system, pos, box, cpu_energy, cpu_forces = _stage_build()
        stage = "context"
        _emit(begin=stage)
        ctx = _stage_context(system, platform, props, box)
        for stage, run in (("energy", lambda: _stage_energy(ctx, pos, cpu_energy, cpu_forces)),
                           ("steps", lambda: _stage_steps(ctx)), ("minimize", lambda: _stage_minimize(ctx))):
            _emit(begin=stage)
            run()
    except Exception as err:  # noqa: BLE001 - every failure is reported to the parent
        _emit(stage=stage, error=f"{type(err).__name__}: {err}".strip())
        return 1
    return 0


# --------------------------------------------------------------------------- parent side


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def parse_child(platform: str, props: dict[str, str], stdout: str, returncode: int | None,
                timeout_s: float | None = None, wall_s: float = 0.0, stderr: str = "") -> ProbeResult:
    """A :class:`ProbeResult` from the child's ``PROBE`` lines and exit status (None: timed out)."""
    stages, begun, error = {}, None, None
    for line in stdout.splitlines():
        if not line.startswith(_PREFIX):
            continue
        data = json.loads(line[len(_PREFIX):])
        if "begin" in data:
            begun = data["begin"]
        elif "error" in data:
            error = data["error"]
        else:
            stages[data.pop("stage")] = data
    ok = returncode == 0 and all(s in stages for s in STAGES)
    if ok:
        return ProbeResult(platform, props, True, stages, wall_s=wall_s)
    if returncode is None:
        reason = f"timed out after {timeout_s:g} s ({ENV_TIMEOUT})"
    elif returncode < 0:
        reason = f"the process crashed ({_signal_name(returncode)})"
    elif error:
        reason = error
    else:
        tail = stderr.strip().splitlines()[-1:] or ["no output"]
        reason = f"exit status {returncode}: {tail[0][:300]}"
    failed = begun if begun and begun not in stages else next((s for s in STAGES if s not in stages), None)
    return ProbeResult(platform, props, False, stages, failed, reason, wall_s)


def _timeout_s() -> float:
    try:
        return float(os.environ.get(ENV_TIMEOUT, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def run_child(platform: str, props: dict[str, str], command: list[str] | None = None,
              timeout_s: float | None = None) -> ProbeResult:
    """Run the probe child (``command`` replaces it, for tests) and read its result; never raises."""
    timeout_s = _timeout_s() if timeout_s is None else timeout_s
    command = command or [sys.executable, "-m", "solvmd.md.probe", platform, json.dumps(props)]
    start = time.monotonic()
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        stdout, stderr, code = out.stdout, out.stderr, out.returncode
    except subprocess.TimeoutExpired as err:
        stdout = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        stderr, code = "", None
    return parse_child(platform, props, stdout, code, timeout_s, round(time.monotonic() - start, 1), stderr)


def probe(platform: str, props: dict[str, str]) -> ProbeResult:
    """The probe result of ``platform`` with ``props``: run once per process, then cached."""
    key = (platform, tuple(sorted(props.items())))
    if key not in _CACHE:
        _CACHE[key] = run_child(platform, dict(props))
    return _CACHE[key]


def clear_cache() -> None:
    """Forget every probe result of this process (tests)."""
    _CACHE.clear()


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}))
