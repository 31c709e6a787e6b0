"""4 fs with hydrogen mass repartitioning on every recipe under systems/: no blow-up, stable energies.

    python benchmarks/hmr_smoke.py --atoms 1500 --heat-ps 4 --npt-ps 8

Each recipe is built with the defaults (split mixing, hydrogen mass 3.0 amu) at a small
size (bulk recipes: ``--atoms`` atoms; interface recipes: their own sheet and slab, with the
estimated liquid density when the bulk run they name has not been made), then
minimized, heated (with the anneal at 450 K for ``--anneal-ps`` when given) and run NPT
at 4 fs. Reported: whether it finished, the potential-energy drift between the first and
second half of the NPT stage relative to its fluctuation, the mean temperature, and
ns/day. Resumable (finished recipes are skipped). Writes
benchmarks/results/hmr_smoke.{csv,md}. Not a test.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import sys
from pathlib import Path

import pandas as pd

from common import RESULTS, ROOT, write_merged_table
from solvmd.assembly.interface import build_interface
from solvmd.assembly.system import build_system
from solvmd.errors import SolvmdError
from solvmd.md.engine import run_md
from solvmd.md.protocol import load_protocol
from solvmd.recipe import load_interface_recipe, load_recipe


def is_interface(path: Path) -> bool:
    return any(line.startswith("surface:") for line in path.read_text().splitlines())


def build(path: Path, atoms: int, out: Path) -> None:
    """Build ``path`` into ``out`` (bulk recipes at ``atoms`` atoms)."""
    if (out / "manifest.json").exists():
        return
    if is_interface(path):
        recipe = load_interface_recipe(path)
        if recipe.density.source == "md" and not (ROOT / str(recipe.density.path)).exists():
            # no bulk run to take the density from: the estimate (a smoke test of 4 fs, not a result)
            recipe = recipe.model_copy(update={"density": recipe.density.model_copy(update={"source": "estimate", "path": None})})
        build_interface(recipe, out, log=io.StringIO())
        return
    recipe = load_recipe(path)
    size = recipe.size.model_copy(update={"target_atoms": atoms, "salt_units": None})
    build_system(recipe.model_copy(update={"size": size}), out, log=io.StringIO())


def smoke(path: Path, args, work: Path) -> dict:
    row = {"recipe": path.stem, "kind": "interface" if is_interface(path) else "bulk"}
    anneal = dict(anneal_K=450.0, anneal_ps=args.anneal_ps, cool_ps=args.anneal_ps) if args.anneal_ps else {}
    protocol = load_protocol(None, dict(timestep_fs=4.0, heat_ps=args.heat_ps, equilibrate_ps=0.0,
                                        production_ps=args.npt_ps, report_interval_ps=0.4, frame_interval_ps=0.4,
                                        checkpoint_interval_ps=0.4 * round(args.npt_ps / 0.8), **anneal))
    try:
        build(path, args.atoms, work / "build")
        info = run_md(work / "build", work / "md", protocol, log=io.StringIO())
    except (SolvmdError, Exception) as err:  # a benchmark records every failure and goes on
        return {**row, "finished": False, "error": f"{type(err).__name__}: {err}"[:200]}
    thermo = pd.read_csv(work / "md" / "thermo.csv")
    prod = thermo[thermo.stage == "production"]["Epot_kJ_mol"].to_numpy()
    half = len(prod) // 2
    drift = (prod[half:].mean() - prod[:half].mean()) / max(prod.std(), 1e-9)
    return {**row, "finished": True, "n_atoms": json.loads((work / "build" / "manifest.json").read_text())["n_atoms"],
            "mixing": info.get("mixing"), "hydrogen_mass_amu": info["hydrogen_mass_amu"], "timestep_fs": info["timestep_fs"],
            "T_mean_K": round(float(thermo[thermo.stage == "production"]["T_K"].mean()), 1),
            "Epot_drift_in_std": round(float(drift), 2), "ns_per_day": info["ns_per_day"], "error": ""}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="*", default=None, help="recipe names (default: every systems/*.yaml)")
    ap.add_argument("--atoms", type=int, default=1500)
    ap.add_argument("--heat-ps", type=float, default=4.0)
    ap.add_argument("--anneal-ps", type=float, default=0.0)
    ap.add_argument("--npt-ps", type=float, default=8.0)
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "hmr_smoke"))
    args = ap.parse_args(argv)
    paths = [ROOT / "systems" / f"{n}.yaml" for n in args.recipes] if args.recipes else \
        [Path(p) for p in sorted(glob.glob(str(ROOT / "systems" / "*.yaml")))]
    rows = []
    for path in paths:
        rows.append(smoke(path, args, Path(args.workdir) / path.stem))
        print(rows[-1], file=sys.stderr, flush=True)
        write_merged_table(rows, RESULTS, "hmr_smoke", "recipe")
    print(pd.read_csv(RESULTS / "hmr_smoke.csv").to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
