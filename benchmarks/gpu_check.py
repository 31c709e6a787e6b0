"""The GPU check (run by benchmarks/gpu_check.sh on a lent GPU machine): one table of what a GPU does here.

    python benchmarks/gpu_check.py [--platform CUDA] [--quick]

Phases, each timed and each a row group of ``benchmarks/results/gpu_check_<card>.md`` (+ .csv):

1. ``probe``: ``solvmd platforms --probe`` (every device, the auto choice, the probe's numbers);
2. ``tests``: the CUDA-marked tests (``pytest -m cuda tests/test_cuda.py``), pass/fail counts;
3. ``md_speed``: bulk 1 M LiTFSI DOL/DME at 12 and 134 salt units (~1.8 k and ~20 k atoms),
   every variant of benchmarks/md_speed.py against stock OpenMM (Lorentz-Berthelot, 2 fs) on the
   same GPU, plus ``solvmd md`` end to end on the demo box;
4. ``interface``: the production Zn-N4 interface (~7.4 k atoms; ideal-mixing density), solvmd's
   split form against the exact form (a CustomNonbondedForce: how plain OpenMM does geometric
   mixing), 4 fs, benchmarks/interface_step.py.

``--quick --platform CPU``: a dry run on any machine (the demo box only, few steps; the
interface prebuilt by gpu_prepare.sh). A phase that fails is a row saying so; the table is
written whatever happens.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import pandas as pd

from common import RESULTS, ROOT, write_fresh_table

COLUMNS = ["phase", "system", "n_atoms", "variant", "ns_per_day", "ratio_to_baseline", "detail", "wall_s"]
INTERFACE = ROOT / "systems" / "iface_li_tfsi_dol_dme_znn4.yaml"


def card_name() -> str:
    """``NVIDIA H100 80GB HBM3`` from nvidia-smi, else the first GPU device solvmd sees, else ``no-gpu``."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout.strip().splitlines()
        if out:
            return out[0].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from solvmd.md.devices import list_devices

    gpus = [d for d in list_devices() if d.is_gpu]
    return gpus[0].name if gpus else "no-gpu"


def _run(cmd: list[str], timeout: float) -> tuple[int, str, float]:
    start = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        code, text = out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired as err:
        code, text = 124, f"timed out after {timeout:g} s: {(err.stdout or b'')[-2000:]!r}"
    return code, text, round(time.monotonic() - start, 1)


def phase_probe(platform: str) -> list[dict]:
    code, text, wall = _run([sys.executable, "-m", "solvmd.cli", "platforms", "--probe"], 600)
    print(text, flush=True)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith((f"{platform} ", "auto picks"))]
    return [{"phase": "probe", "variant": "solvmd platforms --probe", "detail": " | ".join(lines) or text[-300:],
             "wall_s": wall, "ns_per_day": None if code == 0 else "failed"}]


def phase_tests(quick: bool) -> list[dict]:
    code, text, wall = _run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/test_cuda.py"],
                            120 if quick else 300)
    print(text[-3000:], flush=True)
    summary = next((ln for ln in reversed(text.splitlines()) if " passed" in ln or " skipped" in ln
                    or " failed" in ln or "error" in ln), text[-200:])
    return [{"phase": "tests", "variant": "pytest -m cuda tests/test_cuda.py", "detail": f"exit {code}: {summary}",
             "wall_s": wall}]


def _md_speed_variants(whole_run_ps: float) -> set[str]:
    """The md_speed rows one run writes (older rows of the merged table are left out)."""
    from md_speed import VARIANTS

    return set(VARIANTS) | {f"solvmd md whole run ({whole_run_ps} ps, md.json)"}


def phase_md_speed(platform: str, quick: bool) -> list[dict]:
    units = ["12"] if quick else ["12", "134"]
    steps, ps = ("50", "0.4") if quick else ("2000", "20")
    start = time.monotonic()
    code, text, wall = _run([sys.executable, "benchmarks/md_speed.py", "--platform", platform, "--salt-units", *units,
                             "--steps", steps, "--blocks", "3", "--whole-run-ps", ps], 600)
    print(text[-4000:], flush=True)
    csv = RESULTS / f"md_speed_{platform}.csv"
    if code != 0 or not csv.exists():
        return [{"phase": "md_speed", "detail": f"exit {code}: {text[-300:]}", "wall_s": wall}]
    table = pd.read_csv(csv)
    sizes = set()
    for u in units:  # rows of this run: the sizes just built
        manifest = ROOT / "results" / "benchmarks" / "md_speed" / f"speed_{u}" / "manifest.json"
        if manifest.exists():
            sizes.add(json.loads(manifest.read_text())["n_atoms"])
    rows = [{"phase": "md_speed", "system": r["box"], "n_atoms": r["n_atoms"], "variant": r["variant"],
             "ns_per_day": r["ns_per_day"], "ratio_to_baseline": r["ratio_to_stock_LB_2fs"],
             "detail": "baseline: stock_LB_2fs (stock OpenMM, Lorentz-Berthelot, 2 fs)",
             "wall_s": round(time.monotonic() - start, 1)} for r in table.to_dict("records")
            if r["n_atoms"] in sizes and r["variant"] in _md_speed_variants(float(ps))]
    return rows or [{"phase": "md_speed", "detail": "no rows written", "wall_s": wall}]


def phase_interface(platform: str, quick: bool) -> list[dict]:
    recipe = INTERFACE  # prebuilt by gpu_prepare.sh (building an interface needs MDAnalysis)
    code, text, wall = _run([sys.executable, "benchmarks/interface_step.py", str(recipe), "--platform", platform,
                             "--forms", "split", "exact", "--density-estimate", "--steps", "20" if quick else "500",
                             "--threads", os.environ.get("SOLVMD_CPU_THREADS") or str(os.cpu_count() or 1)],
                            300 if quick else 420)
    print(text[-3000:], flush=True)
    csv = RESULTS / f"interface_step_{platform}.csv"
    if code != 0 or not csv.exists():
        return [{"phase": "interface", "system": recipe.stem, "detail": f"exit {code}: {text[-300:]}", "wall_s": wall}]
    table = pd.read_csv(csv)
    rows = table[table["recipe"] == recipe.stem].to_dict("records")
    exact = next((r for r in rows if r["form"] == "exact"), None)
    return [{"phase": "interface", "system": recipe.stem, "n_atoms": r["n_atoms"], "variant": f"{r['form']} (HMR, 4 fs)",
             "ns_per_day": r["ns_per_day_4fs"],
             "ratio_to_baseline": round(r["ns_per_day_4fs"] / exact["ns_per_day_4fs"], 3) if exact else None,
             "detail": f"baseline: exact form (CustomNonbondedForce); rms force error vs exact "
                       f"{r['rms_force_error_vs_exact']:.1e}", "wall_s": wall} for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--platform", default="CUDA")
    ap.add_argument("--quick", action="store_true", help="small sizes and few steps (a dry run of the script)")
    ap.add_argument("--phases", nargs="+", default=["probe", "tests", "md_speed", "interface"])
    args = ap.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    card, rows, start = card_name(), [], time.monotonic()
    phases = {"probe": lambda: phase_probe(args.platform), "tests": lambda: phase_tests(args.quick),
              "md_speed": lambda: phase_md_speed(args.platform, args.quick),
              "interface": lambda: phase_interface(args.platform, args.quick)}
    for name in args.phases:
        print(f"[gpu_check] {name} (t = {time.monotonic() - start:.0f} s)", flush=True)
        try:
            rows += phases[name]()
        except Exception as err:  # noqa: BLE001 - a broken phase is a row, the table is still written
            rows.append({"phase": name, "detail": f"{type(err).__name__}: {err}"})
    stamp = datetime.date.today().isoformat()
    rows.append({"phase": "total", "detail": f"{card}, platform {args.platform}, {stamp}",
                 "wall_s": round(time.monotonic() - start, 1)})
    stem = "gpu_check_" + "".join(c if c.isalnum() else "_" for c in card).strip("_") + ("_quick" if args.quick else "")
    table = write_fresh_table(rows, RESULTS, stem, COLUMNS)
    print(table.to_string(index=False))
    print(f"[gpu_check] wrote {RESULTS / stem}.md and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
