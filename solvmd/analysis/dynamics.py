"""Residence times (contact autocorrelation) and transport (MSD, Nernst-Einstein, Einstein-Helfand).

Residence. For every (cation, partner molecule) pair, h(t) = 1 while the molecule is in
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

Transport. Molecule centres of mass are unwrapped frame to frame (minimum image of
each displacement), the system centre-of-mass drift removed, MSD computed with the FFT
algorithm over all time origins, and D = slope/6 from a linear fit inside the reported
window. Conductivity uses formal charges z (charge scaling undone):
Nernst-Einstein sigma = e^2/(V kB T) sum_i N_i z_i^2 D_i; Einstein-Helfand
sigma = e^2/(6 V kB T) d/dt <|sum_j z_j dr_j(t)|^2> (collective, includes correlations).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from solvmd.analysis import columns as C
from solvmd.analysis.contacts import AnalysisWarning, ContactTable
from solvmd.units import BOLTZMANN_J_K, ELEMENTARY_CHARGE_C

E_CHARGE = ELEMENTARY_CHARGE_C  # C
K_B = BOLTZMANN_J_K  # J/K
A2_PS_TO_M2_S = 1e-8  # 1 A^2/ps = 1e-20 m^2 / 1e-12 s

# --------------------------------------------------------------------------- residence


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
    F = ct.n_frames
    dt = ct.dt_ps
    rows, curves = [], []
    for name in ct.partner_names:
        cut = ct.cutoffs_A.get(name)
        row = {C.PARTNER: name, C.CUTOFF: np.nan if cut is None else cut, C.DT: dt}
        if cut is None or F < 3 or not np.isfinite(dt):
            row.update({C.N_PAIRS: 0, C.DECAYED: False})
            row[C.WARNING] = (
                "not coordinating (no cutoff)" if cut is None else "need at least 3 frames with a known timestep"
            )
            rows.append(row)
            continue
        max_lag = F // 2 if max_lag_ps is None else min(F - 1, int(round(max_lag_ps / dt)))
        max_lag = max(max_lag, 1)
        ci, cc, n_pairs = contact_acfs(ct, name, max_lag)
        lags = (np.arange(ci.size) * dt)
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
            warnings.warn(f"residence time of {name}: {m}", AnalysisWarning, stacklevel=2)
        row.update(
            {
                C.N_PAIRS: n_pairs,
                C.TAU_1E: tau_1e,
                C.TAU_FIT: tau_fit,
                C.FIT_AMPLITUDE: amp,
                C.FIT_START: fs,
                C.FIT_STOP: fe,
                C.TAU_CONT_1E: tau_c,
                C.DECAYED: bool(np.isfinite(tau_1e)),
                C.WARNING: "; ".join(msgs),
            }
        )
        rows.append(row)
        curves.append(pd.DataFrame({C.PARTNER: name, C.LAG: lags, C.ACF: ci, C.ACF_CONT: cc[: lags.size]}))
    cols = [
        C.PARTNER, C.CUTOFF, C.N_PAIRS, C.TAU_1E, C.TAU_FIT, C.FIT_AMPLITUDE, C.FIT_START, C.FIT_STOP,
        C.TAU_CONT_1E, C.DECAYED, C.DT, C.WARNING,
    ]  # fmt: skip
    summary = pd.DataFrame(rows).reindex(columns=cols)
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=[C.PARTNER, C.LAG, C.ACF, C.ACF_CONT])
    return summary, curve


# --------------------------------------------------------------------------- transport


def msd_fft(x: np.ndarray) -> np.ndarray:
    """Mean-squared displacement over all time origins, averaged over particles.

    ``x``: unwrapped positions, shape (frames, particles, 3). Returns MSD(k), k = 0..frames-1.
    """
    x = np.asarray(x, dtype=np.float64)
    F = x.shape[0]
    if F == 0:
        return np.zeros(0)
    flat = x.reshape(F, -1)
    d = np.square(flat).sum(1)  # sum over particles and xyz of r^2 per frame
    d = np.append(d, 0.0)
    q = 2.0 * d.sum()
    s1 = np.zeros(F)
    for m in range(F):
        q -= d[m - 1] + d[F - m]
        s1[m] = q / (F - m)
    nfft = 1 << int(math.ceil(math.log2(2 * F)))
    spec = np.fft.rfft(flat, n=nfft, axis=0)
    ac = np.fft.irfft(spec * spec.conj(), n=nfft, axis=0)[:F].sum(1)
    s2 = ac / (F - np.arange(F))
    n_particles = x.shape[1] if x.ndim == 3 else 1
    return (s1 - 2.0 * s2) / n_particles


def fit_slope(t: np.ndarray, y: np.ndarray, start: float, stop: float) -> tuple[float, float, float]:
    """Least-squares slope of y(t) inside [start, stop]; returns slope, actual window start, stop."""
    sel = (t >= start - 1e-9) & (t <= stop + 1e-9)
    if sel.sum() < 2:
        return float("nan"), float("nan"), float("nan")
    slope = np.polyfit(t[sel], y[sel], 1)[0]
    return float(slope), float(t[sel][0]), float(t[sel][-1])


def transport_table(
    com_A: np.ndarray,
    mol_species: np.ndarray,
    species: list[str],
    charges: list[float | None],
    times_ps: np.ndarray,
    volumes_A3: np.ndarray,
    temperature_K: float,
    fit_start_frac: float,
    fit_stop_frac: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Self-diffusion per species and NE/EH conductivity; returns (summary, MSD curves)."""
    F = com_A.shape[0]
    t = times_ps - times_ps[0]
    t_end = t[-1] if F else 0.0
    win = (fit_start_frac * t_end, fit_stop_frac * t_end)
    V = float(np.mean(volumes_A3)) if len(volumes_A3) else float("nan")
    V_m3 = V * 1e-30
    pref = E_CHARGE**2 / (V_m3 * K_B * temperature_K)
    rows, curves = [], []
    if F < 3:
        warnings.warn("transport: need at least 3 frames for an MSD fit", AnalysisWarning, stacklevel=2)
    ne_sum = 0.0
    for k, name in enumerate(species):
        sel = mol_species == k
        msd = msd_fft(com_A[:, sel]) if F else np.zeros(0)
        slope, fs, fe = fit_slope(t, msd, *win) if F >= 3 else (np.nan, np.nan, np.nan)
        D = slope / 6.0 * A2_PS_TO_M2_S
        z = charges[k]
        contrib = np.nan
        if z is not None and z != 0:
            contrib = pref * int(sel.sum()) * z**2 * D
            ne_sum += contrib if np.isfinite(contrib) else np.nan
        rows.append(
            {
                C.SPECIES: name,
                C.METHOD: C.MSD_SELF,
                C.N_MOLECULES: int(sel.sum()),
                C.CHARGE: np.nan if z is None else z,
                C.D: D,
                C.SIGMA: contrib,
                C.FIT_START: fs,
                C.FIT_STOP: fe,
            }
        )
        curves.append(pd.DataFrame({C.SPECIES: name, C.TIME: t, C.MSD: msd}))
    z_mol = np.array([np.nan if charges[s] is None else charges[s] for s in mol_species], dtype=np.float64)
    ions = np.isfinite(z_mol) & (z_mol != 0)
    if ions.any() and F >= 3:
        M = (com_A[:, ions] * z_mol[ions][None, :, None]).sum(1)  # translational charge dipole, e*A
        msd_M = msd_fft(M[:, None, :])
        slope, fs, fe = fit_slope(t, msd_M, *win)
        sigma_eh = pref * slope / 6.0 * A2_PS_TO_M2_S
        curves.append(pd.DataFrame({C.SPECIES: "charge dipole (sum z r)", C.TIME: t, C.MSD: msd_M}))
        rows.append(
            {
                C.SPECIES: C.ALL_IONS, C.METHOD: C.NERNST_EINSTEIN, C.N_MOLECULES: int(ions.sum()),
                C.SIGMA: ne_sum, C.FIT_START: win[0], C.FIT_STOP: win[1],
            }
        )  # fmt: skip
        rows.append(
            {
                C.SPECIES: C.ALL_IONS, C.METHOD: C.EINSTEIN_HELFAND, C.N_MOLECULES: int(ions.sum()),
                C.SIGMA: sigma_eh, C.FIT_START: fs, C.FIT_STOP: fe,
            }
        )  # fmt: skip
    elif not ions.any():
        warnings.warn(
            "transport: no formal charges known (spec field `charges`), conductivity not computed",
            AnalysisWarning,
            stacklevel=2,
        )
    df = pd.DataFrame(rows)
    cols = [C.SPECIES, C.METHOD, C.N_MOLECULES, C.CHARGE, C.D, C.SIGMA, C.SIGMA_MS_CM, C.FIT_START, C.FIT_STOP]
    df = df.reindex(columns=cols)
    df[C.SIGMA_MS_CM] = df[C.SIGMA] * 10.0
    df[C.TEMPERATURE] = temperature_K
    df[C.VOLUME] = V
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=[C.SPECIES, C.TIME, C.MSD])
    return df, curve
