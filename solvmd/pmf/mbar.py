"""MBAR on umbrella windows: decorrelation, reduced energies, a Newton solver, binned free energies,
and the block bootstrap.

The numerical core shared by the estimate (:mod:`solvmd.pmf.estimate`), the convergence checks
(:mod:`solvmd.pmf.convergence`) and the extension planner (:mod:`solvmd.pmf.extend`). Energies are
reduced (kT) unless a name says kJ/mol; CV values in nm.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from solvmd.pmf.windows import Window


def subsample(windows: list[Window]) -> None:
    """Decorrelate each window with its statistical inefficiency (pymbar.timeseries; under exchange the
    larger of the CV's and the reduced energy's). Correlations the estimate of g misses are left to
    the block bootstrap (:func:`block_indices`)."""
    from pymbar import timeseries

    tslog = logging.getLogger("pymbar.timeseries")
    level = tslog.level
    tslog.setLevel(logging.ERROR)  # pymbar logs a generic caveat on every call
    try:
        for i, w in enumerate(windows):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w.g_cv = float(timeseries.statistical_inefficiency(w.x))
                w.g_energy = None if w.u_all is None else float(timeseries.statistical_inefficiency(
                    w.u_all[:, _own_state(w, windows, i)]))
                w.g = max(w.g_cv, w.g_energy or 1.0)
                idx = timeseries.subsample_correlated_data(w.x, g=w.g)
            w.sub_idx = np.asarray(idx, int)
            w.x_sub = w.x[w.sub_idx]
    finally:
        tslog.setLevel(level)

def _own_state(w: Window, windows: list[Window], i: int) -> int:
    """Column of ``w.u_all`` that is w's own state: states are stored in window-index order."""
    return int(w.k_index) if w.u_all is not None and w.k_index < w.u_all.shape[1] else i

def sampler_energies(windows: list[Window]) -> np.ndarray | None:
    """u_kn (states x decorrelated samples, kT) as recorded by the exchange sampler, in the order of
    ``windows`` (None for independent windows, whose energies are the analytic bias)."""
    if not windows or any(w.u_all is None for w in windows):
        return None
    order = [w.k_index for w in windows]
    return np.concatenate([w.u_all[w.sub_idx][:, order] for w in windows]).T

def reduced_bias(windows: list[Window], x: np.ndarray, kT: float) -> np.ndarray:
    """u_kn[k, n] = 0.5 k_k (x_n - r0_k)^2 / kT."""
    r0 = np.array([w.r0_nm for w in windows])[:, None]
    ks = np.array([w.k_kJ_mol_nm2 for w in windows])[:, None]
    return 0.5 * ks * (x[None, :] - r0) ** 2 / kT

def _lse0(a):
    """log-sum-exp over axis 0 (fast path; scipy's carries array-API overhead)."""
    m = a.max(axis=0)
    return m + np.log(np.exp(a - m).sum(axis=0))

def solve_mbar_newton(u_kn, N_k, f_init, tol=1e-10, max_iter=50) -> np.ndarray:
    """MBAR free energies f_k (f_0 = 0) by Newton's method on the convex MBAR objective.

    Used for bootstrap replicates, which start next to the full-data solution (pymbar's
    own solver is ~10x slower here without JAX). Falls back on pymbar if Newton stalls.
    """
    N_k = np.asarray(N_k, float)
    lnN = np.log(N_k)[:, None]
    f = np.asarray(f_init, float) - f_init[0]
    K = len(f)

    def evaluate(f):
        a = lnN + f[:, None] - u_kn
        lse = _lse0(a)
        return a, lse, float(lse.sum() - N_k @ f)

    a, lse, obj = evaluate(f)
    for _ in range(max_iter):
        W = np.exp(a - lse[None, :])  # (K, N): N_k W_nk; columns sum to 1
        Wk = W.sum(axis=1)
        grad = Wk - N_k
        if np.max(np.abs(grad[1:]) / N_k[1:]) < tol:
            return f
        H = np.diag(Wk) - W @ W.T
        step = np.zeros(K)
        # least squares = solve for a regular Hessian; windows without overlap make it singular
        # (the objective is flat along the disconnected f_k), and the overlap check reports that
        step[1:] = np.linalg.lstsq(H[1:, 1:], -grad[1:], rcond=None)[0]
        t = 1.0
        while True:
            fn = f + t * step
            an, lsen, on = evaluate(fn)
            if on <= obj + 1e-4 * t * (grad @ step) or t < 1e-6:
                break
            t *= 0.5
        f, a, lse, obj = fn, an, lsen, on
    from pymbar import MBAR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(MBAR(u_kn, N_k.astype(int), initial_f_k=f).f_k, float)

def _log_weights(u_kn, N_k, f_k):
    """MBAR log weights of each sample in the unbiased state (unnormalised)."""
    return -_lse0(np.log(np.asarray(N_k, float))[:, None] + np.asarray(f_k)[:, None] - u_kn)

def _bin_f(x, logw, edges):
    """-ln sum of weights per bin (dimensionless), NaN for empty bins."""
    idx = np.digitize(x, edges) - 1
    nb = len(edges) - 1
    ok = (idx >= 0) & (idx < nb)
    m = np.max(logw[ok])
    s = np.bincount(idx[ok], weights=np.exp(logw[ok] - m), minlength=nb)
    with np.errstate(divide="ignore"):
        f = -(np.log(s) + m)
    f[s <= 0] = np.nan
    return f

# Blocks per window of the block bootstrap. The samples are already decorrelated by g, but g is
# measured on the CV alone, integrating its autocorrelation to the first zero: a slow motion that
# barely moves the CV (a shell rearranging) leaves a long, low tail there that g cuts off, and the
# error comes out too small (a double well coupled to a hidden coordinate of ~4 ps: 1.7x too small
# resampling sample by sample). Resampling whole blocks of 1/BLOCKS_PER_WINDOW of each window keeps
# every correlation shorter than a block (tests/test_pmf_calibration.py).
BLOCKS_PER_WINDOW = 10

def block_indices(n: int, rng, n_blocks: int = BLOCKS_PER_WINDOW) -> np.ndarray:
    """A block-bootstrap draw of ``n`` time-ordered samples: ``n_blocks`` contiguous blocks (the last
    ones one sample longer when n does not divide) drawn with replacement, as sample indices."""
    n_blocks = max(1, min(n_blocks, n))
    bounds = np.linspace(0, n, n_blocks + 1).round().astype(int)
    pick = rng.integers(0, n_blocks, n_blocks)
    return np.concatenate([np.arange(bounds[j], bounds[j + 1]) for j in pick])

def block_bootstrap(x_n, N_k, u_kn, f_k, edges, kT, n_boot, seed) -> np.ndarray:
    """(n_boot, n_bins) F with the volume term (kJ/mol): block-resample each window
    (:func:`block_indices`), re-solve MBAR each time."""
    rng = np.random.default_rng(seed)
    boot = np.full((n_boot, len(edges) - 1), np.nan)
    offs = np.concatenate([[0], np.cumsum(N_k)])
    for b in range(n_boot):
        draws = [offs[i] + block_indices(N_k[i], rng) for i in range(len(N_k))]
        n_b = np.array([len(d) for d in draws])
        idx = np.concatenate(draws)
        ub = u_kn[:, idx]
        boot[b] = kT * _bin_f(x_n[idx], _log_weights(ub, n_b, solve_mbar_newton(ub, n_b, f_k)), edges)
    return boot
