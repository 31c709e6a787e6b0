"""MD speed: ns/day with OPLS geometric mixing (solvmd) vs stock OpenMM Lorentz-Berthelot.

    python benchmarks/md_speed.py --salt-units 12 134 --steps 500

Same topology, same positions, same PME/cutoff/constraints/integrator; the only
difference is where Lennard-Jones lives: solvmd's CustomNonbondedForce with per-particle
geometric factors, or the stock NonbondedForce (Lorentz-Berthelot). The two are timed
in alternating blocks so machine load affects both alike. Writes
benchmarks/results/md_speed.csv. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import openmm
import pandas as pd
from openmm import app, unit

from solvmd.build.system import build_system
from solvmd.forcefield import create_system
from solvmd.md.platforms import choose_platform
from solvmd.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent


def _context(topology, species, rule, positions, platform, props):
    system = create_system(topology, species, combining_rule=rule)
    system.addForce(openmm.MonteCarloBarostat(1 * unit.bar, 298.15 * unit.kelvin, 25))
    integrator = openmm.LangevinMiddleIntegrator(298.15 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    ctx = openmm.Context(system, integrator, platform, props)
    ctx.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 500)
    ctx.setVelocitiesToTemperature(298.15 * unit.kelvin, 1)
    integrator.step(50)  # warm-up
    return ctx, integrator


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--salt-units", type=int, nargs="+", default=[12, 134],
                    help="sizes of 1 M LiTFSI DOL/DME (12 ~ demo, 134 ~ 20,000 atoms)")
    ap.add_argument("--steps", type=int, default=500, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--platform", default="auto")
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "md_speed"))
    args = ap.parse_args(argv)
    platform, props = choose_platform(args.platform)
    base = load_recipe(ROOT / "systems" / "li_tfsi_dol_dme.yaml")
    rows = []
    for units in args.salt_units:
        recipe = base.model_copy(update={"name": f"speed_{units}", "size": base.size.model_copy(update={"salt_units": units})})
        work = Path(args.workdir) / recipe.name
        if not (work / "manifest.json").exists():
            build_system(recipe, work)
        pdb = app.PDBFile(str(work / "system.pdb"))
        species = ["Li", "TFSI", "DOL", "DME"]
        runs = {rule: _context(pdb.topology, species, rule, pdb.positions, platform, props)
                for rule in ("geometric", "lorentz-berthelot")}
        timing = {rule: 0.0 for rule in runs}
        for _ in range(args.blocks):
            for rule, (ctx, integ) in runs.items():
                ctx.getState(getEnergy=True)
                t0 = time.perf_counter()
                integ.step(args.steps)
                ctx.getState(getEnergy=True)  # synchronize (GPU)
                timing[rule] += time.perf_counter() - t0
        ns = args.steps * args.blocks * 2e-6
        speeds = {rule: ns / t * 86400 for rule, t in timing.items()}
        rows.append({"system": f"1 M LiTFSI DOL/DME, {pdb.topology.getNumAtoms()} atoms", "n_atoms": pdb.topology.getNumAtoms(),
                     "platform": platform.getName(), "ns_day_geometric": round(speeds["geometric"], 3),
                     "ns_day_lorentz_berthelot": round(speeds["lorentz-berthelot"], 3),
                     "ratio_geometric_over_LB": round(speeds["geometric"] / speeds["lorentz-berthelot"], 3)})
        print(rows[-1], file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"md_speed_{platform.getName()}.csv", index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
