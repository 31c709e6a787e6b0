"""Benchmark (not a test): error per core-hour of replica exchange vs independent umbrella windows.

Two demo coordinates (config/demo_sac.yaml recipes, made longer): Li+ - DME distance in the bulk
electrolyte (``demo_sac_li_bulk``, ``li_dme``) and the Li+ height above Zn-N4 graphene
(``demo_sac_li_znn4``, ``li_height``). Each is run with ``sampler: independent`` and with
``sampler: exchange`` at equal MD per window (``--sample-ps``), ``--repeats`` independent repeats
each (own packing and velocity seeds: the workflow's ``repeats:``), through the real workflow
(one Snakemake run per sampler, recipes copied with the sampler and lengths changed).

Reported per (coordinate, sampler): the headline number (ΔG‡ for the distance, ΔG_ads for the
height) of every repeat, their mean and sd, the mean reported within-run σ and its ratio to the
sd ("is the reported σ honest"), the verdicts, the core-hours of sampling (windows' wall time x
threads, preparation excluded), and the efficiency 1 / (sd^2 x core-hours); the exchange /
independent ratio of efficiencies is the number that picks the default sampler. "Error" is the
spread between repeats, never the reported σ.

    python benchmarks/pmf_sampler.py --repeats 3 --sample-ps 20 --cores 2     # resumable: rerun to continue
    python benchmarks/pmf_sampler.py --table-only                              # rebuild the table

Writes benchmarks/results/pmf_sampler.{csv,md} (rebuilt from finished repeats only). CPU-hours at
these lengths on 2 cores; minutes on a GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, write_fresh_table  # noqa: E402

COORDINATES = {"demo_sac_li_bulk": "li_dme", "demo_sac_li_znn4": "li_height"}
ELECTROLYTE = "demo_li_tfsi_dol_dme"  # the interface recipe's electrolyte, copied beside it
SAMPLERS = ("independent", "exchange")
COLUMNS = ["system", "coordinate", "sampler", "headline", "values_kJ_mol", "mean_kJ_mol", "sd_between_kJ_mol",
           "mean_reported_err_kJ_mol", "reported_over_sd", "converged", "core_hours", "efficiency_per_kJ2_h",
           "efficiency_ratio_vs_independent", "repeats", "sample_ps_per_window", "exchange_acceptance_min"]


def write_recipes(folder: Path, sampler: str, args) -> None:
    """The benchmark's recipes: the demo ones with the sampler, lengths and repeats set."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*COORDINATES, ELECTROLYTE):
        recipe = yaml.safe_load((ROOT / "systems" / f"{name}.yaml").read_text())
        for spec in recipe.get("pmf") or []:
            spec.update(sampler=sampler, sample_ps=args.sample_ps, equil_ps=args.equil_ps, repeats=args.repeats,
                        exchange_interval_ps=args.exchange_interval_ps)
        recipe["pmf"] = [s for s in recipe.get("pmf") or [] if s["name"] == COORDINATES.get(name)] or None
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))


def write_config(path: Path, recipes: Path, results: Path) -> None:
    cfg = yaml.safe_load((ROOT / "config" / "demo_sac.yaml").read_text())
    cfg.update(systems=list(COORDINATES), recipes_dir=str(recipes), results_dir=str(results), sac_comparison=True,
               analyze=False)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def run_sampler(work: Path, sampler: str, args) -> None:
    """One Snakemake run (gap-closing rounds included) for one sampler; resumable."""
    recipes, results, cfg = work / sampler / "recipes", work / sampler / "results", work / sampler / "config.yaml"
    write_recipes(recipes, sampler, args)
    write_config(cfg, recipes, results)
    for _ in range(args.rounds):
        done = subprocess.run(["snakemake", "--cores", str(args.cores), "--keep-going", "--configfile", str(cfg),
                               "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT)], check=False)
        if done.returncode == 0:
            return
    print(f"[pmf_sampler] {sampler}: not finished after {args.rounds} rounds; rerun to continue", file=sys.stderr)


def _barriers(results: Path, system: str, cv: str, repeats: int) -> list[dict]:
    from solvmd.pmf.repeats import repeat_system

    paths = [results / repeat_system(system, r) / "pmf" / cv / "barrier.json" for r in range(1, repeats + 1)]
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


def _core_hours(folder: Path, threads: int) -> float:
    """Sampling wall time x threads (h): the windows' own wall_s (exchange: its run's)."""
    ex = folder / "exchange.json"
    if ex.is_file():
        return json.loads(ex.read_text())["wall_s"] * threads / 3600.0
    total = 0.0
    for p in folder.glob("window_*.npz"):
        with np.load(p) as z:
            total += float(z["wall_s"])
    return total * threads / 3600.0


def row(work: Path, system: str, cv: str, sampler: str, args) -> dict:
    from solvmd.pmf.convergence import _headline_error, headline_name
    from solvmd.pmf.repeats import repeat_system

    results = work / sampler / "results"
    bs = _barriers(results, system, cv, args.repeats)
    out = {"system": system, "coordinate": cv, "sampler": sampler, "repeats": len(bs),
           "sample_ps_per_window": args.sample_ps}
    if len(bs) < 2:
        return {**out, "headline": f"unfinished ({len(bs)} of {args.repeats} repeats)"}
    head = headline_name(bs[0])
    vals = np.array([(b.get("adsorption") or {}).get("dG_ads_kJ_mol") if head == "dG_ads" else b["dG_barrier_kJ_mol"]
                     for b in bs], float)
    errs = np.array([_headline_error(b, head) for b in bs], float)
    sd = float(np.std(vals, ddof=1))
    hours = sum(_core_hours(results / repeat_system(system, r) / "pmf" / cv, args.threads)
                for r in range(1, len(bs) + 1))
    acc = None
    if sampler == "exchange":
        acc = min(json.loads((results / repeat_system(system, r) / "pmf" / cv / "exchange.json").read_text())
                  ["min_neighbour_acceptance"] for r in range(1, len(bs) + 1))
    return {**out, "headline": head, "values_kJ_mol": " / ".join(f"{v:.2f}" for v in vals),
            "mean_kJ_mol": round(float(vals.mean()), 3), "sd_between_kJ_mol": round(sd, 3),
            "mean_reported_err_kJ_mol": round(float(np.mean(errs)), 3),
            "reported_over_sd": round(float(np.mean(errs)) / sd, 3) if sd > 0 else None,
            "converged": " / ".join(str(b.get("converged")) for b in bs), "core_hours": round(hours, 4),
            "efficiency_per_kJ2_h": round(1.0 / (sd**2 * hours), 4) if sd > 0 and hours > 0 else None,
            "exchange_acceptance_min": acc}


def table(work: Path, args, out: Path) -> pd.DataFrame:
    rows = [row(work, s, cv, sampler, args) for s, cv in COORDINATES.items() for sampler in SAMPLERS]
    for r in rows:
        ind = next(x for x in rows if x["system"] == r["system"] and x["sampler"] == "independent")
        if r.get("efficiency_per_kJ2_h") and ind.get("efficiency_per_kJ2_h"):
            r["efficiency_ratio_vs_independent"] = round(r["efficiency_per_kJ2_h"] / ind["efficiency_per_kJ2_h"], 3)
    return write_fresh_table(rows, out, "pmf_sampler", COLUMNS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample-ps", type=float, default=20.0, help="sampled ps per window (both samplers)")
    ap.add_argument("--equil-ps", type=float, default=2.0)
    ap.add_argument("--exchange-interval-ps", type=float, default=0.5)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads per window job (config pmf_threads)")
    ap.add_argument("--rounds", type=int, default=6, help="gap-closing Snakemake rounds per sampler")
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "pmf_sampler"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args(argv)
    if args.repeats < 2:
        raise SystemExit("--repeats must be >= 2: the error is the spread between repeats")
    work = Path(args.workdir)
    for sampler in [] if args.table_only else args.samplers:
        run_sampler(work, sampler, args)
    print(table(work, args, Path(args.out)).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
