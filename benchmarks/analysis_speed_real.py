"""Speed of solvmd's speciation analysis vs `solvation-analysis` on REAL trajectories (not a test).

    python -m venv --system-site-packages /tmp/sa && /tmp/sa/bin/pip install solvation_analysis==0.4.2
    /tmp/sa/bin/python benchmarks/analysis_speed_real.py [--repeat 50]

The trajectories are the ones solvation-analysis ships for its own tests (on PyPI):
LiPF6 in FEC + one of four ethyl acetates (EA, EAf, fEA, fEAf; OpenMM, 8.5k atoms, box set
from its conftest.py as its tests do) and LiPF6 in BN/FEC (LAMMPS, 7.1k atoms). Each has 10
frames; the file is read ``--repeat`` times in a row (MDAnalysis ChainReader) to give 500
frames. Partners are the donor atoms: F of PF6, O of the esters and carbonates, N of BN
(molecules told apart as that package's conftest.py does). Everything else, the comparison
of the numbers included, is :mod:`analysis_speed` (same cutoffs, RDF bins, classes), one thread.
Writes ``benchmarks/results/analysis_speed_real.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import analysis_speed as bench  # noqa: E402

EAX_BOXES = {"ea": 45.760393, "eaf": 47.844380, "fea": 48.358954, "feaf": 50.023129}  # its conftest.py
OUT = Path(__file__).parent / "results" / "analysis_speed_real.csv"


class _SetBox:
    """The DCD files carry no box: set it on every frame read (as that package's conftest.py does with
    ``set_dimensions``, minus the ``threadpoolctl`` scan MDAnalysis transformations run per frame,
    which cost more than solvmd's whole per-frame analysis here)."""

    def __init__(self, L: float):
        self.dims = np.array([L, L, L, 90.0, 90.0, 90.0], dtype=np.float32)

    def __call__(self, ts):
        ts.dimensions = self.dims
        return ts


def eax(data: Path, name: str, repeat: int):
    """(universe, topology, trajectory, cation, partners) of one LiPF6 / FEC / EAx electrolyte."""
    import MDAnalysis as mda

    d = data / "eax_data" / name
    top, trj = d / "topology.pdb", d / "trajectory_equil.dcd"
    u = mda.Universe(str(top), [str(trj)] * repeat)
    u.trajectory.add_transformations(_SetBox(EAX_BOXES[name]))
    lengths = np.array([r.atoms.n_atoms for r in u.residues])
    cut = int(np.unique(lengths, return_index=True)[1][2])  # last EAx residue id, as its conftest.py finds it
    partners = {"PF6": "element F and byres element P", "EAx": f"element O and resid 1:{cut}",
                "FEC": f"element O and resid {cut + 1}:600"}
    return u, top, trj, "element Li", partners


def bn_fec(data: Path, repeat: int):
    import MDAnalysis as mda

    d = data / "bn_fec_data"
    top, trj = d / "bn_fec.data", d / "bn_fec_short_wrap.dcd"
    u = mda.Universe(str(top), [str(trj)] * repeat)
    u.add_TopologyAttr("name", values=np.loadtxt(d / "bn_fec_elements.csv", dtype=str))
    partners = {"PF6": "name F and byres type 20", "BN": "name N and byres type 5", "FEC": "name O and byres type 19"}
    return u, top, trj, "type 22", partners


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="solvation_analysis/tests/data (default: the installed package's)")
    ap.add_argument("--repeat", type=int, default=50, help="read each 10-frame file this many times")
    ap.add_argument("--r-max", type=float, default=8.0)
    ap.add_argument("--bin", type=float, default=0.05)
    ap.add_argument("--systems", nargs="+", default=[*EAX_BOXES, "bn_fec"])
    ap.add_argument("--trials", type=int, default=3, help="time each tool this many times, keep the fastest "
                    "(a shared machine: the fastest run is the least disturbed one)")
    args = ap.parse_args(argv)
    import solvation_analysis

    data = args.data or Path(solvation_analysis.__file__).parent / "tests" / "data"
    warnings.simplefilter("ignore")
    rows = []
    for name in args.systems:
        u, top, trj, cation, partners = bn_fec(data, args.repeat) if name == "bn_fec" else eax(data, name, args.repeat)
        kw = dict(cation=cation, partners=partners, anion="PF6")
        u.trajectory[-1], u.trajectory[0]  # noqa: B018 - build offsets before timing
        t_ours = t_sa = float("inf")
        for _ in range(args.trials):
            res, t = bench.run_solvmd(top, trj, args.r_max, args.bin, False, u=u, **kw)
            t_ours = min(t_ours, t)
        cutoffs = {p: res.cutoffs[p]["cutoff_A"] for p in partners}
        for _ in range(args.trials):
            solute, anion_sa, t = bench.run_solvation_analysis(top, trj, cutoffs, args.r_max, args.bin, False, u=u, **kw)
            t_sa = min(t_sa, t)
        cmp = bench.compare(res, solute, anion_sa, partners)
        diff = max(abs(a - b) for _, a, b in cmp)
        row = {"system": name, "n_atoms": u.atoms.n_atoms, "n_frames": int(u.trajectory.n_frames),
               "cutoffs_A": " ".join(f"{p}:{c:.2f}" for p, c in cutoffs.items() if c),
               "solvmd_s": round(t_ours, 2), "solvation_analysis_s": round(t_sa, 2),
               "speedup": round(t_sa / t_ours, 2), "max_abs_diff": f"{diff:.1e}", "n_compared": len(cmp)}
        print(row, flush=True)
        rows.append(row)
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT, "w", newline="") as fh:
        fh.write(f"# python benchmarks/analysis_speed_real.py --repeat {args.repeat} --trials {args.trials}; host "
                 f"{platform.node()} (shared, 2 cores), one thread, fastest of the trials, solvation-analysis "
                 f"{solvation_analysis.__version__}\n")
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
