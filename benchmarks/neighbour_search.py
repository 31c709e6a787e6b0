"""Neighbour search on REAL trajectories: solvmd's numpy cell list vs MDAnalysis ``capped_distance``.

    pip download solvation_analysis==0.4.2 --no-deps -d /tmp/sa && unzip -q /tmp/sa/*.whl -d /tmp/sa
    python benchmarks/neighbour_search.py --data /tmp/sa/solvation_analysis/tests/data

(or ``pip install solvation_analysis`` and omit ``--data``). The data are that package's own
test trajectories: four LiPF6/FEC/EAx electrolytes (OpenMM, 8.5k atoms, 10 frames each, the box
set from its conftest.py as its own tests do) and LiPF6/BN/FEC (LAMMPS, 7.1k atoms, 10 frames).

The timed call is what solvmd's per-frame search does (``solvmd.analysis.contacts.SolvationPass``):
all cation atoms x all donor atoms (O, N, F) within the search range, minimum image, distances in
Angstrom. Each frame is searched ``--repeat`` times by each method (one thread, positions already
read). Before timing, the two pair sets are checked to be identical (same pairs, distances equal
to 1e-4 A: the cell list works in float64, capped_distance in float32/64 mixed).
Writes ``benchmarks/results/neighbour_search.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

EAX_BOXES = {"ea": 45.760393, "eaf": 47.844380, "fea": 48.358954, "feaf": 50.023129}  # from its conftest.py
OUT = Path(__file__).parent / "results" / "neighbour_search.csv"


def data_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    import solvation_analysis

    return Path(solvation_analysis.__file__).parent / "tests" / "data"


def systems(data: Path):
    """(name, Universe, cation group, donor group) for the five electrolytes."""
    import MDAnalysis as mda
    from MDAnalysis import transformations

    warnings.simplefilter("ignore")
    for name, L in EAX_BOXES.items():
        d = data / "eax_data" / name
        u = mda.Universe(str(d / "topology.pdb"), str(d / "trajectory_equil.dcd"))
        u.trajectory.add_transformations(transformations.boxdimensions.set_dimensions([L, L, L, 90, 90, 90]))
        yield name, u, u.select_atoms("element Li"), u.select_atoms("element O N F")
    d = data / "bn_fec_data"
    u = mda.Universe(str(d / "bn_fec.data"), str(d / "bn_fec_short_wrap.dcd"))
    u.add_TopologyAttr("name", values=np.loadtxt(d / "bn_fec_elements.csv", dtype=str))
    yield "bn_fec", u, u.select_atoms("name Li"), u.select_atoms("name O N F")


def time_method(fn, frames, cutoff, repeat) -> float:
    """Seconds per frame (best of the per-frame means over ``repeat`` sweeps)."""
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for ref, conf, dims in frames:
            fn(ref, conf, cutoff, dims)
        best = min(best, (time.perf_counter() - t) / len(frames))
    return best


def same_pairs(a, b) -> bool:
    (pa, da), (pb, db) = a, b
    if len(pa) != len(pb):
        return False
    oa, ob = np.lexsort(pa.T[::-1]), np.lexsort(pb.T[::-1])
    return bool(np.array_equal(pa[oa], pb[ob]) and np.allclose(da[oa], db[ob], atol=1e-4))


def main(argv=None) -> None:
    from MDAnalysis.lib.distances import capped_distance

    from solvmd.geometry import pairs_within as _cell_list_pairs

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="solvation_analysis/tests/data (default: the installed package's)")
    ap.add_argument("--cutoffs", type=float, nargs="+", default=[3.0, 8.0],
                    help="search ranges, A (3: first shell only; 8: solvmd's RDF range in the speed benchmark)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    def capped(ref, conf, cutoff, dims):
        return capped_distance(ref, conf, cutoff, box=dims, return_distances=True)

    rows = []
    for name, u, cat, don in systems(data_dir(args.data)):
        frames = [(cat.positions.copy(), don.positions.copy(), ts.dimensions.copy()) for ts in u.trajectory]
        for cutoff in args.cutoffs:
            for ref, conf, dims in frames:
                if not same_pairs(_cell_list_pairs(ref, conf, cutoff, dims), capped(ref, conf, cutoff, dims)):
                    raise SystemExit(f"{name}: the two searches disagree at cutoff {cutoff} A")
            t_cell = time_method(_cell_list_pairs, frames, cutoff, args.repeat)
            t_cap = time_method(capped, frames, cutoff, args.repeat)
            n_pairs = np.mean([len(_cell_list_pairs(*f[:2], cutoff, f[2])[0]) for f in frames])
            row = {"system": name, "n_atoms": u.atoms.n_atoms, "n_cations": cat.n_atoms, "n_donors": don.n_atoms,
                   "n_frames": len(frames), "cutoff_A": cutoff, "pairs_per_frame": round(float(n_pairs), 1),
                   "cell_list_ms": round(1e3 * t_cell, 3), "capped_distance_ms": round(1e3 * t_cap, 3),
                   "speedup": round(t_cap / t_cell, 2), "identical": True}
            print(row, flush=True)
            rows.append(row)
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT, "w", newline="") as fh:
        fh.write(f"# python benchmarks/neighbour_search.py; host {platform.node()}, one thread, "
                 f"best of {args.repeat} sweeps\n")
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
