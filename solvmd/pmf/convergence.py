"""How far a PMF can be trusted: time-sliced estimates, neighbour-window consistency, a verdict.

Single-run checks (Grossfield's WHAM notes: a bootstrap "can only characterize the data you
have"; Zhu & Hummer, J. Comput. Chem. 33, 453 (2012)):

- **Forward / reverse**: the headline numbers from the first (forward) or last (reverse) fraction
  f of every window's samples, f = 0.25, 0.5, 0.75, 1 (``convergence.png``). The numbers are
  read at the CV points the full estimate located (bound state, transition state, far end;
  contact and bulk plateau), so the series show sampling, not a bin hopping.
- **Halves**: first half against second half of every window: z = |A - B| / sqrt(sA^2 + sB^2)
  with each half's own error.
- **Neighbour consistency** (Zhu & Hummer): windows i and i+1 each give an unbiased density
  exp(w_i(x)/kT) h_i(x) where they overlap; after one free constant they must agree within
  their counting noise (inflated by each window's statistical inefficiency g). A slow motion
  that one window sampled and its neighbour did not shows up as chi^2 far above its degrees
  of freedom.
- **Enough independent samples**: every window needs >= ``MIN_UNCORRELATED`` samples after
  subsampling by g; fewer means g itself is not measured.

The verdict is ``converged: true`` only when every check passes (and the error meets
``target_error_kJ_mol`` when the spec sets one); ``reasons`` names each failure. A slow
motion that no window ever made is invisible to all single-run checks: only independent
repeats (``repeats:``) reveal it, which is why the between-repeat spread is the headline
error when there are repeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from solvmd.pmf.mbar import (_bin_f, _log_weights, block_bootstrap, reduced_bias, sampler_energies,
                              solve_mbar_newton, subsample)
from solvmd.pmf.windows import Window

FRACTIONS = (0.25, 0.5, 0.75, 1.0)
MIN_UNCORRELATED = 50  # decorrelated samples per window: fewer and neither g nor a window histogram is measured
MAX_HALVES_Z = 3.0  # |first half - second half| / combined error above this: drifting
MIN_CONSISTENCY_P = 1e-3  # neighbour-window chi^2 p-value below this: the windows disagree
MIN_BIN_SAMPLES = 10  # raw samples a bin needs in both windows to enter the neighbour test
SLICE_BOOTSTRAP = 20  # bootstrap replicates of each time-sliced estimate (halves and the forward/reverse series)


@dataclass(frozen=True)
class Quantity:
    """A headline number of a PMF as a function of the binned F (kJ/mol): mean(F[a]) - mean(F[b])."""

    name: str
    plus: tuple[int, ...]
    minus: tuple[int, ...]

    def __call__(self, F: np.ndarray) -> np.ndarray:
        F = np.asarray(F)
        return np.mean(F[..., list(self.plus)], axis=-1) - np.mean(F[..., list(self.minus)], axis=-1)


def quantities(barrier: dict, cv_nm: np.ndarray) -> list[Quantity]:
    """The quantities to follow, at the bins the full estimate located (from a barrier.json dict)."""
    at = lambda x: (int(np.argmin(np.abs(cv_nm - x))),)  # noqa: E731
    out = []
    if "bound_state" in barrier:
        bound = at(barrier["bound_state"]["cv_nm"])
        out.append(Quantity("dG_barrier", at(barrier["transition_state"]["cv_nm"]), bound))
        out.append(Quantity("dG", at(barrier["far_end"]["cv_nm"]), bound))
    ads = barrier.get("adsorption")
    if ads:
        lo, hi = ads["plateau_nm"]
        plateau = tuple(int(i) for i in np.nonzero((cv_nm >= lo - 1e-9) & (cv_nm <= hi + 1e-9))[0])
        out.append(Quantity("dG_ads", at(ads["contact_cv_nm"]), plateau))
        out.append(Quantity("dG_barrier_in", at(ads["ts_in_cv_nm"]), plateau))
    return out


def sliced_pmf(windows: list[Window], edges: np.ndarray, kT: float, part, n_boot: int, seed: int,
               volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, bootstrap F) in kJ/mol on ``edges`` from the samples ``part(n)`` (a slice) of every window,
    decorrelated by their own g; ``volume`` (kJ/mol per bin) is added (the radial convention)."""
    ws = [w.sliced(part(len(w.x))) for w in windows]
    subsample(ws)
    x_n = np.concatenate([w.x_sub for w in ws])
    N_k = np.array([len(w.x_sub) for w in ws])
    u_kn = sampler_energies(ws)
    if u_kn is None:
        u_kn = reduced_bias(ws, x_n, kT)
    f_k = solve_mbar_newton(u_kn, N_k, np.zeros(len(ws)))
    F = kT * _bin_f(x_n, _log_weights(u_kn, N_k, f_k), edges) + volume
    boot = block_bootstrap(x_n, N_k, u_kn, f_k, edges, kT, n_boot, seed) + volume[None, :]
    return F, boot


def _value(q: Quantity, F, boot) -> tuple[float, float]:
    v = float(q(F))
    b = q(boot)
    b = b[np.isfinite(b)]
    return v, (float(np.std(b, ddof=1)) if len(b) > 1 else float("nan"))


def time_series(windows, edges, kT, qs: list[Quantity], volume, seed: int = 0) -> dict[str, list[dict]]:
    """Forward and reverse estimates of every quantity at each fraction in :data:`FRACTIONS`."""
    out = {q.name: [] for q in qs}
    for f in FRACTIONS:
        for direction in ("forward", "reverse"):
            if f == 1.0 and direction == "reverse":
                continue
            part = (lambda n, f=f: slice(0, max(2, int(round(f * n))))) if direction == "forward" else \
                (lambda n, f=f: slice(n - max(2, int(round(f * n))), n))
            F, boot = sliced_pmf(windows, edges, kT, part, SLICE_BOOTSTRAP, seed, volume)
            for q in qs:
                v, e = _value(q, F, boot)
                out[q.name].append({"fraction": f, "direction": direction, "value": v, "err": e})
    for q in qs:  # the full-data point closes both curves
        full = next(r for r in out[q.name] if r["fraction"] == 1.0)
        out[q.name].append({**full, "direction": "reverse"})
    return out


def halves(windows, edges, kT, qs: list[Quantity], volume, seed: int = 0) -> dict[str, dict]:
    """First half vs second half of every window: values, errors and z per quantity."""
    first = sliced_pmf(windows, edges, kT, lambda n: slice(0, n // 2), SLICE_BOOTSTRAP, seed, volume)
    second = sliced_pmf(windows, edges, kT, lambda n: slice(n // 2, n), SLICE_BOOTSTRAP, seed + 1, volume)
    out = {}
    for q in qs:
        (a, sa), (b, sb) = _value(q, *first), _value(q, *second)
        z = abs(a - b) / math.sqrt(sa**2 + sb**2) if np.isfinite(sa * sb) and sa + sb > 0 else float("nan")
        out[q.name] = {"first_half": a, "first_err": sa, "second_half": b, "second_err": sb, "z": z}
    return out


def _unbiased_bins(w: Window, edges: np.ndarray, kT: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sum of exp(bias/kT) per bin, its variance (x g), raw counts) from all samples of ``w``: the
    unbiased density of window w, exact within a bin (the bias is applied per sample)."""
    idx = np.digitize(w.x, edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    bias = 0.5 * w.k_kJ_mol_nm2 * (w.x[ok] - w.r0_nm) ** 2 / kT
    shift = bias.max() if ok.any() else 0.0
    wt = np.exp(bias - shift)
    n = len(edges) - 1
    s = np.bincount(idx[ok], weights=wt, minlength=n)
    var = w.g * np.bincount(idx[ok], weights=wt**2, minlength=n)
    return s, var, np.bincount(idx[ok], minlength=n)


def neighbour_consistency(windows: list[Window], kT: float, n_bins: int = 24) -> list[dict]:
    """Zhu-Hummer check for each pair of windows adjacent in centre: chi^2 of the difference of their
    unbiased log densities over the bins both sample (>= MIN_BIN_SAMPLES each), one offset fitted."""
    ws = sorted(windows, key=lambda w: w.r0_nm)
    rows = []
    for a, b in zip(ws[:-1], ws[1:]):
        lo, hi = max(a.x.min(), b.x.min()), min(a.x.max(), b.x.max())
        if hi <= lo:
            rows.append({"windows": [a.k_index, b.k_index], "bins": 0, "chi2": None, "dof": 0, "p": None})
            continue
        edges = np.linspace(lo, hi, n_bins + 1)
        sa, va, na = _unbiased_bins(a, edges, kT)
        sb, vb, nb = _unbiased_bins(b, edges, kT)
        m = (na >= MIN_BIN_SAMPLES) & (nb >= MIN_BIN_SAMPLES)
        if m.sum() < 3:
            rows.append({"windows": [a.k_index, b.k_index], "bins": int(m.sum()), "chi2": None, "dof": 0, "p": None})
            continue
        d = np.log(sa[m]) - np.log(sb[m])
        var = va[m] / sa[m] ** 2 + vb[m] / sb[m] ** 2
        wgt = 1.0 / var
        resid = d - np.sum(wgt * d) / np.sum(wgt)
        chi2, dof = float(np.sum(resid**2 * wgt)), int(m.sum()) - 1
        rows.append({"windows": [a.k_index, b.k_index], "bins": int(m.sum()), "chi2": round(chi2, 3), "dof": dof,
                     "p": float(stats.chi2.sf(chi2, dof))})
    return rows


def verdict(n_uncorrelated: list[int], window_ids: list[int], half: dict, pairs: list[dict], barrier: dict,
            target_error_kJ_mol: float | None = None, headline: str | None = None) -> dict:
    """``{"converged": bool, "reasons": [...]}`` from the checks (each failure is one reason)."""
    reasons = []
    few = [(k, n) for k, n in zip(window_ids, n_uncorrelated) if n < MIN_UNCORRELATED]
    if few:
        reasons.append(f"too few independent samples: windows {[k for k, _ in few]} have "
                       f"{[n for _, n in few]} after subsampling by g (need >= {MIN_UNCORRELATED}): sample longer")
    drift = {k: v["z"] for k, v in half.items() if np.isfinite(v["z"]) and v["z"] > MAX_HALVES_Z}
    if drift:
        reasons.append("first and second half disagree: " + ", ".join(
            f"{k} {half[k]['first_half']:.1f} vs {half[k]['second_half']:.1f} kJ/mol (z = {z:.1f} > "
            f"{MAX_HALVES_Z:g})" for k, z in drift.items()) + ": the windows are still relaxing")
    bad = [p for p in pairs if p["p"] is not None and p["p"] < MIN_CONSISTENCY_P]
    if bad:
        reasons.append("neighbouring windows disagree where they overlap (Zhu-Hummer test): pairs " + ", ".join(
            f"{p['windows'][0]}-{p['windows'][1]} (chi2 {p['chi2']:.0f} for {p['dof']} dof)" for p in bad) +
            ": a slow motion was sampled differently in neighbouring windows")
    if barrier.get("ts_at_range_end"):
        reasons.append("the transition state is at the end of the range: extend range_nm")
    ads = barrier.get("adsorption") or {}
    if ads.get("plateau_flat") is False:
        reasons.append("no bulk plateau at the far end of the range: extend range_nm")
    if target_error_kJ_mol is not None and headline is not None:
        err = _headline_error(barrier, headline)
        if err is None or not err <= target_error_kJ_mol:
            reasons.append(f"{headline} error {err} kJ/mol above target_error_kJ_mol={target_error_kJ_mol:g}")
    return {"converged": not reasons, "reasons": reasons or ["all checks passed"],
            "criteria": {"min_uncorrelated_per_window": MIN_UNCORRELATED, "max_halves_z": MAX_HALVES_Z,
                         "min_neighbour_consistency_p": MIN_CONSISTENCY_P}}


def _headline_error(barrier: dict, name: str) -> float | None:
    if name in ("dG_ads", "dG_barrier_in"):
        return (barrier.get("adsorption") or {}).get(f"{name}_err_kJ_mol")
    return barrier.get(f"{name}_err_kJ_mol")


def headline_name(barrier: dict) -> str:
    """The number a PMF is run for: dG_ads for an adsorption coordinate, dG_barrier otherwise."""
    return "dG_ads" if barrier.get("adsorption") else "dG_barrier"


def assess(result, spec=None, seed: int = 0) -> dict:
    """The convergence block of barrier.json for a :class:`solvmd.pmf.estimate.PMFResult` (its
    ``barrier`` filled), with the forward/reverse series for ``convergence.png``."""
    kT, edges = result.kT_kJ_mol, result.edges
    radial_removed = result.radial and result.volume_term == "removed"
    volume = 2.0 * kT * np.log(result.cv_nm) if radial_removed else np.zeros(len(result.cv_nm))
    qs = quantities(result.barrier, result.cv_nm)
    series = time_series(result.windows, edges, kT, qs, volume, seed)
    half = halves(result.windows, edges, kT, qs, volume, seed)
    pairs = neighbour_consistency(result.windows, kT)
    head = headline_name(result.barrier)
    v = verdict([len(w.x_sub) for w in result.windows], [w.k_index for w in result.windows], half, pairs, result.barrier,
                getattr(spec, "target_error_kJ_mol", None), head)
    return {**v, "headline": head, "halves": half, "neighbour_consistency": pairs,
            "error_kind": "within-run: bootstrap over samples decorrelated by each window's statistical "
                          "inefficiency g (max of the CV's and, under exchange, the reduced energy's)",
            "series": series}
