"""Fast mixing and 4 fs HMR against the references: density, Li-O structure, energies.

    python benchmarks/md_equivalence.py --systems pure_dme pure_thf demo_li_tfsi_dol_dme \
        --atoms 900 --equilibrate-ps 20 --production-ps 100 --anneal-K 0
    python benchmarks/md_equivalence.py --systems demo_li_tfsi_dol_dme --packings 6 --jobs 2 \
        --anneal-K 450 --anneal-ps 20 --cool-ps 10 --equilibrate-ps 20 --production-ps 100

For every system and packing k (``--packings``; packmol seed = the recipe's seed + k, velocity
seed 2024 + k) each variant is built from that same packing and run with the same protocol
(optionally annealed: NVT at ``--anneal-K``, cool-down, NPT) apart from the timestep:

- ``exact_2fs``: exact geometric mixing, natural masses, 2 fs (the reference)
- ``fast_2fs``: fast mixing (LB + correction inside 0.5 nm), natural masses, 2 fs
- ``fast_hmr_4fs``: fast mixing, hydrogen mass 3.0 amu, 4 fs (the previous default)
- ``split_2fs``, ``split_hmr_4fs``: split mixing (exact geometric, solvmd.mixing), 2 fs natural
  masses / 4 fs with hydrogen mass 3.0 amu (solvmd's defaults)

Reported per run: production density +- standard error (pymbar statistical
inefficiency), mean potential energy and its standard deviation, and for systems with
Li+ the first Li-O(ether) g(r) peak and the per-Li O count within 0.28 nm (MDAnalysis
InterRDF), each with an error bar (li_o_structure). For ``fast_2fs`` also ``exact_by_reweighting``: the exact form's
density from the fast run's own frames, each weighted by exp(-(U_exact - U_fast)/kT)
(both energies evaluated on the frame; the pV term is common), so the fast-vs-exact
difference carries no independent-run noise. Verdicts: fast vs exact density within
0.3 %, 4 fs vs 2 fs within 0.5 % (issue 11), each with the combined standard error; 4 fs
vs 2 fs Li-O peak and CN equal within 2 combined error bars.
With one packing the error bars come from each run's own time series. With several packings a
variant's value is the mean over its packings and its error bar the standard error of that mean
(sd between packings / sqrt(n)): an ion's shell outlives a run of a few hundred ps, so only
independent starts measure how far its coordination number scatters. ``--jobs`` runs that many
MD runs at once (CPU threads split between them).
Resumable (reruns skip finished runs). Writes benchmarks/results/md_equivalence.{csv,md} and
md_equivalence_verdicts.{csv,md} (one packing), or md_equivalence_packings.{csv,md} and
md_equivalence_packings_verdicts.{csv,md} (several). Not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import openmm
import pandas as pd
from MDAnalysis.analysis.rdf import InterRDF
from openmm import app, unit
from pymbar import timeseries

from common import (RESULTS, ROOT, Run, add_protocol_arguments, annealed_protocol, make_runs, runs_this_sitting,
                    write_merged_table)
from solvmd.assembly.system import build_system, load_build
from solvmd.forcefield import create_system
from solvmd.md.engine import run_md
from solvmd.md.protocol import MDProtocol
from solvmd.recipe import load_recipe

VARIANTS = {  # name: (forcefield settings, timestep fs)
    "exact_2fs": ({"mixing": "exact", "hydrogen_mass_amu": None}, 2.0),
    "fast_2fs": ({"mixing": "fast", "correction_cutoff_nm": 0.5, "hydrogen_mass_amu": None}, 2.0),
    "fast_hmr_4fs": ({"mixing": "fast", "correction_cutoff_nm": 0.5, "hydrogen_mass_amu": 3.0}, 4.0),
    "split_2fs": ({"mixing": "split", "hydrogen_mass_amu": None}, 2.0),
    "split_hmr_4fs": ({"mixing": "split", "hydrogen_mass_amu": 3.0}, 4.0),
}
LI_O_CUTOFF_NM = 0.28


def run_folder(workdir: Path, run: Run, variant: str, n_packings: int) -> Path:
    """``<workdir>/<system>/<variant>`` for one packing (the layout of earlier tables), else one folder per packing."""
    base = Path(workdir) / run.system / variant
    return base if n_packings == 1 else base / f"packing{run.k + 1}_seed{run.packmol_seed}"


def run_variant(run: Run, variant: str, atoms: int, protocol: MDProtocol, base: Path) -> Path:
    """Build (this packing's seed) and run one variant (skipped when finished); returns the MD folder."""
    settings, dt = VARIANTS[variant]
    recipe = load_recipe(ROOT / "systems" / f"{run.system}.yaml")
    size = recipe.size.model_copy(update={"target_atoms": atoms, "salt_units": None}) if recipe.salts == [] \
        else recipe.size
    recipe = recipe.model_copy(update={"size": size, "forcefield": recipe.forcefield.model_copy(update=settings),
                                       "packing": recipe.packing.model_copy(update={"seed": run.packmol_seed})})
    if not (base / "build" / "manifest.json").exists():
        build_system(recipe, base / "build")
    run_md(base / "build", base / "md", run.protocol(protocol).model_copy(update={"timestep_fs": dt}))
    return base / "md"


def mean_sem(x: np.ndarray) -> tuple[float, float]:
    g = timeseries.statistical_inefficiency(x)
    return float(x.mean()), float(x.std(ddof=1) * np.sqrt(g / len(x)))


def li_o_structure(md: Path) -> dict:
    """First Li-O(ether) g(r) peak (nm) and per-Li O count within 0.28 nm over the production
    frames, each with an error bar: the CN's standard error from its per-frame series (pymbar
    statistical inefficiency), the peak's as half the difference between the two halves of the
    run combined with the 0.004 nm bin. Empty for systems without Li+ and ether O."""
    u = mda.Universe(str(md / "topology.pdb"), str(md / "traj.xtc"))
    li = u.select_atoms("element Li")
    oxygen = u.select_atoms("element O and resname DME DOL THF")
    if not len(li) or not len(oxygen):
        return {}
    n = len(u.trajectory)
    peaks = []
    for start, stop in ((0, n // 2), (n // 2, n), (0, n)):
        rdf = InterRDF(li, oxygen, nbins=150, range=(0.0, 6.0)).run(start=start, stop=stop)
        peaks.append(float(rdf.results.bins[np.argmax(rdf.results.rdf)]) / 10.0)
    counts = np.array([np.sum(mda.lib.distances.distance_array(li.positions, oxygen.positions, box=u.dimensions)
                              < LI_O_CUTOFF_NM * 10.0) / len(li) for _ in u.trajectory])
    cn, cn_se = mean_sem(counts)
    return {"Li_O_peak_nm": round(peaks[2], 4), "Li_O_peak_err_nm": round(float(np.hypot(0.5 * abs(peaks[0] - peaks[1]), 0.004)), 4),
            "Li_O_CN_0.28nm": round(cn, 3), "Li_O_CN_se": round(cn_se, 3)}


def reweighted_exact_density(md: Path) -> tuple[float, float, float]:
    """Exact-form density (g/cm3) +- SE from a fast run's frames, and the std of U_exact - U_fast (kT)."""
    pdb, fast, manifest = load_build(md.parent / "build")
    names = [row["name"] for row in manifest["species"]]
    exact = create_system(pdb.topology, names, cutoff_nm=manifest["cutoff_nm"],
                          charge_scale=manifest["charge_scale"], mixing="exact")
    cpu = openmm.Platform.getPlatformByName("CPU")
    contexts = [openmm.Context(s, openmm.VerletIntegrator(0.001), cpu) for s in (fast, exact)]
    kT = (unit.MOLAR_GAS_CONSTANT_R * manifest["temperature_K"] * unit.kelvin).value_in_unit(unit.kilojoule_per_mole)
    mass_g = sum(fast.getParticleMass(i).value_in_unit(unit.dalton) for i in range(fast.getNumParticles())) \
        / unit.AVOGADRO_CONSTANT_NA.value_in_unit(unit.mole**-1)
    u = mda.Universe(str(md / "topology.pdb"), str(md / "traj.xtc"))
    du, rho = [], []
    for ts in u.trajectory:
        box = np.diag(ts.dimensions[:3] / 10.0)
        energies = []
        for ctx in contexts:
            ctx.setPeriodicBoxVectors(*box)
            ctx.setPositions(ts.positions / 10.0)
            energies.append(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        du.append((energies[1] - energies[0]) / kT)
        rho.append(mass_g / (np.prod(box.diagonal()) * 1e-21))
    du, rho = np.array(du), np.array(rho)
    w = np.exp(-(du - du.min()))
    w /= w.sum()
    mean = float((w * rho).sum())
    g = timeseries.statistical_inefficiency(rho)
    n_eff = 1.0 / (w**2).sum() / g
    return mean, float(np.sqrt((w * (rho - mean) ** 2).sum() / max(n_eff - 1.0, 1.0))), float(du.std())


def summarize(system: str, variant: str, md: Path) -> list[dict]:
    thermo = pd.read_csv(md / "thermo.csv")
    prod = thermo[thermo.stage == "production"]
    rho, rho_se = mean_sem(prod["density_g_cm3"].to_numpy())
    row = {"system": system, "variant": variant, "key": f"{system}/{variant}",
            "production_ps": float(prod["time_ps"].iloc[-1] - prod["time_ps"].iloc[0]),
            "density_g_cm3": round(rho, 5), "density_se": round(rho_se, 5),
            "Epot_mean_kJ_mol": round(prod["Epot_kJ_mol"].mean(), 1), "Epot_std_kJ_mol": round(prod["Epot_kJ_mol"].std(), 1),
            "T_mean_K": round(prod["T_K"].mean(), 2), **li_o_structure(md), "dU_std_kT": None}
    if variant != "fast_2fs":
        return [row]
    rho_x, se_x, du_std = reweighted_exact_density(md)
    return [row, {**row, "variant": "exact_by_reweighting", "key": f"{system}/exact_by_reweighting",
                  "density_g_cm3": round(rho_x, 5), "density_se": round(se_x, 5), "dU_std_kT": round(du_std, 3),
                  "Epot_mean_kJ_mol": None, "Epot_std_kJ_mol": None, "Li_O_peak_nm": None, "Li_O_CN_0.28nm": None}]


def verdicts(rows: list[dict]) -> list[dict]:
    """Density differences: fast vs exact (0.3 %), 4 fs vs 2 fs (0.5 %)."""
    by = {(r["system"], r["variant"]): r for r in rows}
    out = []
    for system in sorted({r["system"] for r in rows}):
        for a, b, tol in (("fast_2fs", "exact_2fs", 0.3), ("fast_2fs", "exact_by_reweighting", 0.3),
                          ("fast_hmr_4fs", "fast_2fs", 0.5),  # split = exact to round-off (tests): no run pair
                          ("split_hmr_4fs", "split_2fs", 0.5)):
            if (system, a) in by and (system, b) in by:
                ra, rb = by[(system, a)], by[(system, b)]
                diff = 100.0 * (ra["density_g_cm3"] / rb["density_g_cm3"] - 1.0)
                se = 100.0 * np.hypot(ra["density_se"], rb["density_se"]) / rb["density_g_cm3"]
                out.append({"system": system, "key": f"{system}/{a}-vs-{b}", "comparison": f"{a} vs {b}",
                            "density_diff_pct": round(diff, 3), "combined_se_pct": round(se, 3),
                            "tolerance_pct": tol, "verdict": "pass" if abs(diff) <= tol else "MISS"})
        for a, b in (("fast_hmr_4fs", "fast_2fs"), ("split_hmr_4fs", "split_2fs")):
            if (system, a) in by and (system, b) in by:
                out += structure_verdicts(system, by[(system, a)], by[(system, b)], f"{a}-vs-{b}")
    return out


def structure_verdicts(system: str, a: dict, b: dict, pair: str) -> list[dict]:
    """4 fs vs 2 fs Li-O peak and CN: equal within their combined error bars (2 sigma)."""
    out = []
    for value, err in (("Li_O_peak_nm", "Li_O_peak_err_nm"), ("Li_O_CN_0.28nm", "Li_O_CN_se")):
        if pd.isna(a.get(value)) or pd.isna(b.get(value)) or pd.isna(a.get(err)) or pd.isna(b.get(err)):
            continue
        diff, se = a[value] - b[value], float(np.hypot(a[err], b[err]))
        out.append({"system": system, "key": f"{system}/{value}/{pair}",
                    "comparison": f"{value}: {pair.replace('-vs-', ' vs ')}", "diff": round(diff, 4), "combined_err": round(se, 4),
                    "verdict": "pass" if abs(diff) <= 2 * se else "MISS"})
    return out


def packing_means(rows: list[dict]) -> list[dict]:
    """Per (system, variant): the mean over its packings, each error bar the sd between packings / sqrt(n)."""
    table = pd.DataFrame(rows)
    out = []
    for (system, variant), group in table.groupby(["system", "variant"], sort=False):
        n = len(group)
        row = {"system": system, "variant": variant, "key": f"{system}/{variant}/mean", "packing": f"mean of {n}",
               "production_ps": float(group["production_ps"].sum()), "T_mean_K": round(group["T_mean_K"].mean(), 2)}
        for value, err, digits in (("density_g_cm3", "density_se", 5), ("Epot_mean_kJ_mol", None, 1),
                                   ("Li_O_peak_nm", "Li_O_peak_err_nm", 4), ("Li_O_CN_0.28nm", "Li_O_CN_se", 3)):
            if value not in group or group[value].isna().any():
                continue
            row[value] = round(float(group[value].mean()), digits)
            if err is not None:
                se = float(group[value].std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
                row[err] = round(float(np.hypot(se, 0.004)) if value == "Li_O_peak_nm" else se, digits)
        out.append(row)
    return out


def run_one(job: tuple) -> list[dict]:
    """One (run, variant) in a worker process: run it (or skip it when finished) and summarize it."""
    run, variant, n_packings, atoms, protocol, workdir = job
    md = run_variant(run, variant, atoms, protocol, run_folder(workdir, run, variant, n_packings))
    rows = summarize(run.system, variant, md)
    if n_packings > 1:
        rows = [{**r, "packing": run.k + 1, "key": f"{r['key']}/packing{run.k + 1}"} for r in rows]
    print(rows[0], file=sys.stderr, flush=True)
    return rows


def run_all(jobs: list[tuple], n_workers: int) -> list[dict]:
    """Run the jobs, ``n_workers`` at a time (CPU threads split between them), in the order given."""
    if n_workers <= 1:
        return [row for job in jobs for row in run_one(job)]
    os.environ.setdefault("SOLVMD_CPU_THREADS", str(max(1, (os.cpu_count() or 1) // n_workers)))
    with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [row for rows in pool.map(run_one, jobs) for row in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=["pure_dme", "pure_thf", "demo_li_tfsi_dol_dme"])
    ap.add_argument("--variants", nargs="+", default=["split_2fs", "split_hmr_4fs"], choices=list(VARIANTS),
                    help="exact_2fs: an independent exact run, 5-6x slower on CPUs")
    ap.add_argument("--atoms", type=int, default=900, help="size of the pure-solvent boxes")
    add_protocol_arguments(ap, equilibrate_ps=20.0, production_ps=100.0, frame_ps=0.4, checkpoint_ps=4.0, packings=1)
    ap.set_defaults(anneal_ps=20.0, cool_ps=10.0)  # benchmarks/results/anneal_shells.md: 11 of 12 Li shells change
    ap.add_argument("--jobs", type=int, default=1, help="MD runs at once")
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "md_equivalence"))
    args = ap.parse_args(argv)
    protocol = annealed_protocol(args)
    seeds = {system: load_recipe(ROOT / "systems" / f"{system}.yaml").packing.seed for system in args.systems}
    runs = make_runs(seeds, args.packings, protocol.seed)
    jobs = [(run, v, args.packings, args.atoms, protocol, Path(args.workdir)) for run in runs for v in args.variants]
    done = [job for job in jobs if (run_folder(job[5], job[0], job[1], job[2]) / "md" / "md.json").exists()]
    todo = [] if args.table_only else runs_this_sitting([job for job in jobs if job not in done], args.max_runs)
    rows = run_all([job for job in jobs if job in done or job in todo], args.jobs)
    stem = "md_equivalence" if args.packings == 1 else "md_equivalence_packings"
    means = [] if args.packings == 1 else packing_means(rows)
    table = write_merged_table(rows + means, RESULTS, stem, "key")  # one packing: verdicts also pair earlier rows
    checks = write_merged_table(verdicts(means or table.to_dict("records")), RESULTS, f"{stem}_verdicts", "key")
    print(table.to_string(index=False))
    print(checks.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
