"""Interface density check: the liquid in the middle of an electrolyte slab above a sheet
must have the density of the same electrolyte in bulk NPT (issue 4: within 3 %).

    python benchmarks/interface_density.py --bulk demo_li_tfsi_dol_dme \
        --interface iface_demo_li_tfsi_dol_dme_znn4 --equilibrate-ps 20 --production-ps 60

1. bulk NPT of the electrolyte (isotropic barostat) -> mean production density rho_bulk;
2. the interface recipe rebuilt with ``density: {source: md}`` pointing at that run, so the
   slab is packed at rho_bulk, then z-only NPT (x, y fixed by the frozen sheet);
3. ``solvmd analyze`` interfacial tables: mass density in the mid-slab region (away from
   the sheet and its periodic image) vs rho_bulk.

Writes benchmarks/results/interface_density.{csv,md} (one row per interface, merged).
Resumable: finished stages are skipped, killed MD resumes from its checkpoint. Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from common import benchmark_protocol, write_merged_table
from solvmd import analysis
from solvmd.assembly.interface import build_interface
from solvmd.assembly.system import build_system
from solvmd.md.engine import run_md
from solvmd.recipe import load_interface_recipe, load_recipe

ROOT = Path(__file__).resolve().parent.parent


def _summary(out: Path) -> dict[str, tuple[float, float]]:
    """{quantity: (value, std)} from interface.csv."""
    t = pd.read_csv(out / "interface.csv")
    return {r.quantity: (float(r.value), float(r.std)) for r in t.itertuples()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bulk", default="demo_li_tfsi_dol_dme", help="bulk recipe name in systems/")
    ap.add_argument("--interface", default="iface_demo_li_tfsi_dol_dme_znn4", help="interface recipe in systems/")
    ap.add_argument("--equilibrate-ps", type=float, default=20.0)
    ap.add_argument("--production-ps", type=float, default=60.0)
    ap.add_argument("--platform", default="auto")
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "interface_density"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    protocol = benchmark_protocol(args.equilibrate_ps, args.production_ps, args.platform)
    work = Path(args.workdir)
    bulk_build, bulk_md = work / args.bulk / "build", work / args.bulk / "md"
    if not (bulk_build / "manifest.json").exists():
        build_system(load_recipe(ROOT / "systems" / f"{args.bulk}.yaml"), bulk_build)
    bulk_info = run_md(bulk_build, bulk_md, protocol)

    rec = load_interface_recipe(ROOT / "systems" / f"{args.interface}.yaml")
    rec = rec.model_copy(update={"density": rec.density.model_copy(update={"source": "md", "path": str(bulk_md)})})
    ibuild, imd, ian = (work / args.interface / d for d in ("build", "md", "analysis"))
    if not (ibuild / "manifest.json").exists():
        build_interface(rec, ibuild)
    iface_info = run_md(ibuild, imd, protocol)
    spec = analysis.spec_from_manifest(ibuild, imd)
    tables = analysis.run_analysis(spec, ian, verbose=False)
    settings = analysis.interface_settings_from_manifest(ibuild)
    analysis.run_interface_analysis(spec, settings, ian, results=tables)
    s = _summary(ian)
    man = json.loads((ibuild / "manifest.json").read_text())
    rho_bulk = float(bulk_info["density_production_mean_g_cm3"])
    rho_mid, rho_mid_std = s["density_mid_slab_g_cm3"]
    dev = 100.0 * (rho_mid / rho_bulk - 1.0)
    row = {"interface": args.interface, "bulk": args.bulk, "n_atoms": man["n_atoms"],
           "rho_bulk_g_cm3": round(rho_bulk, 4),
           "rho_bulk_std_g_cm3": round(float(bulk_info.get("density_production_std_g_cm3") or float("nan")), 4),
           "rho_mid_slab_g_cm3": round(rho_mid, 4), "rho_mid_slab_std_g_cm3": round(rho_mid_std, 4),
           "deviation_pct": round(dev, 2), "tolerance_pct": 3.0, "verdict": "pass" if abs(dev) <= 3.0 else "MISS",
           "production_ps": args.production_ps, "platform": iface_info["platform"],
           "ns_per_day": round(float(iface_info["ns_per_day"]), 2)}
    print(row, file=sys.stderr)
    print(write_merged_table([row], Path(args.out), "interface_density", key="interface").to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
