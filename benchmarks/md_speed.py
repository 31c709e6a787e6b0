"""MD speed: solvmd's OPLS forms against stock OpenMM, side by side on the same box.

    SOLVMD_CPU_THREADS=2 python benchmarks/md_speed.py --salt-units 12 134 --steps 200 --blocks 3 --whole-run-ps 8

Rows, each a Context on the same topology and minimized positions, same PME, cutoff,
HBonds constraints and LangevinMiddleIntegrator, timed in alternating blocks so machine
load affects all alike:

- ``stock_LB_2fs``: stock OpenMM (Lorentz-Berthelot in the NonbondedForce), 2 fs: the baseline
- ``stock_LB_HMR_4fs``: the same with hydrogen mass 3.0 amu and 4 fs
- ``solvmd_exact_2fs``: exact geometric mixing (CustomNonbondedForce, full cutoff), 2 fs
- ``solvmd_split_2fs``: the same physics in the split form (two NonbondedForces), 2 fs: the cost
  of exact geometric mixing alone
- ``solvmd_fast_HMR_4fs``: the previous default (LB + geometric correction inside 0.5 nm)
- ``solvmd_default``: solvmd's defaults (split mixing, HMR 3.0 amu, 4 fs)

ns/day and the ratio to ``stock_LB_2fs`` measured in the same run are written to
``benchmarks/results/md_speed_<platform>.csv`` (merged: rows of other box sizes are kept). With ``--whole-run-ps`` it also runs
``solvmd md`` end to end on the demo box with the default protocol scaled to that length
and reports md.json's whole-run ns/day (setup, minimization, output included) against
the stock 2 fs row. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import openmm
from openmm import app, unit

from common import RESULTS, write_merged_table
from solvmd.assembly.system import build_system
from solvmd.forcefield import create_system
from solvmd.md.engine import run_md
from solvmd.md.platforms import choose_platform
from solvmd.md.protocol import MDProtocol
from solvmd.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
SPECIES = ["Li", "TFSI", "DOL", "DME"]
NATURAL = dict(hydrogen_mass_amu=None)  # natural masses (the default is HMR: solvmd.forcefield_settings)
VARIANTS = {  # name: (create_system keyword arguments beyond the defaults, timestep fs)
    "stock_LB_2fs": (dict(combining_rule="lorentz-berthelot", **NATURAL), 2.0),
    "stock_LB_HMR_4fs": (dict(combining_rule="lorentz-berthelot", hydrogen_mass_amu=3.0), 4.0),
    "solvmd_exact_2fs": (dict(mixing="exact", **NATURAL), 2.0),
    "solvmd_split_2fs": (dict(mixing="split", **NATURAL), 2.0),
    "solvmd_fast_HMR_4fs": (dict(mixing="fast", correction_cutoff_nm=0.5, hydrogen_mass_amu=3.0), 4.0),
    "solvmd_default": (dict(), 4.0),  # create_system's defaults = a recipe's defaults (split, HMR 3.0 amu)
}


def _context(pdb, kwargs: dict, dt_fs: float, platform, props, positions=None):
    """A Context of the variant at ``positions``; without them, at the packed positions minimized."""
    system = create_system(pdb.topology, SPECIES, **kwargs)
    system.addForce(openmm.MonteCarloBarostat(1 * unit.bar, 298.15 * unit.kelvin, 25))
    integrator = openmm.LangevinMiddleIntegrator(298.15 * unit.kelvin, 1 / unit.picosecond, dt_fs * unit.femtosecond)
    ctx = openmm.Context(system, integrator, platform, props)
    ctx.setPositions(pdb.positions if positions is None else positions)
    if positions is None:
        openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 500)
    ctx.setVelocitiesToTemperature(298.15 * unit.kelvin, 1)
    integrator.step(20)  # warm-up
    return ctx, integrator


def _build(units: int, workdir: Path) -> Path:
    base = load_recipe(ROOT / "systems" / "li_tfsi_dol_dme.yaml")
    recipe = base.model_copy(update={"name": f"speed_{units}", "size": base.size.model_copy(update={"salt_units": units})})
    work = workdir / recipe.name
    if not (work / "manifest.json").exists():
        build_system(recipe, work)
    return work


def cutoff_variants(cutoffs: list[float]) -> dict:
    """The fast form with other correction cutoffs (nm): on the CPU platform the correction's
    cost barely follows its cutoff, because OpenMM's CPU platform walks one shared neighbour list
    built at the longest cutoff (see solvmd/mixing.py CORRECTION_GROUP)."""
    kw, dt = VARIANTS["solvmd_fast_HMR_4fs"]
    return {f"solvmd_fast_rc{c:g}": ({**kw, "correction_cutoff_nm": c}, dt) for c in cutoffs}


def time_variants(pdb, platform, props, steps: int, blocks: int, variants: dict = VARIANTS) -> dict[str, float]:
    """ns/day per variant, alternating blocks of ``steps`` steps, all from the positions the
    stock system minimized to (one minimization: on a 20,000-atom box the exact form's took minutes)."""
    stock_kw, stock_dt = VARIANTS["stock_LB_2fs"]
    ctx, _ = _context(pdb, stock_kw, stock_dt, platform, props)
    start = ctx.getState(getPositions=True).getPositions()
    runs = {name: (_context(pdb, kw, dt, platform, props, start), dt) for name, (kw, dt) in variants.items()}
    seconds = dict.fromkeys(runs, 0.0)
    for _ in range(blocks):
        for name, ((ctx, integ), _) in runs.items():
            ctx.getState(getEnergy=True)
            t0 = time.perf_counter()
            integ.step(steps)
            ctx.getState(getEnergy=True)  # synchronize (GPU)
            seconds[name] += time.perf_counter() - t0
    return {name: steps * blocks * dt * 1e-6 / seconds[name] * 86400 for name, (_, dt) in runs.items()}


def whole_run(build: Path, ps: float, platform_name: str, workdir: Path) -> dict:
    """md.json of ``solvmd md`` with the default protocol, stages scaled to ``ps`` in total."""
    out = workdir / f"whole_run_{build.name}_{int(time.time())}"
    protocol = MDProtocol(heat_ps=0.1 * ps, equilibrate_ps=0.2 * ps, production_ps=0.7 * ps, report_interval_ps=0.4,
                          frame_interval_ps=0.4, checkpoint_interval_ps=0.4 * max(1, round(ps / 4)),
                          platform=platform_name)
    return run_md(build, out, protocol)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--salt-units", type=int, nargs="+", default=[12, 134],
                    help="sizes of 1 M LiTFSI DOL/DME (12 = demo box, 1790 atoms; 134 ~ 20,000 atoms)")
    ap.add_argument("--steps", type=int, default=200, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--platform", default="auto")
    ap.add_argument("--whole-run-ps", type=float, default=0.0, help="also time `solvmd md` end to end (ps)")
    ap.add_argument("--correction-cutoffs", type=float, nargs="*", default=[],
                    help="extra rows: the fast form with these correction cutoffs (nm)")
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "md_speed"))
    args = ap.parse_args(argv)
    platform, props = choose_platform(args.platform)
    rows = []
    for units in args.salt_units:
        build = _build(units, Path(args.workdir))
        pdb = app.PDBFile(str(build / "system.pdb"))
        speeds = time_variants(pdb, platform, props, args.steps, args.blocks,
                               {**VARIANTS, **cutoff_variants(args.correction_cutoffs)})
        for name, speed in speeds.items():
            rows.append({"box": f"1 M LiTFSI DOL/DME", "n_atoms": pdb.topology.getNumAtoms(), "variant": name,
                         "platform": platform.getName(), "threads": props.get("Threads", "default"),
                         "ns_per_day": round(speed, 3), "ratio_to_stock_LB_2fs": round(speed / speeds["stock_LB_2fs"], 3)})
            print(rows[-1], file=sys.stderr, flush=True)
        if args.whole_run_ps > 0:
            info = whole_run(build, args.whole_run_ps, platform.getName(), Path(args.workdir))
            rows.append({"box": "1 M LiTFSI DOL/DME", "n_atoms": pdb.topology.getNumAtoms(),
                         "variant": f"solvmd md whole run ({args.whole_run_ps} ps, md.json)",
                         "platform": platform.getName(), "threads": props.get("Threads", "default"), "ns_per_day": info["ns_per_day"],
                         "ratio_to_stock_LB_2fs": round(info["ns_per_day"] / speeds["stock_LB_2fs"], 3)})
            print(rows[-1], file=sys.stderr, flush=True)
    for row in rows:
        row["key"] = f"{row['n_atoms']}/{row['variant']}"
    table = write_merged_table(rows, RESULTS, f"md_speed_{platform.getName()}", "key")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
