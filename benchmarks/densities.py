"""Density validation: NPT runs of the pure solvents at 298.15 K, 1 atm vs experiment.

    python benchmarks/densities.py                                  # five solvents, defaults below
    python benchmarks/densities.py --solvents TTE BTFE --max-runs 1 # one run per sitting

Per solvent and packing k (``--packings``, default 1; packmol seed = the recipe's seed + k,
velocity seed = 2024 + k): build ``systems/pure_<solvent>.yaml`` at ``--atoms``, run solvmd md
with the annealed protocol (heat 5 ps, NVT anneal 450 K 200 ps, cool 100 ps, NPT 250 ps,
production 500 ps, 4 fs with HMR) in ``<workdir>/<solvent>/packing<k+1>_seed<seed>/``, and report
the production density +- standard error (pymbar statistical inefficiency) against the
reference values of docs/science.md §5. Writes benchmarks/results/densities.{csv,md}, rebuilt after
every run from the finished runs only; a run not finished gives its status, never a number.
Resumable: rerun the same command (MD continues from its last checkpoint). Not a test: it takes
CPU-hours at full length (minutes on a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from pymbar import timeseries

from common import (ROOT, Run, add_protocol_arguments, annealed_protocol, archived, make_runs, protocol_text,
                    read_archived, run_status, runs_this_sitting, same_protocol, write_fresh_table)
from solvmd.io import write_json_atomic
from solvmd.assembly.system import build_system
from solvmd.md.engine import run_md
from solvmd.recipe import load_recipe

# reference densities at 298 K, g/cm3: (low, high, tolerance %, source) — docs/science.md §5
REFERENCE = {
    "DME": (0.862, 0.868, 3.0, "docs/science.md §5 (CRC Handbook range 0.862-0.868)"),
    "THF": (0.883, 0.889, 3.0, "docs/science.md §5 (CRC Handbook range 0.883-0.889)"),
    "DOL": (1.058, 1.060, 3.0, "docs/science.md §5 (1.058-1.060)"),
    "TTE": (1.53, 1.53, 5.0, "docs/science.md §5 (~1.53, supplier data)"),
    "BTFE": (1.40, 1.40, 5.0, "docs/science.md §5 (~1.40, supplier data)"),
}


def mean_and_sem(x: np.ndarray) -> tuple[float, float, float]:
    """Mean, standard error corrected for correlation (statistical inefficiency g), and g."""
    g = timeseries.statistical_inefficiency(x)
    return float(x.mean()), float(x.std(ddof=1) * np.sqrt(g / len(x))), float(g)


def recipe_path(solvent: str) -> Path:
    return ROOT / "systems" / f"pure_{solvent.lower()}.yaml"


def run_one(run: Run, args, protocol) -> None:
    """Build (this packing's seed) and run (or resume) the MD of one solvent."""
    work = run.folder(args.workdir)
    if not (work / "build" / "manifest.json").exists():
        recipe = load_recipe(recipe_path(run.system))
        recipe = recipe.model_copy(update={"size": recipe.size.model_copy(update={"target_atoms": args.atoms}),
                                           "packing": recipe.packing.model_copy(update={"seed": run.packmol_seed})})
        build_system(recipe, work / "build")
    run_md(work / "build", work / "md", run.protocol(protocol))


def finished_md(work: Path, protocol) -> dict | None:
    """md.json of a finished run with this protocol (None otherwise)."""
    path = work / "md" / "md.json"
    info = json.loads(path.read_text()) if path.exists() else None
    return info if info is not None and same_protocol(info["protocol"], protocol) else None


def density_row(run: Run, args, protocol) -> dict:
    """The table row of one run: numbers only when its MD finished with this protocol."""
    work = run.folder(args.workdir)
    lo, hi, tol, source = REFERENCE[run.system]
    row = {"solvent": run.system, "packing": run.k + 1, "rho_ref_g_cm3": f"{lo}-{hi}" if lo != hi else f"{lo}",
           "tolerance_pct": tol, "reference_source": source}
    info = finished_md(work, protocol)
    if info is None:
        kept = read_archived(args.out, run, "densities", protocol)  # finished in an earlier session
        if kept is not None:
            return kept["row"]
        status = "finished with another protocol" if (work / "md" / "md.json").exists() else run_status(work, protocol)
        return {**row, "verdict": f"unfinished - {status}"}
    thermo = pd.read_csv(work / "md" / "thermo.csv")
    mean, sem, g = mean_and_sem(thermo.loc[thermo["stage"] == "production", "density_g_cm3"].to_numpy())
    ref = 0.5 * (lo + hi)
    dev = 100.0 * (mean - ref) / ref
    manifest = json.loads((work / "build" / "manifest.json").read_text())
    row = {**row, "n_atoms": int(manifest["n_atoms"]), "rho_model_g_cm3": round(mean, 4), "sem_g_cm3": round(sem, 4),
            "stat_ineff": round(g, 1), "deviation_pct": round(dev, 2), "verdict": "pass" if abs(dev) <= tol else "MISS",
            "run_ps": protocol_text(info["protocol"]),
            "seeds": f"packmol {manifest['seeds']['packmol']}, velocities {info['protocol']['seed']}",
            "platform": info["platform"], "ns_per_day": info["ns_per_day"]}
    write_json_atomic(archived(args.out, run, "densities"), {"protocol": info["protocol"], "row": row})
    return row


COLUMNS = ["solvent", "packing", "n_atoms", "rho_model_g_cm3", "sem_g_cm3", "stat_ineff", "rho_ref_g_cm3",
           "deviation_pct", "tolerance_pct", "verdict", "run_ps", "seeds", "reference_source", "platform", "ns_per_day"]


def write_table(rows: list[dict], out: Path) -> pd.DataFrame:
    """``out/densities.{csv,md}`` (rebuilt from the rows, not merged with older tables)."""
    return write_fresh_table(rows, out, "densities", COLUMNS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solvents", nargs="+", default=list(REFERENCE), choices=list(REFERENCE))
    ap.add_argument("--atoms", type=int, default=1500)
    add_protocol_arguments(ap, equilibrate_ps=250.0, production_ps=500.0, frame_ps=1.0, checkpoint_ps=25.0,
                           packings=1)
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "densities"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    protocol = annealed_protocol(args)
    seeds = {s: load_recipe(recipe_path(s)).packing.seed for s in REFERENCE}
    runs = make_runs(seeds, args.packings, protocol.seed)
    todo = [r for r in runs if r.system in args.solvents and finished_md(r.folder(args.workdir), protocol) is None]
    for run in [] if args.table_only else runs_this_sitting(todo, args.max_runs):
        print(f"[densities] {run.system} packing {run.k + 1} (packmol seed {run.packmol_seed})", file=sys.stderr)
        run_one(run, args, protocol)
        write_table([density_row(r, args, protocol) for r in runs], Path(args.out))  # a partial sitting reports
    table = write_table([density_row(r, args, protocol) for r in runs], Path(args.out))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
