"""Does the anneal make ion shells forget packmol's start? Shell turnover after anneal vs 298 K.

    python benchmarks/anneal_shells.py --system demo_li_tfsi_dol_dme --anneal-K 450 --anneal-ps 20 --cool-ps 10

Two runs from the same packed build, the same total MD length:
- ``annealed``: heat, NVT at ``--anneal-K`` for ``--anneal-ps``, cool to 298.15 K over ``--cool-ps``
- ``298K``: heat, then NPT at 298.15 K for ``anneal_ps + cool_ps``
For every cation the set of molecules with an O, N or F atom within ``--shell-nm`` (first
shell) is taken at the start and at the end of each run; the table reports the fraction
of cations whose set changed, and the mean number of molecules that left the shell. Two
starts: the packed structure itself (packmol keeps atoms >= 2 A apart, so its "shells" are
sparse and dissolve in any run), and the first real shells, after minimization and the
2 ps heating that both runs share (read from the annealed run's heat.chk). Writes benchmarks/results/anneal_shells.{csv,md}. Not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import openmm
from MDAnalysis.lib.distances import capped_distance
from openmm import unit

from common import RESULTS, ROOT, write_merged_table
from solvmd.assembly.system import build_system
from solvmd.md.checkpoints import read_checkpoint
from solvmd.md.engine import run_md
from solvmd.md.protocol import load_protocol
from solvmd.recipe import load_recipe

CATIONS = "element Li Mg"
DONORS = "element O N F"


def shells(pdb: Path, shell_A: float, positions_A: np.ndarray | None = None,
           box_A: np.ndarray | None = None) -> list[frozenset[int]]:
    """Per cation (in index order), the residues with a donor atom within ``shell_A``
    (coordinates of ``pdb``, or ``positions_A`` / ``box_A`` on its topology)."""
    u = mda.Universe(str(pdb))
    if positions_A is not None:
        u.atoms.positions = positions_A
        u.dimensions = np.concatenate([box_A, [90.0, 90.0, 90.0]])
    cations, donors = u.select_atoms(CATIONS), u.select_atoms(DONORS)
    pairs = capped_distance(cations.positions, donors.positions, shell_A, box=u.dimensions, return_distances=False)
    out = [set() for _ in range(len(cations))]
    for i, j in pairs:
        out[i].add(int(donors[j].resindex))
    return [frozenset(s) for s in out]


def heated_state(build: Path, chk: Path) -> tuple[np.ndarray, np.ndarray]:
    """Positions and box edges (A) stored in a solvmd checkpoint of ``build``'s System."""
    system = openmm.XmlSerializer.deserialize((build / "system.xml").read_text())
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    ctx.loadCheckpoint(read_checkpoint(chk, "heat").payload)
    state = ctx.getState(getPositions=True)
    box = np.diag(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom))
    return state.getPositions(asNumpy=True).value_in_unit(unit.angstrom), box


def turnover(start: list[frozenset[int]], end: list[frozenset[int]]) -> tuple[float, float]:
    """Fraction of cations whose shell set changed; mean molecules per cation no longer in the shell."""
    changed = np.mean([a != b for a, b in zip(start, end)])
    left = np.mean([len(a - b) for a, b in zip(start, end)])
    return float(changed), float(left)


def _final(md: Path) -> tuple[np.ndarray, np.ndarray]:
    """Final positions and box edges (A) of a finished run (final.pdb)."""
    u = mda.Universe(str(md / "final.pdb"))
    return u.atoms.positions.copy(), u.dimensions[:3].copy()


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
    shell_A = args.shell_nm * 10.0
    for name, stages in runs.items():
        run_md(work / "build", work / name, load_protocol(None, {**common, **stages}))
    pdb = work / "build" / "system.pdb"
    starts = {"packed": shells(pdb, shell_A),
              "after heat": shells(pdb, shell_A, *heated_state(work / "build", work / "annealed" / "heat.chk"))}
    rows = []
    for name in runs:
        end = shells(pdb, shell_A, *_final(work / name))
        for start_name, start in starts.items():
            changed, left = turnover(start, end)
            rows.append({"key": f"{args.system}/{name}/{start_name}", "system": args.system, "run": name,
                         "protocol": f"{args.anneal_K:g} K {args.anneal_ps:g} ps + cool {args.cool_ps:g} ps"
                         if name == "annealed" else f"298.15 K {args.anneal_ps + args.cool_ps:g} ps",
                         "shells_from": start_name, "n_cations": len(start),
                         "start_molecules_per_cation": round(float(np.mean([len(s) for s in start])), 3),
                         "fraction_shell_changed": round(changed, 3),
                         "molecules_left_per_cation": round(left, 3), "shell_cutoff_nm": args.shell_nm})
            print(rows[-1], file=sys.stderr, flush=True)
    print(write_merged_table(rows, RESULTS, "anneal_shells", "key").to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
