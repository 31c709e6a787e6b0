"""PMF from umbrella windows: pymbar 4 MBAR/FES, bootstrap errors, overlap, WHAM cross-check.

Conventions (written into ``pmf.csv`` and ``barrier.json``):

- ``F_with_volume``: F(x) = -kT ln p(x), the free energy of the CV value itself. For a 3-D
  distance r it contains the -2 kT ln r volume (Jacobian) entropy of the spherical shell.
- ``F_without_volume``: F(r) + 2 kT ln r = -kT ln g(r) + const, the radial PMF that
  compares with an RDF. For a height (Cartesian) CV both columns are the same.
- ``F_kJ_mol`` / ``dF_kJ_mol``: the convention named by ``barrier_volume_term`` of the
  spec ("removed" -> without volume, the default; "included" -> with volume).

Every column is zero at its own minimum over the range; ``dF`` is the bootstrap standard
deviation of F(x) - F(x_min) (x_min fixed at the central estimate's minimum).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from solvmd.errors import SolvmdError
from solvmd.pmf.io import atomic_write_text
from solvmd.pmf.spec import KB_KJ_MOL_K, PMFSpec, load_spec

log = logging.getLogger(__name__)


class PMFOverlapError(SolvmdError):
    """Neighbouring windows do not overlap: MBAR cannot connect them."""


class PMFCoverageError(SolvmdError):
    """Part of the range has no samples, or windows are missing."""


@dataclass
class Window:
    k: int
    r0: float
    kspring: float
    temperature: float
    x: np.ndarray  # all samples (nm)
    dt_sample_ps: float
    kind: str = "distance"
    g: float = 1.0  # statistical inefficiency (in samples)
    x_sub: np.ndarray | None = None


@dataclass
class PMFResult:
    cv_nm: np.ndarray
    F_with: np.ndarray
    dF_with: np.ndarray
    F_without: np.ndarray
    dF_without: np.ndarray
    F_wham_with: np.ndarray
    counts: np.ndarray
    boot_with: np.ndarray  # (B, nbins) raw bootstrap F_with (not shifted)
    overlap: np.ndarray
    neighbour_overlap: np.ndarray
    windows: list[Window]
    edges: np.ndarray
    kT: float
    radial: bool
    volume_term: str
    mbar_wham_max_diff: float
    info: dict = field(default_factory=dict)
    barrier: dict | None = None

    @property
    def F(self):
        return self.F_without if self.volume_term == "removed" else self.F_with

    @property
    def dF(self):
        return self.dF_without if self.volume_term == "removed" else self.dF_with

    def boot(self, volume_term: str | None = None) -> np.ndarray:
        """Bootstrap replicates in a convention (unshifted; NaN where a bin is empty)."""
        vt = volume_term or self.volume_term
        if vt == "removed" and self.radial:
            return self.boot_with + 2.0 * self.kT * np.log(self.cv_nm)[None, :]
        return self.boot_with


# ---------------------------------------------------------------------------
def load_windows(paths) -> list[Window]:
    """Windows from ``window_<k>.npz`` files (or a folder holding them), sorted by centre."""
    if isinstance(paths, (str, Path)) and Path(paths).is_dir():
        paths = sorted(Path(paths).glob("window_*.npz"), key=lambda p: int(p.stem.split("_")[1]))
    paths = [Path(p) for p in paths]
    if not paths:
        raise PMFCoverageError("no window_<k>.npz files to estimate from")
    out = []
    for p in paths:
        with np.load(p) as z:
            x = np.asarray(z["cv_nm"], float)
            if not np.all(np.isfinite(x)):
                raise PMFCoverageError(f"{p}: CV samples contain NaN/inf")
            dt = float(z["timestep_fs"]) * int(z["sample_interval_steps"]) / 1000.0
            out.append(
                Window(int(z["window"]) if "window" in z else len(out), float(z["r0_nm"]), float(z["k_kJ_mol_nm2"]),
                       float(z["temperature_K"]), x, dt, str(z["kind"]) if "kind" in z else "distance")
            )
    temps = {w.temperature for w in out}
    if len(temps) != 1:
        raise SolvmdError(f"windows were sampled at different temperatures {sorted(temps)} K")
    return sorted(out, key=lambda w: w.r0)


def subsample(windows: list[Window]) -> None:
    """Decorrelate each window with its statistical inefficiency (pymbar.timeseries)."""
    from pymbar import timeseries

    tslog = logging.getLogger("pymbar.timeseries")
    level = tslog.level
    tslog.setLevel(logging.ERROR)  # pymbar logs a generic caveat on every call
    try:
        for w in windows:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = timeseries.statistical_inefficiency(w.x)
                idx = timeseries.subsample_correlated_data(w.x, g=g)
            w.g = float(g)
            w.x_sub = w.x[np.asarray(idx, int)]
    finally:
        tslog.setLevel(level)


def reduced_bias(windows: list[Window], x: np.ndarray, kT: float) -> np.ndarray:
    """u_kn[k, n] = 0.5 k_k (x_n - r0_k)^2 / kT."""
    r0 = np.array([w.r0 for w in windows])[:, None]
    ks = np.array([w.kspring for w in windows])[:, None]
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
        step[1:] = np.linalg.solve(H[1:, 1:], -grad[1:])
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


def wham(windows: list[Window], edges: np.ndarray, kT: float, tol: float = 1e-10, max_iter: int = 200000):
    """Binned self-consistent WHAM on the decorrelated samples; returns (F_kT per bin, f_k)."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    H = np.array([np.histogram(w.x_sub, bins=edges)[0] for w in windows], float)  # (K, B)
    N_k = H.sum(axis=1)  # only in-range samples enter binned WHAM
    num = H.sum(axis=0)
    U = reduced_bias(windows, centres, kT)  # (K, B)
    f = np.zeros(len(windows))
    logn = np.log(np.maximum(N_k, 1e-300))
    with np.errstate(divide="ignore"):
        lognum = np.log(num)
    for _ in range(max_iter):
        logp = lognum - _lse0(logn[:, None] + f[:, None] - U)
        logp[num == 0] = -np.inf
        fnew = -_lse0((logp[None, :] - U).T)
        fnew -= fnew[0]
        if np.max(np.abs(fnew - f)) < tol:
            f = fnew
            break
        f = fnew
    else:
        warnings.warn(f"WHAM did not converge in {max_iter} iterations", RuntimeWarning, stacklevel=2)
    logp = lognum - _lse0(logn[:, None] + f[:, None] - U)
    F = -logp
    F[num == 0] = np.nan
    return F, f


def _default_bin_width(windows, kT, spec: PMFSpec | None):
    sig = min(math.sqrt(kT / w.kspring) for w in windows)
    sp = np.min(np.diff([w.r0 for w in windows])) if len(windows) > 1 else sig
    if spec is not None and spec.bin_width_nm is not None:
        return spec.bin_width_nm
    return 0.5 * min(sig, sp)


def estimate_pmf(
    window_dir,
    spec=None,
    out_dir=None,
    bin_width_nm: float | None = None,
    n_bootstrap: int | None = None,
    seed: int | None = None,
    min_overlap: float | None = None,
    system: str | None = None,
    plots: bool = True,
) -> PMFResult:
    """Estimate the PMF from ``window_dir/window_<k>.npz`` and write the outputs.

    Writes into ``out_dir`` (default ``window_dir``): ``pmf.csv``, ``estimate.json``,
    ``barrier.json``, and with ``plots``: ``pmf.png``, ``overlap.png``, ``histograms.png``.
    ``spec`` (PMFSpec, dict or file; default ``window_dir/spec.json``) gives the range,
    the expected windows and the estimation settings; keyword arguments override it.
    Raises :class:`PMFOverlapError` (after writing the diagnostic figures) when the smallest
    neighbour overlap is below ``min_overlap``, and :class:`PMFCoverageError` for missing
    windows or an unsampled part of the range.
    """
    from pymbar import FES, MBAR

    window_dir = Path(window_dir)
    out_dir = Path(out_dir) if out_dir is not None else window_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if spec is None and (window_dir / "spec.json").is_file():
        spec = window_dir / "spec.json"
        spec = load_spec(json.loads(Path(spec).read_text()))
    elif spec is not None:
        spec = load_spec(spec)

    if spec is not None:
        from solvmd.pmf.umbrella import window_paths

        paths = window_paths(window_dir, spec)
        missing = [i for i, p in enumerate(paths) if not p.is_file()]
        if missing:
            raise PMFCoverageError(
                f"pmf {spec.name}: windows {missing} have no {window_dir}/window_<k>.npz yet; run them first"
            )
        windows = load_windows(paths)
    else:
        windows = load_windows(window_dir)
    if len(windows) < 2:
        raise PMFCoverageError("need at least two windows")
    T = windows[0].temperature
    kT = KB_KJ_MOL_K * T
    radial = spec.is_radial if spec is not None else windows[0].kind in ("distance", "site_distance")
    volume_term = spec.barrier_volume_term if spec is not None else "removed"
    n_boot = n_bootstrap if n_bootstrap is not None else (spec.n_bootstrap if spec is not None else 100)
    seed = seed if seed is not None else (spec.seed if spec is not None else 0)
    min_ov = min_overlap if min_overlap is not None else (spec.min_overlap if spec is not None else 0.03)
    if spec is not None:
        lo, hi = spec.range_nm
    else:
        lo, hi = windows[0].r0, windows[-1].r0
    width = bin_width_nm or _default_bin_width(windows, kT, spec)
    nb = max(2, int(math.ceil((hi - lo) / width - 1e-6)))
    edges = np.linspace(lo, hi, nb + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])

    subsample(windows)
    x_n = np.concatenate([w.x_sub for w in windows])
    N_k = np.array([len(w.x_sub) for w in windows])
    u_kn = reduced_bias(windows, x_n, kT)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mbar = MBAR(u_kn, N_k)
    f_k = np.asarray(mbar.f_k, float)
    info_newton = float(np.max(np.abs(solve_mbar_newton(u_kn, N_k, np.zeros(len(N_k))) - f_k)))
    O = np.asarray(mbar.compute_overlap()["matrix"], float)
    nbr = np.array([O[i, i + 1] for i in range(len(windows) - 1)])

    info = {
        "temperature_K": T,
        "kT_kJ_mol": kT,
        "n_windows": len(windows),
        "r0_nm": [w.r0 for w in windows],
        "k_kJ_mol_nm2": [w.kspring for w in windows],
        "n_samples": [int(len(w.x)) for w in windows],
        "statistical_inefficiency": [w.g for w in windows],
        "n_uncorrelated": N_k.tolist(),
        "window_mean_nm": [float(np.mean(w.x)) for w in windows],
        "window_sd_nm": [float(np.std(w.x)) for w in windows],
        "neighbour_overlap": nbr.tolist(),
        "min_neighbour_overlap": float(nbr.min()),
        "min_overlap_threshold": min_ov,
        "overlap_matrix": O.tolist(),
        "bin_width_nm": float(edges[1] - edges[0]),
        "n_bootstrap": int(n_boot),
        "bootstrap_seed": int(seed),
        "f_k_kT": f_k.tolist(),
        "newton_vs_pymbar_max_diff_kT": info_newton,
        "estimator": "pymbar MBAR + FES histogram (pymbar %s)" % _pymbar_version(),
    }
    counts = np.histogram(x_n, bins=edges)[0]
    if plots:
        from solvmd.pmf import plots as P

        P.plot_overlap(O, [w.r0 for w in windows], out_dir / "overlap.png")
        P.plot_histograms(windows, edges, out_dir / "histograms.png")
    if nbr.min() < min_ov:
        i = int(np.argmin(nbr))
        atomic_write_text(out_dir / "estimate.json", json.dumps(info, indent=2))
        raise PMFOverlapError(
            f"windows {windows[i].k} and {windows[i + 1].k} (r0={windows[i].r0:.4g} and {windows[i + 1].r0:.4g} nm) "
            f"overlap only {nbr[i]:.3g} < min_overlap={min_ov:g} (MBAR overlap matrix, see {out_dir / 'overlap.png'}): "
            "the PMF across this gap is not determined. Add windows between them (smaller spacing), lower "
            "k_kJ_mol_nm2, or raise it if a window slid away from its centre "
            f"(window means {info['window_mean_nm'][i]:.4g}, {info['window_mean_nm'][i + 1]:.4g} nm)."
        )
    empty = np.nonzero(counts == 0)[0]
    if empty.size:
        a, b = edges[empty[0]], edges[empty[-1] + 1]
        raise PMFCoverageError(
            f"no samples in {empty.size} bins of the range, first gap {a:.4g}-{edges[empty[0] + 1]:.4g} nm "
            f"(last empty bin ends {b:.4g} nm): the windows do not cover range_nm [{lo}, {hi}]. "
            "Add windows there, or raise k_kJ_mol_nm2 if windows slid away from their centres "
            f"(centres {np.round([w.r0 for w in windows], 4).tolist()}, means "
            f"{np.round(info['window_mean_nm'], 4).tolist()})."
        )

    # ---- central estimate: pymbar FES (histogram) ----
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fes = FES(u_kn, N_k, mbar_options={"initial_f_k": f_k})  # timings=False breaks pymbar 4.0.3 generate_fes
        fes.generate_fes(np.zeros(len(x_n)), x_n, fes_type="histogram", histogram_parameters={"bin_edges": [edges]})
        res = fes.get_fes(centres.reshape(-1, 1), reference_point="from-lowest", uncertainty_method=None)
    f_fes = np.asarray(res["f_i"], float)
    logw = _log_weights(u_kn, N_k, f_k)
    f_mine = _bin_f(x_n, logw, edges)
    f_mine -= np.nanmin(f_mine)
    info["fes_vs_direct_max_diff_kT"] = float(np.nanmax(np.abs(f_fes - f_mine)))
    F_with_raw = kT * f_fes

    # ---- bootstrap: resample each window's uncorrelated samples, re-solve MBAR ----
    rng = np.random.default_rng(seed)
    boot = np.full((n_boot, nb), np.nan)
    offs = np.concatenate([[0], np.cumsum(N_k)])
    for b in range(n_boot):
        idx = np.concatenate([offs[i] + rng.integers(0, N_k[i], N_k[i]) for i in range(len(windows))])
        ub = u_kn[:, idx]
        fb = solve_mbar_newton(ub, N_k, f_k)
        boot[b] = kT * _bin_f(x_n[idx], _log_weights(ub, N_k, fb), edges)

    vol = 2.0 * kT * np.log(centres) if radial else np.zeros(nb)

    def shifted(Fc, Fb):
        j = int(np.nanargmin(Fc))
        Fc = Fc - Fc[j]
        d = Fb - Fb[:, [j]]
        dF = np.nanstd(d, axis=0, ddof=1) if len(Fb) > 1 else np.zeros_like(Fc)
        return Fc, dF

    F_with, dF_with = shifted(F_with_raw, boot)
    F_without, dF_without = shifted(F_with_raw + vol, boot + vol[None, :])

    # ---- WHAM cross-check on the same bins ----
    Fw, _ = wham(windows, edges, kT)
    Fw = kT * Fw
    good = counts >= max(10, 0.001 * counts.sum())
    if not good.any():
        raise PMFCoverageError(f"no PMF bin has 10 or more samples ({int(counts.sum())} samples in {len(counts)} bins): "
                               "sample the windows longer (sample_ps) or use wider bins (bin_width_nm)")
    diff = (Fw - F_with_raw)[good]
    diff -= np.average(diff, weights=counts[good])
    mw = float(np.max(np.abs(diff)))
    F_wham = Fw - np.nanmin(Fw)
    info["mbar_wham_max_diff_kJ_mol"] = mw
    info["mbar_wham_compared_bins"] = int(good.sum())
    if mw > 1.0:
        msg = f"MBAR and WHAM PMFs differ by up to {mw:.2f} kJ/mol (> 1 kJ/mol): sample longer or use more windows"
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        log.warning(msg)

    result = PMFResult(
        cv_nm=centres, F_with=F_with, dF_with=dF_with, F_without=F_without, dF_without=dF_without,
        F_wham_with=F_wham, counts=counts, boot_with=boot, overlap=O, neighbour_overlap=nbr,
        windows=windows, edges=edges, kT=kT, radial=radial, volume_term=volume_term,
        mbar_wham_max_diff=mw, info=info,
    )

    # ---- outputs ----
    F_wham_conv = F_wham + (vol if volume_term == "removed" else 0.0)
    F_wham_conv = F_wham_conv - np.nanmin(F_wham_conv)
    df = pd.DataFrame(
        {
            "cv_nm": centres,
            "F_kJ_mol": result.F,
            "dF_kJ_mol": result.dF,
            "F_with_volume_kJ_mol": F_with,
            "dF_with_volume_kJ_mol": dF_with,
            "F_without_volume_kJ_mol": F_without,
            "dF_without_volume_kJ_mol": dF_without,
            "F_wham_kJ_mol": F_wham_conv,
            "n_samples": counts,
        }
    )
    atomic_write_text(out_dir / "pmf.csv", df.to_csv(index=False, float_format="%.6g"))
    info["pmf_csv_F_kJ_mol_volume_term"] = volume_term if radial else "none"

    from solvmd.pmf.barrier import barrier_from_result, write_barrier

    if spec is not None:
        info["cv"] = spec.name
        info["cv_kind"] = spec.cv.kind
        bound_side = spec.bound_side
    else:
        bound_side = "low"
    system = system or _system_from_path(out_dir)
    result.barrier = barrier_from_result(result, bound_side=bound_side)
    result.barrier.update(
        {
            "system": system,
            "cv": info.get("cv", out_dir.name),
            "cv_kind": info.get("cv_kind", "distance" if radial else "height"),
            "min_neighbour_overlap": info["min_neighbour_overlap"],
            "mbar_wham_max_diff_kJ_mol": mw,
            "n_bootstrap": int(n_boot),
            "bootstrap_seed": int(seed),
        }
    )
    write_barrier(result.barrier, out_dir / "barrier.json")
    atomic_write_text(out_dir / "estimate.json", json.dumps(info, indent=2))
    if plots:
        from solvmd.pmf import plots as P

        P.plot_pmf(result, out_dir / "pmf.png")
    log.info(
        "pmf %s: min neighbour overlap %.3f, MBAR-WHAM max diff %.2f kJ/mol, dG_barrier %s",
        info.get("cv", ""), nbr.min(), mw, result.barrier.get("dG_barrier_kJ_mol"),
    )
    return result


def _system_from_path(out_dir: Path) -> str:
    parts = Path(out_dir).resolve().parts
    # results/<system>/pmf/<cv>
    if len(parts) >= 3 and parts[-2] == "pmf":
        return parts[-3]
    return ""


def _pymbar_version() -> str:
    try:
        import pymbar

        return pymbar.__version__
    except Exception:  # pragma: no cover
        return "?"


def read_pmf(path) -> pd.DataFrame:
    return pd.read_csv(path)
