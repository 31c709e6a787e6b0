"""Benchmark (not a test): wall time of one full PMF, windows one after another vs concurrently.

Each window is an independent job (what Snakemake fans out). Here the same PMF is run twice
from scratch: ``n_jobs=1`` (windows in sequence) and ``n_jobs=N`` (N processes, each on the
CPU platform with ``--threads`` threads), and the ratio of wall times is reported. The system
is the toy Li-O-like double well solvated in an LJ liquid (~500 atoms), or a real one with
``--system-xml/--state-xml/--topology/--spec``.

    python benchmarks/pmf_parallel.py --jobs 2
    python benchmarks/pmf_parallel.py --jobs 8 --system-xml results/X/build/system.xml \
        --state-xml results/X/md/final.xml --topology results/X/build/system.pdb --spec pmf.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per window job")
    ap.add_argument("--windows", type=int, default=12)
    ap.add_argument("--sample-ps", type=float, default=10.0)
    ap.add_argument("--platform", default="CPU")
    ap.add_argument("--system-xml")
    ap.add_argument("--state-xml")
    ap.add_argument("--topology")
    ap.add_argument("--spec", help="PMF spec YAML (real systems)")
    ap.add_argument("--out", help="keep outputs here (default: a temporary folder)")
    ap.add_argument("--json", help="write the result as JSON here")
    args = ap.parse_args(argv)

    from solvmd.pmf import toy
    from solvmd.pmf.estimate import estimate_pmf
    from solvmd.pmf_spec import load_spec
    from solvmd.pmf.umbrella import run_windows

    work = Path(args.out or tempfile.mkdtemp(prefix="pmf_bench_"))
    if args.system_xml:
        sx, st, top = args.system_xml, args.state_xml, args.topology
        spec = load_spec(args.spec)
    else:
        system, pos = toy.solvated_distance_double_well()
        sx, st = toy.write_inputs(system, pos, work / "inputs")
        top = None
        spec = toy.toy_spec(
            "distance", n_windows=args.windows, spacing_nm=None, k_kJ_mol_nm2=6000.0, equil_ps=2.0,
            sample_ps=args.sample_ps, timestep_fs=2.0, sample_interval_steps=50, friction_per_ps=1.0,
            platform=args.platform, init="pull", pull_nm_per_ns=20.0, n_bootstrap=20,
        )
    times = {}
    for label, n_jobs in (("sequential", 1), ("concurrent", args.jobs)):
        out = work / label / "pmf" / spec.name
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        run_windows(sx, st, spec, out, topology=top, n_jobs=n_jobs, platform=args.platform, threads=args.threads)
        t1 = time.perf_counter()
        res = estimate_pmf(out, spec, plots=False)
        t2 = time.perf_counter()
        times[label] = {"windows_s": t1 - t0, "total_s": t2 - t0, "n_jobs": n_jobs,
                        "dG_barrier_kJ_mol": res.barrier["dG_barrier_kJ_mol"]}
        print(f"{label:>10} (n_jobs={n_jobs}): prepare+windows {t1 - t0:7.1f} s, total {t2 - t0:7.1f} s, "
              f"dG_barrier {res.barrier['dG_barrier_kJ_mol']:.2f} kJ/mol")
    ratio = times["sequential"]["total_s"] / times["concurrent"]["total_s"]
    wratio = times["sequential"]["windows_s"] / times["concurrent"]["windows_s"]
    result = {
        "windows": len(spec.centers()), "jobs": args.jobs, "threads_per_job": args.threads,
        "cpu_count": os.cpu_count(), "platform": args.platform, **times,
        "speedup_total": ratio, "speedup_windows": wratio,
    }
    print(f"speed-up sequential/concurrent: total {ratio:.2f}x, window phase {wratio:.2f}x "
          f"({args.jobs} jobs x {args.threads} thread(s) on {os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
