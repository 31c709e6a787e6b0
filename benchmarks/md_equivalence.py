"""Fast mixing and 4 fs HMR against the references: density, Li-O structure, energies.

    python benchmarks/md_equivalence.py --systems pure_dme pure_thf demo_li_tfsi_dol_dme \
        --atoms 900 --equilibrate-ps 20 --production-ps 100

For every system three builds from the same packing (same packmol seed) are run with
the same protocol apart from the timestep:

- ``exact_2fs``: exact geometric mixing, natural masses, 2 fs (the reference)
- ``fast_2fs``: fast mixing (LB + correction inside 0.5 nm), natural masses, 2 fs
- ``fast_hmr_4fs``: solvmd's defaults, fast mixing, hydrogen mass 3.0 amu, 4 fs

Reported per run: production density +- standard error (pymbar statistical
inefficiency), mean potential energy and its standard deviation, and for systems with
Li+ the first Li-O(ether) g(r) peak and the per-atom coordination number at 0.28 nm
(MDAnalysis InterRDF). Verdicts: fast vs exact density within 0.3 %, 4 fs vs 2 fs within
0.5 % (issue 11), each also against the combined standard error. Resumable (reruns skip
finished runs). Writes benchmarks/results/md_equivalence.{csv,md}. Not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pandas as pd
from MDAnalysis.analysis.rdf import InterRDF
from pymbar import timeseries

from common import RESULTS, ROOT, write_merged_table
from solvmd.build.system import build_system
from solvmd.md.engine import run_md
from solvmd.md.protocol import load_protocol
from solvmd.recipe import load_recipe

VARIANTS = {  # name: (forcefield settings, timestep fs)
    "exact_2fs": ({"mixing": "exact", "hydrogen_mass_amu": None}, 2.0),
    "fast_2fs": ({"mixing": "fast", "correction_cutoff_nm": 0.5, "hydrogen_mass_amu": None}, 2.0),
    "fast_hmr_4fs": ({"mixing": "fast", "correction_cutoff_nm": 0.5, "hydrogen_mass_amu": 3.0}, 4.0),
}
LI_O_CUTOFF_NM = 0.28


def run_variant(system: str, variant: str, atoms: int, eq_ps: float, prod_ps: float, workdir: Path) -> Path:
    """Build and run one variant (skipped when finished); returns the MD folder."""
    settings, dt = VARIANTS[variant]
    recipe = load_recipe(ROOT / "systems" / f"{system}.yaml")
    size = recipe.size.model_copy(update={"target_atoms": atoms, "salt_units": None}) if recipe.salts == [] \
        else recipe.size
    recipe = recipe.model_copy(update={"size": size, "forcefield": recipe.forcefield.model_copy(update=settings)})
    base = workdir / system / variant
    if not (base / "build" / "manifest.json").exists():
        build_system(recipe, base / "build")
    protocol = load_protocol(None, dict(timestep_fs=dt, heat_ps=4, equilibrate_ps=eq_ps, production_ps=prod_ps,
                                        report_interval_ps=0.4, frame_interval_ps=0.4, checkpoint_interval_ps=4.0))
    run_md(base / "build", base / "md", protocol)
    return base / "md"


def mean_sem(x: np.ndarray) -> tuple[float, float]:
    g = timeseries.statistical_inefficiency(x)
    return float(x.mean()), float(x.std(ddof=1) * np.sqrt(g / len(x)))


def li_o_structure(md: Path) -> tuple[float | None, float | None]:
    """First Li-O(ether) g(r) peak (nm) and per-Li O count within 0.28 nm (production frames)."""
    u = mda.Universe(str(md / "topology.pdb"), str(md / "traj.xtc"))
    li = u.select_atoms("element Li")
    oxygen = u.select_atoms("element O and resname DME DOL THF")
    if not len(li) or not len(oxygen):
        return None, None
    rdf = InterRDF(li, oxygen, nbins=150, range=(0.0, 6.0)).run()
    peak_nm = float(rdf.results.bins[np.argmax(rdf.results.rdf)]) / 10.0
    counts = [np.sum(mda.lib.distances.distance_array(li.positions, oxygen.positions, box=u.dimensions)
                     < LI_O_CUTOFF_NM * 10.0) / len(li) for _ in u.trajectory]
    return peak_nm, float(np.mean(counts))


def summarize(system: str, variant: str, md: Path) -> dict:
    thermo = pd.read_csv(md / "thermo.csv")
    prod = thermo[thermo.stage == "production"]
    rho, rho_se = mean_sem(prod["density_g_cm3"].to_numpy())
    peak, cn = li_o_structure(md)
    return {"system": system, "variant": variant, "key": f"{system}/{variant}",
            "production_ps": float(prod["time_ps"].iloc[-1] - prod["time_ps"].iloc[0]),
            "density_g_cm3": round(rho, 5), "density_se": round(rho_se, 5),
            "Epot_mean_kJ_mol": round(prod["Epot_kJ_mol"].mean(), 1), "Epot_std_kJ_mol": round(prod["Epot_kJ_mol"].std(), 1),
            "T_mean_K": round(prod["T_K"].mean(), 2), "Li_O_peak_nm": peak, "Li_O_CN_0.28nm": cn}


def verdicts(rows: list[dict]) -> list[dict]:
    """Density differences: fast vs exact (0.3 %), 4 fs vs 2 fs (0.5 %)."""
    by = {(r["system"], r["variant"]): r for r in rows}
    out = []
    for system in sorted({r["system"] for r in rows}):
        for a, b, tol in (("fast_2fs", "exact_2fs", 0.3), ("fast_hmr_4fs", "fast_2fs", 0.5)):
            if (system, a) in by and (system, b) in by:
                ra, rb = by[(system, a)], by[(system, b)]
                diff = 100.0 * (ra["density_g_cm3"] / rb["density_g_cm3"] - 1.0)
                se = 100.0 * np.hypot(ra["density_se"], rb["density_se"]) / rb["density_g_cm3"]
                out.append({"system": system, "key": f"{system}/{a}-vs-{b}", "comparison": f"{a} vs {b}",
                            "density_diff_pct": round(diff, 3), "combined_se_pct": round(se, 3),
                            "tolerance_pct": tol, "verdict": "pass" if abs(diff) <= tol else "MISS"})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=["pure_dme", "pure_thf", "demo_li_tfsi_dol_dme"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--atoms", type=int, default=900, help="size of the pure-solvent boxes")
    ap.add_argument("--equilibrate-ps", type=float, default=20.0)
    ap.add_argument("--production-ps", type=float, default=100.0)
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "md_equivalence"))
    args = ap.parse_args(argv)
    rows = []
    for system in args.systems:
        for variant in args.variants:
            md = run_variant(system, variant, args.atoms, args.equilibrate_ps, args.production_ps, Path(args.workdir))
            rows.append(summarize(system, variant, md))
            print(rows[-1], file=sys.stderr, flush=True)
    table = write_merged_table(rows, RESULTS, "md_equivalence", "key")
    checks = write_merged_table(verdicts(table.to_dict("records")), RESULTS, "md_equivalence_verdicts", "key")
    print(table.to_string(index=False))
    print(checks.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
