"""Density validation: NPT runs of the pure solvents at 298.15 K, 1 atm vs experiment.

    python benchmarks/densities.py --atoms 1500 --equilibrate-ps 50 --production-ps 150

Builds ``systems/pure_<solvent>.yaml`` at the requested size, runs solvmd md, and
reports the production density +- standard error (pymbar statistical inefficiency)
against the reference values of SCIENCE.md §5. Writes benchmarks/results/densities.{csv,md}.
Not a test: it takes CPU-hours at full length (minutes on a GPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from pymbar import timeseries

from common import benchmark_protocol, write_merged_table
from solvmd.build.system import build_system
from solvmd.md.engine import run_md
from solvmd.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
# reference densities at 298 K, g/cm3: (low, high, tolerance %, source) — SCIENCE.md §5
REFERENCE = {
    "DME": (0.862, 0.868, 3.0, "SCIENCE.md §5 (CRC Handbook range 0.862-0.868)"),
    "THF": (0.883, 0.889, 3.0, "SCIENCE.md §5 (CRC Handbook range 0.883-0.889)"),
    "DOL": (1.058, 1.060, 3.0, "SCIENCE.md §5 (1.058-1.060)"),
    "TTE": (1.53, 1.53, 5.0, "SCIENCE.md §5 (~1.53, supplier data)"),
    "BTFE": (1.40, 1.40, 5.0, "SCIENCE.md §5 (~1.40, supplier data)"),
}


def mean_and_sem(x: np.ndarray) -> tuple[float, float, float]:
    """Mean, standard error corrected for correlation (statistical inefficiency g), and g."""
    g = timeseries.statistical_inefficiency(x)
    return float(x.mean()), float(x.std(ddof=1) * np.sqrt(g / len(x))), float(g)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solvents", nargs="+", default=list(REFERENCE))
    ap.add_argument("--atoms", type=int, default=1500)
    ap.add_argument("--equilibrate-ps", type=float, default=50.0)
    ap.add_argument("--production-ps", type=float, default=150.0)
    ap.add_argument("--platform", default="auto")
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "densities"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    protocol = benchmark_protocol(args.equilibrate_ps, args.production_ps, args.platform,
                                  frame_interval_ps=5.0, checkpoint_interval_ps=25.0)
    rows = []
    for solvent in args.solvents:
        recipe = load_recipe(ROOT / "systems" / f"pure_{solvent.lower()}.yaml")
        recipe = recipe.model_copy(update={"size": recipe.size.model_copy(update={"target_atoms": args.atoms})})
        work = Path(args.workdir) / solvent
        if not (work / "build" / "manifest.json").exists():
            build_system(recipe, work / "build")
        info = run_md(work / "build", work / "md", protocol)
        thermo = pd.read_csv(work / "md" / "thermo.csv")
        rho = thermo.loc[thermo["stage"] == "production", "density_g_cm3"].to_numpy()
        mean, sem, g = mean_and_sem(rho)
        lo, hi, tol, source = REFERENCE[solvent]
        ref = 0.5 * (lo + hi)
        dev = 100.0 * (mean - ref) / ref
        n_atoms = json.loads((work / "build" / "manifest.json").read_text())["n_atoms"]
        rows.append({"solvent": solvent, "n_atoms": int(n_atoms),
                     "rho_model_g_cm3": round(mean, 4), "sem_g_cm3": round(sem, 4), "stat_ineff": round(g, 1),
                     "rho_ref_g_cm3": f"{lo}-{hi}" if lo != hi else f"{lo}", "deviation_pct": round(dev, 2),
                     "tolerance_pct": tol, "verdict": "pass" if abs(dev) <= tol else "MISS",
                     "production_ps": args.production_ps, "platform": info["platform"],
                     "ns_per_day": round(info["ns_per_day"], 2), "reference_source": source})
        print(rows[-1], file=sys.stderr)
        table = write_merged_table(rows, Path(args.out), "densities", key="solvent")  # after every solvent, so a partial run still reports
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
