"""Does the anneal make ion shells forget packmol's start? Shell turnover after anneal vs 298 K.

    python benchmarks/anneal_shells.py --system demo_li_tfsi_dol_dme --anneal-K 450 --anneal-ps 20 --cool-ps 10

Two runs from the same packed build, the same total MD length:
- ``annealed``: heat, NVT at ``--anneal-K`` for ``--anneal-ps``, cool to 298.15 K over ``--cool-ps``
- ``298K``: heat, then NPT at 298.15 K for ``anneal_ps + cool_ps``
For every cation the set of molecules with an O, N or F atom within ``--shell-nm`` (first
shell) is taken at the packed start and at the end of each run; the table reports the
fraction of cations whose set changed, and the mean number of molecules that left the
shell. Writes benchmarks/results/anneal_shells.{csv,md}. Not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import MDAnalysis as mda
import numpy as np
from MDAnalysis.lib.distances import capped_distance

from common import RESULTS, ROOT, write_merged_table
from solvmd.build.system import build_system
from solvmd.md.engine import run_md
from solvmd.md.protocol import load_protocol
from solvmd.recipe import load_recipe

CATIONS = "element Li Mg"
DONORS = "element O N F"


def shells(pdb: Path, shell_A: float) -> list[frozenset[int]]:
    """Per cation (in index order), the residues with a donor atom within ``shell_A``."""
    u = mda.Universe(str(pdb))
    cations, donors = u.select_atoms(CATIONS), u.select_atoms(DONORS)
    pairs = capped_distance(cations.positions, donors.positions, shell_A, box=u.dimensions, return_distances=False)
    out = [set() for _ in range(len(cations))]
    for i, j in pairs:
        out[i].add(int(donors[j].resindex))
    return [frozenset(s) for s in out]


def turnover(start: list[frozenset[int]], end: list[frozenset[int]]) -> tuple[float, float]:
    """Fraction of cations whose shell set changed; mean molecules per cation no longer in the shell."""
    changed = np.mean([a != b for a, b in zip(start, end)])
    left = np.mean([len(a - b) for a, b in zip(start, end)])
    return float(changed), float(left)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="demo_li_tfsi_dol_dme")
    ap.add_argument("--anneal-K", type=float, default=450.0)
    ap.add_argument("--anneal-ps", type=float, default=20.0)
    ap.add_argument("--cool-ps", type=float, default=10.0)
    ap.add_argument("--shell-nm", type=float, default=0.28)
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "anneal_shells"))
    args = ap.parse_args(argv)
    work = Path(args.workdir) / args.system
    if not (work / "build" / "manifest.json").exists():
        build_system(load_recipe(ROOT / "systems" / f"{args.system}.yaml"), work / "build")
    common = dict(heat_ps=2.0, production_ps=0.4, report_interval_ps=0.4, frame_interval_ps=0.4,
                  checkpoint_interval_ps=0.4)
    runs = {
        "annealed": dict(anneal_K=args.anneal_K, anneal_ps=args.anneal_ps, cool_ps=args.cool_ps, equilibrate_ps=0.0),
        "298K": dict(equilibrate_ps=args.anneal_ps + args.cool_ps),
    }
    start = shells(work / "build" / "system.pdb", args.shell_nm * 10.0)
    rows = []
    for name, stages in runs.items():
        run_md(work / "build", work / name, load_protocol(None, {**common, **stages}))
        changed, left = turnover(start, shells(work / name / "final.pdb", args.shell_nm * 10.0))
        rows.append({"key": f"{args.system}/{name}", "system": args.system, "run": name,
                     "anneal": f"{args.anneal_K:g} K {args.anneal_ps:g} ps + cool {args.cool_ps:g} ps"
                     if name == "annealed" else f"298.15 K {args.anneal_ps + args.cool_ps:g} ps",
                     "n_cations": len(start), "fraction_shell_changed": round(changed, 3),
                     "molecules_left_per_cation": round(left, 3), "shell_cutoff_nm": args.shell_nm})
        print(rows[-1], file=sys.stderr, flush=True)
    print(write_merged_table(rows, RESULTS, "anneal_shells", "key").to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
