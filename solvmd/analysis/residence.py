"""Residence times: contact autocorrelations of (cation, partner molecule) pairs.

For every (cation, partner molecule) pair, h(t) = 1 while the molecule is in
the cation's first shell. Two autocorrelations are reported, both averaged over all
pairs and time origins:

* intermittent: C(t) = <h(0) h(t)> / <h>, with the long-time plateau <h> (occupancy of a
  random pair) removed, C'(t) = (C - <h>) / (1 - <h>); it ignores brief excursions.
  Residence time = time for C' to reach 1/e (interpolated), and tau of a fit
  A exp(-t/tau) over the lags where C' > 0.05 (fit window reported). This is the
  number usually quoted as "residence time" (solvation-analysis reports the same
  correlation without removing the tiny plateau).
* continuous (survival): the probability that a molecule present at t0 stayed without
  interruption until t0 + t; its 1/e time is the mean lifetime of an uninterrupted
  contact for exponential kinetics. Right-censoring at the trajectory end is handled.

For a two-state Markov contact (leave with probability a, enter with b per frame) the
continuous correlation is (1-a)^k and the intermittent one (1-a-b)^k exactly.

If a correlation has not fallen below 1/e within the longest lag, no residence time
is reported (NaN) and a warning says the trajectory is too short.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from solvmd.analysis import columns as C
from solvmd.analysis.contacts import AnalysisWarning, ContactTable


def contact_pairs(ct: ContactTable, partner: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(pair id, frame index) of every contact of ``partner`` (one row per pair and frame),
    the number of pairs ever in contact, and the number of possible (cation, molecule) pairs."""
    k = ct.codes
    sel = k["p"] == ct.partner_names.index(partner)
    M = ct.molecules.size
    key = np.unique((k["c"][sel] * M + k["m"][sel]) * ct.n_frames + k["f"][sel])
    pair, f = np.divmod(key, ct.n_frames)
    uniq, pid = np.unique(pair, return_inverse=True)
    return pid.ravel(), f, int(uniq.size), ct.n_cations * int(ct.partner_res[partner].size)


class _ACFAccumulator:
    """Sums over pairs for both correlations; fed chunk by chunk (bounded memory)."""

    def __init__(self, n_frames: int, max_lag: int):
        self.F = n_frames
        self.max_lag = min(max_lag, n_frames - 1)
        self.nfft = 1 << int(math.ceil(math.log2(2 * n_frames)))
        self.num = np.zeros(self.max_lag + 1)  # sum over pairs and origins of h(t0) h(t0+k)
        self.runs = np.zeros(n_frames + 1)  # histogram of uninterrupted contact lengths
        self.ones = np.zeros(n_frames)  # pairs in contact per frame
        self.any = False

    @property
    def rows_per_chunk(self) -> int:
        return max(1, (1 << 23) // self.nfft)  # ~64 MB of float64 per FFT block

    def add(self, h: np.ndarray) -> None:
        if h.shape[0] == 0:
            return
        self.any = self.any or bool(h.any())
        for s in range(0, h.shape[0], self.rows_per_chunk):
            x = h[s : s + self.rows_per_chunk]
            spec = np.fft.rfft(x.astype(np.float64), n=self.nfft, axis=1)
            self.num += np.fft.irfft(spec * spec.conj(), n=self.nfft, axis=1)[:, : self.max_lag + 1].sum(0)
            padded = np.zeros((x.shape[0], self.F + 2), dtype=np.int8)
            padded[:, 1:-1] = x
            d = np.diff(padded, axis=1)
            lengths = np.nonzero(d == -1)[1] - np.nonzero(d == 1)[1]  # same row order for starts and ends
            self.runs += np.bincount(lengths, minlength=self.F + 1)
            self.ones += x.sum(0)

    def intermittent(self, n_possible: int) -> np.ndarray:
        if not self.any:
            return np.full(self.max_lag + 1, np.nan)
        lags = np.arange(self.max_lag + 1)
        corr = np.rint(self.num) / (self.F - lags)  # sum over pairs of <h(0)h(k)> (exact integers / origins)
        c = corr / corr[0]
        occupancy = corr[0] / max(n_possible, 1)  # <h> over every possible pair
        if occupancy >= 1.0:
            return np.ones(self.max_lag + 1)
        return (c - occupancy) / (1.0 - occupancy)

    def continuous(self) -> np.ndarray:
        lags = np.arange(self.max_lag + 1)
        if not self.any:
            return np.full(lags.size, np.nan)
        L = np.arange(self.runs.size)
        s0 = np.cumsum(self.runs[::-1])[::-1]  # runs of length >= L
        s1 = np.cumsum((self.runs * L)[::-1])[::-1]
        numer = s1[lags + 1] - lags * s0[lags + 1]  # sum over runs of max(L - k, 0)
        denom = np.cumsum(self.ones)[self.F - 1 - lags]  # contacts at origins t0 <= F-1-k
        return np.divide(numer, denom, out=np.full(lags.size, np.nan), where=denom > 0)


def intermittent_acf(h: np.ndarray, n_possible: int, max_lag: int) -> np.ndarray:
    """Plateau-removed intermittent autocorrelation C'(k), k = 0..max_lag, of a (pairs, frames) indicator."""
    acc = _ACFAccumulator(h.shape[1], max_lag)
    acc.add(h)
    return acc.intermittent(n_possible)


def continuous_acf(h: np.ndarray, max_lag: int) -> np.ndarray:
    """Survival correlation P(contact uninterrupted from t0 to t0+k | contact at t0); censoring-aware."""
    acc = _ACFAccumulator(h.shape[1], max_lag)
    acc.add(h)
    return acc.continuous()


def contact_acfs(ct: ContactTable, partner: str, max_lag: int, pairs_per_block: int = 4096):
    """Both correlations for ``partner``, building the indicator matrix block by block of pairs."""
    pid, f, n_pairs, n_possible = contact_pairs(ct, partner)
    acc = _ACFAccumulator(ct.n_frames, max_lag)
    bounds = np.searchsorted(pid, np.arange(0, n_pairs + pairs_per_block, pairs_per_block))
    for b, s in enumerate(range(0, n_pairs, pairs_per_block)):
        lo, hi = bounds[b], bounds[b + 1]
        h = np.zeros((min(pairs_per_block, n_pairs - s), ct.n_frames), dtype=bool)
        h[pid[lo:hi] - s, f[lo:hi]] = True
        acc.add(h)
    return acc.intermittent(n_possible), acc.continuous(), n_pairs


def time_to_threshold(t: np.ndarray, c: np.ndarray, level: float = 1.0 / math.e) -> float:
    """First time c drops to ``level`` (linear interpolation), NaN if it never does."""
    below = np.nonzero(c <= level)[0]
    if below.size == 0:
        return float("nan")
    i = int(below[0])
    if i == 0:
        return float(t[0])
    t0, t1, c0, c1 = t[i - 1], t[i], c[i - 1], c[i]
    return float(t0 + (c0 - level) * (t1 - t0) / (c0 - c1)) if c0 != c1 else float(t1)


def fit_exponential(t: np.ndarray, c: np.ndarray, floor: float = 0.05) -> tuple[float, float, float, float]:
    """Fit A exp(-t/tau) to c over lags >= 1 while c > floor. Returns tau, A, window start, stop."""
    ok = np.nonzero(c <= floor)[0]
    stop = int(ok[0]) if ok.size else c.size
    idx = np.arange(1, stop) if stop > 2 else np.arange(0, min(stop, c.size))
    idx = idx[np.isfinite(c[idx])]
    if idx.size < 2:
        return float("nan"), float("nan"), float("nan"), float("nan")
    tt, cc = t[idx], c[idx]
    guess = max(time_to_threshold(t, c), tt[-1] / 2) if np.isfinite(time_to_threshold(t, c)) else tt[-1]
    try:
        (a, tau), _ = curve_fit(
            lambda x, a, tau: a * np.exp(-x / tau), tt, cc, p0=(1.0, guess), bounds=([0, 1e-12], [2.0, np.inf]), maxfev=10000
        )
    except (RuntimeError, ValueError):
        return float("nan"), float("nan"), float(tt[0]), float(tt[-1])
    return float(tau), float(a), float(tt[0]), float(tt[-1])


def residence_times(ct: ContactTable, max_lag_ps: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Residence time of every coordinating partner in the cation shell; returns (summary, correlations)."""
    rows, curves = [], []
    for name in ct.partner_names:
        row, curve = _partner_residence(ct, name, max_lag_ps)
        rows.append(row)
        if curve is not None:
            curves.append(curve)
    cols = [
        C.PARTNER, C.CUTOFF, C.N_PAIRS, C.TAU_1E, C.TAU_FIT, C.FIT_AMPLITUDE, C.FIT_START, C.FIT_STOP,
        C.TAU_CONT_1E, C.DECAYED, C.DT, C.WARNING,
    ]  # fmt: skip
    summary = pd.DataFrame(rows).reindex(columns=cols)
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=[C.PARTNER, C.LAG, C.ACF, C.ACF_CONT])
    return summary, curve


def _partner_residence(ct: ContactTable, name: str, max_lag_ps: float | None) -> tuple[dict, pd.DataFrame | None]:
    """Summary row (times in ps) and correlation curves of one partner; None curves when not computed."""
    F, dt = ct.n_frames, ct.dt_ps
    cut = ct.cutoffs_A.get(name)
    row = {C.PARTNER: name, C.CUTOFF: np.nan if cut is None else cut, C.DT: dt}
    if cut is None or F < 3 or not np.isfinite(dt):
        row.update({C.N_PAIRS: 0, C.DECAYED: False})
        row[C.WARNING] = "not coordinating (no cutoff)" if cut is None else "need at least 3 frames with a known timestep"
        return row, None
    max_lag = F // 2 if max_lag_ps is None else min(F - 1, int(round(max_lag_ps / dt)))
    ci, cc, n_pairs = contact_acfs(ct, name, max(max_lag, 1))
    lags = np.arange(ci.size) * dt
    tau_1e = time_to_threshold(lags, ci)
    tau_fit, amp, fs, fe = fit_exponential(lags, ci)
    tau_c = time_to_threshold(lags, cc)
    msgs = []
    if n_pairs == 0:
        msgs.append("no contacts observed")
    elif not np.isfinite(tau_1e):
        hint = f" (an extrapolated fit gives ~{tau_fit:.3g} ps)" if np.isfinite(tau_fit) else ""
        msgs.append(
            f"trajectory too short: the contact correlation is still {ci[-1]:.2f} at the longest lag "
            f"{lags[-1]:.4g} ps; no residence time reported{hint} - run longer (>> residence time)"
        )
        tau_fit = amp = float("nan")
    elif np.isfinite(tau_fit) and tau_fit > 0.5 * lags[-1]:
        msgs.append(
            f"fitted tau {tau_fit:.4g} ps exceeds half the longest lag ({lags[-1]:.4g} ps): extrapolated, run longer"
        )
    if n_pairs and not np.isfinite(tau_c):
        msgs.append("continuous correlation did not decay to 1/e")
    for m in msgs:
        warnings.warn(f"residence time of {name}: {m}", AnalysisWarning, stacklevel=3)
    row.update({C.N_PAIRS: n_pairs, C.TAU_1E: tau_1e, C.TAU_FIT: tau_fit, C.FIT_AMPLITUDE: amp, C.FIT_START: fs,
                C.FIT_STOP: fe, C.TAU_CONT_1E: tau_c, C.DECAYED: bool(np.isfinite(tau_1e)),
                C.WARNING: "; ".join(msgs)})
    return row, pd.DataFrame({C.PARTNER: name, C.LAG: lags, C.ACF: ci, C.ACF_CONT: cc[: lags.size]})
