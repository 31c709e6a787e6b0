"""Independent repeats of one PMF combined: mean, between-repeat standard error, agreement.

``repeats: N`` in a PMF spec runs N copies of the whole PMF, each from its own packing
(packmol seed + r - 1) and velocity seed (+ r - 1): repeat 1 in ``results/<system>/``, repeat
r >= 2 in ``results/<system>+r<r>/``. A slow motion that no window of one run ever made (a
shell that never rearranged, an anion that never left) biases that run without any
single-run check noticing; different packings start it elsewhere, so only the spread
between repeats measures it.

For each headline number (dG_barrier, dG, dG_ads, dG_barrier_in): the mean over repeats, the
between-repeat standard error sd / sqrt(N) (the reported error), the mean within-run
error beside it, and a chi^2 test of the repeats against their within-run errors
(``repeats_agree``: p >= 1e-3). ``converged`` needs every repeat converged and, with N >= 2,
the repeats to agree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from solvmd.io import read_json, write_json_atomic

QUANTITIES = ("dG_barrier", "dG", "dG_ads", "dG_barrier_in")
MIN_AGREEMENT_P = 1e-3
REPEATS_JSON = "repeats.json"
SUFFIX = "+r"  # results/<system>+r<r>/: repeat r >= 2 of <system>


def repeat_system(system: str, r: int) -> str:
    """Results folder name of repeat ``r`` (1-based) of ``system``."""
    if r < 1:
        raise ValueError(f"repeat numbers start at 1, got {r}")
    return system if r == 1 else f"{system}{SUFFIX}{r}"


def split_repeat(name: str) -> tuple[str, int]:
    """('li_bulk+r3') -> ('li_bulk', 3); a plain system name is repeat 1."""
    base, sep, r = name.rpartition(SUFFIX)
    if sep and r.isdigit() and int(r) >= 2:
        return base, int(r)
    return name, 1


def _value(barrier: dict, name: str) -> tuple[float | None, float | None]:
    block = (barrier.get("adsorption") or {}) if name in ("dG_ads", "dG_barrier_in") else barrier
    return block.get(f"{name}_kJ_mol"), block.get(f"{name}_err_kJ_mol")


def combine_quantity(values: list[float], within: list[float]) -> dict:
    """Mean, between-repeat SE and the chi^2 agreement of N repeat values (kJ/mol)."""
    v, w = np.asarray(values, float), np.asarray(within, float)
    n = len(v)
    out = {"n_repeats": n, "values_kJ_mol": v.round(4).tolist(), "within_err_kJ_mol": w.round(4).tolist(),
           "mean_kJ_mol": round(float(v.mean()), 4), "mean_within_err_kJ_mol": round(float(w.mean()), 4)}
    if n < 2:
        return {**out, "err_kJ_mol": round(float(w[0]), 4), "error_kind": "within-run (one repeat)",
                "between_sd_kJ_mol": None, "chi2": None, "p_agree": None}
    sd = float(v.std(ddof=1))
    chi2 = float(np.sum(((v - v.mean()) / np.maximum(w, 1e-12)) ** 2)) if np.all(w > 0) else float("inf")
    return {**out, "err_kJ_mol": round(sd / math.sqrt(n), 4), "error_kind": f"between-repeat standard error "
            f"sd/sqrt(N), N = {n}", "between_sd_kJ_mol": round(sd, 4), "chi2": round(chi2, 3),
            "p_agree": float(stats.chi2.sf(chi2, n - 1))}


def combine_barriers(barriers: list[dict]) -> dict:
    """The repeats.json content from the barrier.json dicts of repeats 1..N of one PMF."""
    if not barriers:
        raise ValueError("no repeats to combine")
    out: dict = {"n_repeats": len(barriers), "quantities": {}}
    for name in QUANTITIES:
        pairs = [_value(b, name) for b in barriers]
        if all(v is not None and e is not None for v, e in pairs):
            out["quantities"][name] = combine_quantity([v for v, _ in pairs], [e for _, e in pairs])
    unconverged = [f"repeat {i + 1}: {b.get('converged_reason')}" for i, b in enumerate(barriers)
                   if not b.get("converged")]
    disagree = [f"repeats disagree beyond their within-run errors in {n} (values {q['values_kJ_mol']}, chi2 "
                f"{q['chi2']:.1f} for {len(barriers) - 1} dof): a slow motion the single runs did not sample"
                for n, q in out["quantities"].items() if q["p_agree"] is not None and q["p_agree"] < MIN_AGREEMENT_P]
    notes = ["one repeat only: a slow motion the run never made is untested (repeats: >= 2)"] \
        if len(barriers) == 1 else []
    out["converged"] = not unconverged and not disagree
    out["converged_reason"] = "; ".join(unconverged + disagree + notes) or "all repeats converged and agree"
    out["error_kind"] = ("between-repeat standard error" if len(barriers) > 1 else "within-run (one repeat)")
    return out


def combine_files(paths: list[str | Path], out: str | Path) -> dict:
    """Read barrier.json files (repeat 1 first), write ``out`` (repeats.json), return its content."""
    barriers = [read_json(p, "barrier.json") for p in paths]
    data = {**combine_barriers(barriers), "barriers": [str(p) for p in paths]}
    write_json_atomic(out, data)
    return data
