"""Sample until the error is small enough: extension rounds planned by the estimate.

With ``target_error_kJ_mol`` in a PMF spec, every estimate compares the headline error (ΔG‡,
or ΔG_ads for an adsorption coordinate) with the target and, when it is larger and the
budget ``max_sample_ps`` per window is not used up, plans one more round in ``extend.json``:

- the sampled time needed, from error ~ 1/sqrt(time): t_new = t (err/target)^2, at least 1.25 t
  and at most ``max_sample_ps``;
- independent windows: only the windows that contribute most to the error (the upper half by
  the headline variance from resampling that window alone), each continued from its end state
  as ``window_<k>.s<j>.npz``; exchange: every replica, the run continued from its checkpoint.

Rerunning the same command (``snakemake`` reads ``extend.json`` when it builds the job list)
samples the round and estimates again, until the target is met or the budget is used; the
``sampling`` block of ``barrier.json`` says which. Units: ps and kJ/mol.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from solvmd import records
from solvmd.io import write_json_atomic
from solvmd.pmf_spec import PMFSpec

MIN_GROWTH = 1.25  # a round adds at least a quarter of what was sampled
CONTRIBUTION_BOOTSTRAP = 8  # resamples of one window for its share of the error


def rounds(out_dir) -> list[dict]:
    """The planned extension rounds of a PMF folder ([] when none)."""
    path = Path(out_dir) / records.EXTEND_JSON
    return json.loads(path.read_text())["rounds"] if path.is_file() else []


def window_segments(out_dir, k: int) -> list[int]:
    """Segments of window k: 1, then every planned extension that includes it."""
    return [1] + [r["segment"] for r in rounds(out_dir) if k in r.get("windows", [])]


def previous_segment(out_dir, k: int, segment: int) -> int:
    """The segment of window k that extension ``segment`` continues (not always segment - 1: a
    window can sit out a round)."""
    earlier = [j for j in window_segments(out_dir, k) if j < segment]
    if segment not in window_segments(out_dir, k) or not earlier:
        raise ValueError(f"{out_dir}/{records.EXTEND_JSON} plans no segment {segment} for window {k}")
    return earlier[-1]


def extra_ps(out_dir, k: int, segment: int) -> float:
    """Sampling time (ps) of extension ``segment`` of window k (independent windows)."""
    for r in rounds(out_dir):
        if r["segment"] == segment and k in r["windows"]:
            return float(r["extra_ps"][str(k)])
    raise ValueError(f"{out_dir}/{records.EXTEND_JSON} plans no segment {segment} for window {k}")


def exchange_segments(out_dir) -> list[int]:
    return [1] + [r["segment"] for r in rounds(out_dir)]


def exchange_total_ps(spec: PMFSpec, out_dir, segment: int) -> float:
    """Sampled time per replica (ps) an exchange run must reach in ``segment``."""
    totals = {r["segment"]: float(r["total_ps"]) for r in rounds(out_dir)}
    return spec.sample_ps if segment == 1 else totals[segment]


def _headline(barrier: dict) -> tuple[str, float | None]:
    from solvmd.pmf.convergence import _headline_error, headline_name

    name = headline_name(barrier)
    return name, _headline_error(barrier, name)


def window_contributions(windows, x_n, N_k, u_kn, f_k, edges, kT, quantity, volume, seed: int = 0) -> np.ndarray:
    """Variance of the headline quantity (kJ/mol^2) when only window i is block-resampled, per window."""
    from solvmd.pmf.mbar import _bin_f, _log_weights, block_indices, solve_mbar_newton

    rng = np.random.default_rng(seed)
    offs = np.concatenate([[0], np.cumsum(N_k)])
    out = []
    for i in range(len(N_k)):
        vals = []
        for _ in range(CONTRIBUTION_BOOTSTRAP):
            parts = [np.arange(offs[j], offs[j + 1]) if j != i else offs[i] + block_indices(N_k[i], rng)
                     for j in range(len(N_k))]
            n_b = np.array([len(p) for p in parts])
            idx = np.concatenate(parts)
            ub = u_kn[:, idx]
            F = kT * _bin_f(x_n[idx], _log_weights(ub, n_b, solve_mbar_newton(ub, n_b, f_k)), edges) + volume
            vals.append(float(quantity(F)))
        out.append(float(np.nanvar(vals, ddof=1)))
    return np.array(out)


def plan_extension(result, spec: PMFSpec | None, out_dir: Path, contributions: np.ndarray | None = None) -> dict:
    """The ``sampling`` block of barrier.json; writes the next round to extend.json when one is due."""
    if spec is None or spec.target_error_kJ_mol is None:
        return {"status": "no target", "note": "set target_error_kJ_mol (and max_sample_ps) to sample until met"}
    name, err = _headline(result.barrier)
    budget = spec.max_sample_ps or spec.sample_ps
    sampled = np.array([len(w.x) * w.dt_sample_ps for w in result.windows])
    base = {"target_error_kJ_mol": spec.target_error_kJ_mol, "headline": name, "error_kJ_mol": err,
            "max_sample_ps": budget, "sampled_ps_per_window": [round(float(t), 3) for t in sampled],
            "rounds_so_far": len(rounds(out_dir))}
    if err is not None and err <= spec.target_error_kJ_mol:
        return {**base, "status": "target met"}
    open_ = sampled < budget - 1e-6
    if not open_.any():
        return {**base, "status": "budget used", "note": f"every window has sampled max_sample_ps = {budget:g} ps"}
    t = float(np.median(sampled[open_]))  # the open windows grow to one common length
    factor = MIN_GROWTH if err is None or not math.isfinite(err) else max(MIN_GROWTH,
                                                                          (err / spec.target_error_kJ_mol) ** 2)
    new_total = min(budget, t * factor)
    segment = len(rounds(out_dir)) + 2
    if spec.sampler == "exchange":
        plan = {"segment": segment, "total_ps": round(new_total, 3)}
    else:
        pick = [i for i in _worst_half(contributions, open_) if new_total - sampled[i] > 1e-3]
        extra = {str(result.windows[i].k_index): round(float(new_total - sampled[i]), 3) for i in pick}
        plan = {"segment": segment, "windows": sorted(int(k) for k in extra), "extra_ps": extra}
    plan["reason"] = f"{name} error {err} kJ/mol > target {spec.target_error_kJ_mol:g}"
    data = {"rounds": rounds(out_dir) + [plan]}
    write_json_atomic(Path(out_dir) / records.EXTEND_JSON, data)
    return {**base, "status": "extending", "next_round": plan,
            "note": "rerun the same command (or snakemake) to sample this round and estimate again"}


def _worst_half(contributions: np.ndarray | None, open_: np.ndarray) -> list[int]:
    """Indices (into the estimate's window order) of the open windows in the upper half of the error."""
    idx = np.nonzero(open_)[0]
    if contributions is None or not np.all(np.isfinite(contributions[idx])):
        return idx.tolist()
    c = contributions[idx]
    return idx[c >= np.median(c)].tolist()
