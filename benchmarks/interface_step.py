"""Benchmark (not a test): one MD step of a frozen-sheet interface in each geometric-mixing form.

    python benchmarks/interface_step.py systems/demo_sac_li_fen4.yaml --forms split fast exact --threads 1

Each form is built from the same recipe (same packmol seed, so the same atoms and positions),
the split build is minimized, and every form starts from that state: a 4 fs
LangevinMiddleIntegrator step with the recipe's HMR, timed in ``--blocks`` alternating blocks of
``--steps`` steps (median kept), one CPU thread by default (as a PMF window runs). Also reports the
rms force difference of each form against ``exact`` on the mobile atoms. ``--platform CUDA`` (or
OpenCL) times the forms on a GPU (benchmarks/gpu_check.py; the exact form, a CustomNonbondedForce,
is how plain OpenMM would do geometric mixing); ``--density-estimate`` packs at the recipe's
ideal-mixing density instead of its bulk run's (a speed row needs no bulk run). Writes
``benchmarks/results/interface_step_<platform>.csv`` (merged by recipe and form).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import openmm as mm

from common import RESULTS, write_merged_table
from solvmd.assembly.interface import build_interface
from solvmd.assembly.system import load_build
from solvmd.md.platforms import choose_platform
from solvmd.recipe import load_interface_recipe

ROOT = Path(__file__).resolve().parent.parent


def _build(recipe: Path, form: str, workdir: Path, density_estimate: bool = False) -> Path:
    """The interface of ``recipe`` built with geometric-mixing form ``form`` (reused if built)."""
    rec = load_interface_recipe(recipe)
    bulk = rec.electrolyte
    ff = bulk.forcefield.model_copy(update={"mixing": form})
    rec = rec.model_copy(update={"electrolyte": bulk.model_copy(update={"forcefield": ff})})
    if density_estimate:
        rec = rec.model_copy(update={"density": rec.density.model_copy(update={"source": "estimate", "path": None})})
    out = workdir / f"{recipe.stem}_{form}"
    if not (out / "manifest.json").exists():
        build_interface(rec, out, log=io.StringIO())
    return out


def _context(build: Path, platform: str, threads: int) -> tuple[mm.Context, mm.Integrator]:
    """A 4 fs LangevinMiddle Context of the build on ``platform`` (CPU: ``threads`` threads)."""
    _, system, _ = load_build(build)
    integ = mm.LangevinMiddleIntegrator(298.15, 1.0, 0.004)
    if platform == "CPU":
        return mm.Context(system, integ, mm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)}), integ
    plat, props = choose_platform(platform)
    return mm.Context(system, integ, plat, props), integ


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe", type=Path)
    ap.add_argument("--forms", nargs="+", default=["split", "fast", "exact"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--platform", default="CPU", help="CPU (default), CUDA or OpenCL")
    ap.add_argument("--density-estimate", action="store_true",
                    help="pack at the recipe's ideal-mixing density estimate (no bulk run needed)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / "results" / "benchmarks" / "interface_step")
    args = ap.parse_args(argv)
    builds = {form: _build(args.recipe, form, args.workdir, args.density_estimate) for form in args.forms}
    runs = {form: _context(b, args.platform, args.threads) for form, b in builds.items()}
    # minimised on the CPU platform (the same start for every platform; OpenCL's minimiser
    # crashes on PoCL, docs/pocl_minimizer_crash.md)
    first = _context(builds[args.forms[0]], "CPU", args.threads)[0]
    first.setPositions(load_build(builds[args.forms[0]])[0].positions)
    mm.LocalEnergyMinimizer.minimize(first, 10.0, 500)
    state = first.getState(getPositions=True, getVelocities=True)
    forces = {}
    for form, (ctx, integ) in runs.items():
        ctx.setPositions(state.getPositions())
        ctx.setVelocitiesToTemperature(298.15, 1)
        forces[form] = ctx.getState(getForces=True).getForces(asNumpy=True)._value
        integ.step(10)
    frozen = range(*load_build(builds[args.forms[0]])[2]["frozen_atoms"])
    mobile = np.array([i for i in range(len(forces[args.forms[0]])) if i not in frozen])
    ms = {form: [] for form in runs}
    for _ in range(args.blocks):
        for form, (ctx, integ) in runs.items():
            t0 = time.perf_counter()
            integ.step(args.steps)
            ctx.getState(getEnergy=True)
            ms[form].append(1000.0 * (time.perf_counter() - t0) / args.steps)
    ref = forces.get("exact")
    rows = []
    for form in runs:
        err = None if ref is None else float(np.sqrt(((forces[form] - ref)[mobile] ** 2).sum(1).mean())
                                             / np.sqrt((ref[mobile] ** 2).sum(1).mean()))
        step_ms = float(np.median(ms[form]))
        rows.append({"key": f"{args.recipe.stem}/{form}", "recipe": args.recipe.stem, "form": form,
                     "n_atoms": len(forces[form]), "threads": args.threads if args.platform == "CPU" else "",
                     "ms_per_step": round(step_ms, 3 if step_ms < 1 else 2),
                     "ns_per_day_4fs": round(0.004 * 86400 / step_ms, 2),
                     "time_vs_first_form": round(step_ms / np.median(ms[args.forms[0]]), 3),
                     "rms_force_error_vs_exact": err})
    print(write_merged_table(rows, RESULTS, f"interface_step_{args.platform}", "key").to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
