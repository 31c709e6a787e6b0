"""MSD speed: solvmd's msd_fft against tidynamics and MDAnalysis' EinsteinMSD (issue 27).

    python benchmarks/msd_fft.py            # tidynamics importable (pip install tidynamics), else those rows are skipped

solvmd.analysis.transport.msd_fft is the FFT algorithm of Calandrini et al., Collection SFN
12, 201 (2011) - the one tidynamics.msd implements for one particle and MDAnalysis'
EinsteinMSD(fft=True) calls once per particle. solvmd does all particles and axes in one
FFT of a (frames, 3N) array. This script times the three on the same random walks (the MDAnalysis
row includes its pass over an in-memory trajectory), checks they agree, and writes
benchmarks/results/msd_fft.{csv,md}.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import RESULTS, write_fresh_table  # noqa: E402

from solvmd.analysis.transport import msd_fft  # noqa: E402

CASES = [(2000, 100), (10000, 100), (10000, 1000)]  # (frames, particles)


def _best(fn, repeat=3) -> tuple[float, np.ndarray]:
    out, best = None, float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    try:
        import tidynamics
    except ImportError:
        tidynamics = None
    rows = []
    for F, N in CASES:
        x = np.cumsum(np.random.default_rng(0).normal(size=(F, N, 3)), axis=0)
        t_s, ref = _best(lambda: msd_fft(x))
        row = {"frames": F, "particles": N, "solvmd_msd_fft_s": round(t_s, 4)}
        if tidynamics is not None:
            t_t, tid = _best(lambda: np.mean([tidynamics.msd(x[:, i]) for i in range(N)], axis=0))
            row.update(tidynamics_loop_s=round(t_t, 4), speedup_vs_tidynamics=round(t_t / t_s, 1),
                       max_rel_diff_tidynamics=f"{np.max(np.abs(tid[1:] - ref[1:]) / ref[1:]):.1e}")
            if F * N <= 2_000_000:
                from MDAnalysis.analysis.msd import EinsteinMSD
                from synthetic import build_universe

                u = build_universe([("X", ["C1"], ["C"])] * N, x, [1e4, 1e4, 1e4, 90, 90, 90])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t_m, m = _best(lambda: EinsteinMSD(u, select="all", msd_type="xyz", fft=True).run()
                                   .results.timeseries, repeat=1)
                row.update(mdanalysis_einsteinmsd_s=round(t_m, 4), speedup_vs_mdanalysis=round(t_m / t_s, 1),
                           max_rel_diff_mdanalysis=f"{np.max(np.abs(m[1:] - ref[1:]) / ref[1:]):.1e}")
        rows.append(row)
        print(row, flush=True)
    cols = ["frames", "particles", "solvmd_msd_fft_s", "tidynamics_loop_s", "speedup_vs_tidynamics",
            "max_rel_diff_tidynamics", "mdanalysis_einsteinmsd_s", "speedup_vs_mdanalysis", "max_rel_diff_mdanalysis"]
    write_fresh_table(rows, RESULTS, "msd_fft", cols)


if __name__ == "__main__":
    main()
