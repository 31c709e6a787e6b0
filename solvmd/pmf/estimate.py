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

from solvmd import records
from solvmd.errors import SolvmdError
from solvmd.io import finite_json
from solvmd.pmf.io import atomic_write_text
from solvmd.pmf_spec import KB_KJ_MOL_K, PMFSpec, load_spec
from solvmd.pmf.mbar import (_bin_f, _log_weights, _lse0, block_bootstrap, reduced_bias, sampler_energies,
                              solve_mbar_newton, subsample)
from solvmd.pmf.windows import Window

log = logging.getLogger(__name__)


class PMFOverlapError(SolvmdError):
    """Neighbouring windows do not overlap: MBAR cannot connect them."""


class PMFCoverageError(SolvmdError):
    """Part of the range has no samples, or windows are missing."""


_OLD_NAMES = {  # earlier attribute names -> unit-suffixed fields
    "F_with": "F_with_volume_kJ_mol", "dF_with": "dF_with_volume_kJ_mol", "F_without": "F_without_volume_kJ_mol",
    "dF_without": "dF_without_volume_kJ_mol", "F_wham_with": "F_wham_with_volume_kJ_mol",
    "boot_with": "boot_with_volume_kJ_mol", "kT": "kT_kJ_mol", "mbar_wham_max_diff": "mbar_wham_max_diff_kJ_mol",
}


@dataclass
class PMFResult:
    """The estimate on bin centres ``cv_nm``: free energies (kJ/mol) in both volume conventions."""

    cv_nm: np.ndarray
    F_with_volume_kJ_mol: np.ndarray
    dF_with_volume_kJ_mol: np.ndarray
    F_without_volume_kJ_mol: np.ndarray
    dF_without_volume_kJ_mol: np.ndarray
    F_wham_with_volume_kJ_mol: np.ndarray
    counts: np.ndarray
    boot_with_volume_kJ_mol: np.ndarray  # (B, nbins) raw bootstrap F (not shifted)
    overlap: np.ndarray
    neighbour_overlap: np.ndarray
    windows: list[Window]
    edges: np.ndarray  # bin edges, nm
    kT_kJ_mol: float
    radial: bool
    volume_term: str
    mbar_wham_max_diff_kJ_mol: float
    info: dict = field(default_factory=dict)
    barrier: dict | None = None
    profile: pd.DataFrame | None = None

    def __getattr__(self, name):
        if name in _OLD_NAMES:
            return getattr(self, _OLD_NAMES[name])
        raise AttributeError(name)

    @property
    def F(self):
        """F (kJ/mol) in the convention of ``volume_term``."""
        return self.F_without_volume_kJ_mol if self.volume_term == "removed" else self.F_with_volume_kJ_mol

    @property
    def dF(self):
        return self.dF_without_volume_kJ_mol if self.volume_term == "removed" else self.dF_with_volume_kJ_mol

    def boot(self, volume_term: str | None = None) -> np.ndarray:
        """Bootstrap replicates in a convention (unshifted; NaN where a bin is empty)."""
        vt = volume_term or self.volume_term
        if vt == "removed" and self.radial:
            return self.boot_with_volume_kJ_mol + 2.0 * self.kT_kJ_mol * np.log(self.cv_nm)[None, :]
        return self.boot_with_volume_kJ_mol


# ---------------------------------------------------------------------------
def window_files(folder: Path) -> list[Path]:
    """Each window's first segment ``window_<k>.npz`` in a folder, by k (extensions not included)."""
    import re

    found = [(int(m.group(1)), p) for p in folder.glob("window_*.npz") if (m := re.match(records.WINDOW_NPZ_RE, p.name))]
    return [p for _, p in sorted(found)]


def _index_from_name(path: Path, fallback: int) -> int:
    """k of window_<k>.npz / window_<k>.s<j>.npz (``fallback`` for other names)."""
    import re

    m = re.match(r"^window_(\d+)\.", path.name)
    return int(m.group(1)) if m else fallback


def load_windows(paths) -> list[Window]:
    """Windows from ``window_<k>.npz`` files (or a folder holding them), sorted by centre."""
    if isinstance(paths, (str, Path)) and Path(paths).is_dir():
        paths = window_files(Path(paths))
    paths = [Path(p) for p in paths]
    if not paths:
        raise PMFCoverageError("no window_<k>.npz files to estimate from")
    out = []
    for p in paths:
        records.check_window_npz(p)  # the library refuses what the CLI refuses: one error naming the file
        with np.load(p) as z:
            x = np.asarray(z["cv_nm"], float)
            if not np.all(np.isfinite(x)):
                raise PMFCoverageError(f"{p}: CV samples contain NaN/inf")
            dt = float(z["timestep_fs"]) * int(z["sample_interval_steps"]) / 1000.0
            out.append(
                Window(int(z["window"]) if "window" in z else _index_from_name(p, len(out)), float(z["r0_nm"]),
                       float(z["k_kJ_mol_nm2"]),
                       float(z["temperature_K"]), x, dt, str(z["kind"]) if "kind" in z else "distance",
                       u_all=np.asarray(z["u_all_states"], float) if "u_all_states" in z else None)
            )
    temps = {w.temperature_K for w in out}
    if len(temps) != 1:
        raise SolvmdError(f"windows were sampled at different temperatures {sorted(temps)} K")
    return sorted(out, key=lambda w: w.r0_nm)


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


def wham_on_sub_bins(windows: list[Window], edges: np.ndarray, kT: float, max_bias_step_kT: float = 0.1) -> np.ndarray:
    """WHAM F (kT) on the bins ``edges`` (nm), solved on sub-bins fine enough for its one
    approximation (the bias is the value at the bin centre) to hold: no window's bias changes by
    more than ``max_bias_step_kT`` across a sub-bin over the sampled range. The sub-bin
    probabilities are then summed into each bin, so WHAM and the MBAR histogram are compared on
    the same bins. (On a 0.04 nm bin a k = 10,000 kJ/mol/nm^2 window's bias changes by ~4 kT near
    its centre: evaluating it once per bin biased the WHAM check by kJ/mol.)"""
    # steepest bias where a window has its own samples: d(0.5 k (x - r0)^2)/dx = k |x - r0|
    grad = max(w.k_kJ_mol_nm2 * max(float(np.max(np.abs(w.x - w.r0_nm))), math.sqrt(kT / w.k_kJ_mol_nm2)) for w in windows)
    fine_width = max_bias_step_kT * kT / grad
    n_sub = int(min(200, max(1, math.ceil(float(np.min(np.diff(edges))) / fine_width))))
    fine = np.concatenate([np.linspace(a, b, n_sub + 1)[:-1] for a, b in zip(edges[:-1], edges[1:])] + [edges[-1:]])
    F_fine = wham(windows, fine, kT)[0]
    p = np.where(np.isfinite(F_fine), np.exp(-(F_fine - np.nanmin(F_fine))), 0.0).reshape(len(edges) - 1, n_sub).sum(1)
    with np.errstate(divide="ignore"):
        return np.where(p > 0, -np.log(p), np.nan)


def _default_bin_width(windows, kT, spec: PMFSpec | None):
    """Half the narrowest window width or spacing, of the spec's own windows when there is a spec
    (windows added to close gaps do not make the bins finer)."""
    if spec is not None and spec.bin_width_nm is not None:
        return spec.bin_width_nm
    if spec is not None:
        r0, ks = spec.centers(), spec.k_values()
    else:
        r0, ks = np.array([w.r0_nm for w in windows]), np.array([w.k_kJ_mol_nm2 for w in windows])
    sig = float(np.min(np.sqrt(kT / ks)))
    return 0.5 * min(sig, float(np.min(np.diff(r0))) if len(r0) > 1 else sig)


@dataclass
class Settings:
    """Estimation settings resolved from the spec and the keyword overrides."""

    spec: PMFSpec | None
    kT_kJ_mol: float
    temperature_K: float
    radial: bool
    volume_term: str
    n_bootstrap: int
    seed: int
    min_overlap: float
    range_nm: tuple[float, float]


def _read_spec(window_dir: Path, spec):
    if spec is None and (window_dir / records.SPEC_JSON).is_file():
        return load_spec(json.loads((window_dir / records.SPEC_JSON).read_text()))
    return load_spec(spec) if spec is not None else None


def step_load(window_dir: Path, spec) -> tuple[list[Window], list[int]]:
    """Step 1: the sampled windows; missing spec windows are an error, missing added ones are returned."""
    if spec is None:
        return load_windows(window_dir), []
    from solvmd.pmf.windows import window_table

    table = window_table(spec, window_dir)
    n_base = len(spec.centers())
    missing = [w.k_index for w in table if not (window_dir / f"window_{w.k_index}.npz").is_file()]
    if [k for k in missing if k < n_base]:
        ks = [k for k in missing if k < n_base]
        raise PMFCoverageError(f"{window_dir / records.window_npz(ks[0])}: window file missing (pmf {spec.name}: "
                               f"windows {ks} not sampled yet); run `solvmd pmf-window` for them first")
    windows = [load_window_segments(window_dir, w.k_index) for w in table if w.k_index not in missing]
    check_not_stale(spec, table, windows, window_dir)
    return by_sampled_mean(windows), missing


def load_window_segments(window_dir: Path, k: int) -> Window:
    """Window k with its planned extensions (window_<k>.s<j>.npz, solvmd.pmf.extend) appended in order."""
    from solvmd.pmf.extend import window_segments

    paths = [window_dir / records.window_npz(k, j) for j in window_segments(window_dir, k)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise PMFCoverageError(f"extension segments {missing} planned in {window_dir / records.EXTEND_JSON} are not "
                               "sampled yet: rerun the same command (or pmf-window --window k --segment j)")
    parts = load_windows(paths)
    first = parts[0]
    if len(parts) == 1:
        return first
    first.x = np.concatenate([w.x for w in parts])
    if first.u_all is not None:
        first.u_all = np.concatenate([w.u_all for w in parts])
    return first


def check_not_stale(spec, table, windows: list[Window], window_dir: Path) -> None:
    """Window files sampled for other centres or force constants than the spec's are named as stale
    (not diagnosed later as overlap gaps)."""
    want = {w.k_index: (w.r0_nm, w.k_kJ_mol_nm2) for w in table}
    stale = [w for w in windows if not np.allclose((w.r0_nm, w.k_kJ_mol_nm2), want[w.k_index], rtol=1e-9, atol=1e-12)]
    if stale:
        made = ", ".join(f"window {w.k_index}: r0={w.r0_nm:.5g} nm, k={w.k_kJ_mol_nm2:g}" for w in stale)
        says = ", ".join(f"window {w.k_index}: r0={want[w.k_index][0]:.5g} nm, k={want[w.k_index][1]:g}" for w in stale)
        raise PMFCoverageError(f"pmf {spec.name}: stale window files in {window_dir}: made for {made}; the spec says "
                               f"{says}. Delete them (and their checkpoints) to resample, or use a new pmf name")


def by_sampled_mean(windows: list[Window]) -> list[Window]:
    """Windows in the order of where they sampled: a window that slid past a neighbour (or an
    added window) gets the neighbours it actually overlaps in the neighbour-overlap check."""
    return sorted(windows, key=lambda w: float(np.mean(w.x)))


def step_settings(windows, spec, n_bootstrap, seed, min_overlap) -> Settings:
    """Step 2: temperature, conventions and thresholds."""
    T = windows[0].temperature_K
    return Settings(
        spec=spec, kT_kJ_mol=KB_KJ_MOL_K * T, temperature_K=T,
        radial=spec.is_radial if spec is not None else windows[0].kind in ("distance", "site_distance"),
        volume_term=spec.barrier_volume_term if spec is not None else "removed",
        n_bootstrap=n_bootstrap if n_bootstrap is not None else (spec.n_bootstrap if spec is not None else 100),
        seed=seed if seed is not None else (spec.seed if spec is not None else 0),
        min_overlap=min_overlap if min_overlap is not None else (spec.min_overlap if spec is not None else 0.03),
        range_nm=tuple(spec.range_nm) if spec is not None else (windows[0].r0_nm, windows[-1].r0_nm),
    )


def step_bins(windows, st: Settings, bin_width_nm) -> np.ndarray:
    """Step 3: bin edges (nm) over the range."""
    lo, hi = st.range_nm
    width = bin_width_nm or _default_bin_width(windows, st.kT_kJ_mol, st.spec)
    return np.linspace(lo, hi, max(2, int(math.ceil((hi - lo) / width - 1e-6))) + 1)


def step_mbar(windows, st: Settings):
    """Step 4: decorrelate, then MBAR: (x_n nm, N_k, u_kn, f_k kT, overlap matrix, neighbour overlaps)."""
    from pymbar import MBAR

    subsample(windows)
    x_n = np.concatenate([w.x_sub for w in windows])
    N_k = np.array([len(w.x_sub) for w in windows])
    u_kn = sampler_energies(windows)
    if u_kn is None:
        u_kn = reduced_bias(windows, x_n, st.kT_kJ_mol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mbar = MBAR(u_kn, N_k)
    f_k = np.asarray(mbar.f_k, float)
    O = np.asarray(mbar.compute_overlap()["matrix"], float)
    return x_n, N_k, u_kn, f_k, O, cut_overlaps(O)


def cut_overlaps(O: np.ndarray) -> np.ndarray:
    """Overlap across each cut between windows i and i+1 (ordered by sampled mean): the largest
    min(O[a, b], O[b, a]) over pairs a <= i < b, i.e. the best bridge any two windows make across it.

    Equal to the neighbour overlap O[i, i+1] for evenly spaced windows of one force constant; where
    windows crowd (stiff windows added next to soft ones, or a window that slid onto another's
    place), a pair other than the two adjacent ones can carry the connection MBAR needs."""
    O = np.minimum(O, O.T)
    n = len(O)
    return np.array([float(O[: i + 1, i + 1:].max()) for i in range(n - 1)])


def step_info(windows, st: Settings, edges, N_k, f_k, u_kn, O, nbr) -> dict:
    """Step 5: the diagnostics written to estimate.json (drift of each window included)."""
    newton = float(np.max(np.abs(solve_mbar_newton(u_kn, N_k, np.zeros(len(N_k))) - f_k)))
    drift = [(float(np.mean(w.x)) - w.r0_nm) / math.sqrt(st.kT_kJ_mol / w.k_kJ_mol_nm2) for w in windows]
    return {
        "temperature_K": st.temperature_K, "kT_kJ_mol": st.kT_kJ_mol, "n_windows": len(windows),
        "window_index": [w.k_index for w in windows], "r0_nm": [w.r0_nm for w in windows],
        "k_kJ_mol_nm2": [w.k_kJ_mol_nm2 for w in windows], "n_samples": [int(len(w.x)) for w in windows],
        "sampled_ps_per_window": [float(len(w.x) * w.dt_sample_ps) for w in windows],
        "statistical_inefficiency": [w.g for w in windows], "n_uncorrelated": N_k.tolist(),
        "statistical_inefficiency_cv": [w.g_cv for w in windows],
        "statistical_inefficiency_energy": [w.g_energy for w in windows],
        "sampler": _sampler_label(windows),
        "u_kn_source": "exchange sampler's recorded reduced energies" if all(w.u_all is not None for w in windows)
                       else "analytic bias 0.5 k (x - r0)^2 / kT of the recorded CV (the same numbers the exchange "
                            "sampler records, for every window when some ran independently)",
        "window_mean_nm": [float(np.mean(w.x)) for w in windows], "window_sd_nm": [float(np.std(w.x)) for w in windows],
        "window_drift_sigma": drift, "neighbour_overlap": nbr.tolist(), "min_neighbour_overlap": float(nbr.min()),
        "neighbour_overlap_is": "overlap across the cut between windows adjacent in sampled mean: the best "
                                "min(O_ab, O_ba) of any pair bridging it (solvmd.pmf.estimate.cut_overlaps)",
        "min_overlap_threshold": st.min_overlap, "overlap_matrix": O.tolist(),
        "bin_width_nm": float(edges[1] - edges[0]), "n_bootstrap": int(st.n_bootstrap),
        "bootstrap_seed": int(st.seed), "f_k_kT": f_k.tolist(), "newton_vs_pymbar_max_diff_kT": newton,
        "estimator": "pymbar MBAR + FES histogram (pymbar %s)" % _pymbar_version(),
    }


def _sampler_label(windows: list[Window]) -> str:
    n_ex = sum(w.u_all is not None for w in windows)
    if n_ex == 0:
        return "independent"
    return "exchange" if n_ex == len(windows) else f"exchange + {len(windows) - n_ex} independent gap window(s)"


def step_check_overlap(windows, st: Settings, nbr, info, out_dir: Path, missing: list[int]) -> None:
    """Step 6: a neighbour overlap below the threshold stops here; the windows that close the gap
    are proposed (and with ``add_windows`` written to added_windows.json for the rerun)."""
    if nbr.min() >= st.min_overlap:
        return
    from solvmd.pmf.windows import ADDED, propose_windows

    i = int(np.argmin(nbr))
    atomic_write_text(out_dir / records.ESTIMATE_JSON, json.dumps(info, indent=2))
    msg = (f"windows {windows[i].k_index} and {windows[i + 1].k_index} (r0={windows[i].r0_nm:.4g} and {windows[i + 1].r0_nm:.4g} nm) "
           f"overlap only {nbr[i]:.3g} < min_overlap={st.min_overlap:g} (MBAR overlap matrix, see "
           f"{out_dir / 'overlap.png'}): the PMF across this gap is not determined. Add windows between them (smaller "
           "spacing), lower k_kJ_mol_nm2, or raise it if a window slid away from its centre "
           f"(window means {info['window_mean_nm'][i]:.4g}, {info['window_mean_nm'][i + 1]:.4g} nm).")
    spec = st.spec
    if missing:
        msg += f" Added windows {missing} ({out_dir / ADDED}) are not sampled yet: rerun the same command."
    elif spec is not None:
        prop = propose_windows(windows, nbr, st.min_overlap, st.kT_kJ_mol, spec.min_predicted_overlap)
        info["proposed_windows"] = prop
        atomic_write_text(out_dir / records.ESTIMATE_JSON, json.dumps(info, indent=2))
        desc = ", ".join(f"r0={p['r0_nm']:.4g} nm k={p['k_kJ_mol_nm2']:g}" for p in prop)
        if spec.add_windows:
            msg += _add_proposals(spec, out_dir, prop, f"overlap gaps below {st.min_overlap:g}")
        else:
            msg += f" Proposed windows (add_windows is off): {desc}."
    raise PMFOverlapError(msg)


def _add_proposals(spec: PMFSpec, out_dir: Path, prop: list[dict], reason: str) -> str:
    """Write ``prop`` to added_windows.json unless that passes ``max_added_windows``; the sentence
    for the error message either way."""
    from solvmd.pmf.windows import ADDED, added_windows, write_added_windows

    n_added = len(added_windows(out_dir))
    if n_added + len(prop) > spec.max_added_windows:
        return (f" Nothing added: {n_added} windows were added already and more would pass "
                f"max_added_windows={spec.max_added_windows}. Windows that keep sliding from their centres mean the "
                f"PMF changes faster than equil_ps={spec.equil_ps:g} + sample_ps={spec.sample_ps:g} ps let the "
                "liquid follow: raise equil_ps/sample_ps (and k_kJ_mol_nm2 near the contact wall), delete "
                "added_windows.json and rerun.")
    write_added_windows(out_dir, prop, reason)
    desc = ", ".join(f"r0={p['r0_nm']:.4g} nm k={p['k_kJ_mol_nm2']:g}" for p in prop)
    return f" Proposed and added to {out_dir / ADDED}: {desc}; rerun the same command to sample only these."


def _empty_segments(edges, counts) -> list[tuple[float, float]]:
    """Contiguous runs of empty bins as (lo, hi) nm."""
    out, start = [], None
    for i, c in enumerate(list(counts) + [1]):
        if c == 0 and start is None:
            start = i
        elif c != 0 and start is not None:
            out.append((float(edges[start]), float(edges[i])))
            start = None
    return out


def step_check_coverage(windows, edges, counts, info, st: Settings, out_dir: Path, missing: list[int]) -> None:
    """Step 7: every bin of the range must hold samples; windows for the empty parts are proposed
    (and with ``add_windows`` written to added_windows.json for the rerun)."""
    empty = np.nonzero(counts == 0)[0]
    if not empty.size:
        return
    lo, hi = st.range_nm
    msg = (f"no samples in {empty.size} bins of the range, first gap {edges[empty[0]]:.4g}-{edges[empty[0] + 1]:.4g} nm "
           f"(last empty bin ends {edges[empty[-1] + 1]:.4g} nm): the windows do not cover range_nm [{lo}, {hi}]. "
           "Add windows there, or raise k_kJ_mol_nm2 if windows slid away from their centres "
           f"(centres {np.round([w.r0_nm for w in windows], 4).tolist()}, means "
           f"{np.round(info['window_mean_nm'], 4).tolist()}).")
    spec = st.spec
    if missing:
        msg += f" Added windows {missing} are not sampled yet: rerun the same command."
    elif spec is not None and spec.add_windows:
        from solvmd.pmf.windows import propose_for_empty

        prop = propose_for_empty(windows, _empty_segments(edges, counts), st.kT_kJ_mol, spec.min_predicted_overlap)
        info["proposed_windows"] = prop
        msg += _add_proposals(spec, out_dir, prop, "unsampled parts of the range")
    atomic_write_text(out_dir / records.ESTIMATE_JSON, json.dumps(info, indent=2))
    raise PMFCoverageError(msg)


def step_fes(x_n, N_k, u_kn, f_k, edges, info, kT) -> np.ndarray:
    """Step 8: central estimate, F with the volume term (kJ/mol, unshifted), pymbar FES histogram."""
    from pymbar import FES

    centres = 0.5 * (edges[1:] + edges[:-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fes = FES(u_kn, N_k, mbar_options={"initial_f_k": f_k})  # timings=False breaks pymbar 4.0.3 generate_fes
        fes.generate_fes(np.zeros(len(x_n)), x_n, fes_type="histogram", histogram_parameters={"bin_edges": [edges]})
        res = fes.get_fes(centres.reshape(-1, 1), reference_point="from-lowest", uncertainty_method=None)
    f_fes = np.asarray(res["f_i"], float)
    f_mine = _bin_f(x_n, _log_weights(u_kn, N_k, f_k), edges)
    info["fes_vs_direct_max_diff_kT"] = float(np.nanmax(np.abs(f_fes - (f_mine - np.nanmin(f_mine)))))
    return kT * f_fes


def _shifted(Fc, Fb):
    """Zero at the central minimum; bootstrap sd of F(x) - F(x_min)."""
    j = int(np.nanargmin(Fc))
    d = Fb - Fb[:, [j]]
    return Fc - Fc[j], (np.nanstd(d, axis=0, ddof=1) if len(Fb) > 1 else np.zeros_like(Fc))


def step_wham(windows, edges, counts, F_mbar_with, kT, info) -> tuple[np.ndarray, float]:
    """Step 10: binned WHAM on the same samples; (F_wham with volume, zeroed; max |WHAM - MBAR| kJ/mol)."""
    Fw = kT * wham_on_sub_bins(windows, edges, kT)
    good = counts >= max(10, 0.001 * counts.sum())
    if not good.any():
        raise PMFCoverageError(f"no PMF bin has 10 or more samples ({int(counts.sum())} samples in {len(counts)} bins): "
                               "sample the windows longer (sample_ps) or use wider bins (bin_width_nm)")
    diff = (Fw - F_mbar_with)[good]
    diff -= np.average(diff, weights=counts[good])
    mw = float(np.max(np.abs(diff)))
    info["mbar_wham_max_diff_kJ_mol"] = mw
    info["mbar_wham_compared_bins"] = int(good.sum())
    if mw > 1.0:
        msg = f"MBAR and WHAM PMFs differ by up to {mw:.2f} kJ/mol (> 1 kJ/mol): sample longer or use more windows"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        log.warning(msg)
    return Fw - np.nanmin(Fw), mw


def estimate_pmf(window_dir, spec=None, out_dir=None, bin_width_nm: float | None = None,
                 n_bootstrap: int | None = None, seed: int | None = None, min_overlap: float | None = None,
                 system: str | None = None, plots: bool = True) -> PMFResult:
    """Estimate the PMF from ``window_dir/window_<k>.npz`` and write the outputs.

    Writes into ``out_dir`` (default ``window_dir``): ``pmf.csv``, ``profile.csv`` (the
    desolvation profile, when the windows counted shells), ``estimate.json``, ``barrier.json``,
    and with ``plots``: ``pmf.png`` (PMF over the profile), ``overlap.png``, ``histograms.png``.
    ``spec`` (PMFSpec, dict or file; default ``window_dir/spec.json``) gives the range, the
    windows and the settings; keyword arguments override it. Raises :class:`PMFOverlapError`
    (after writing the diagnostic figures and, with ``add_windows``, the windows that close the
    gap) when the smallest neighbour overlap is below ``min_overlap``, and
    :class:`PMFCoverageError` for missing windows or an unsampled part of the range.
    """
    window_dir = Path(window_dir)
    out_dir = Path(out_dir) if out_dir is not None else window_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = _read_spec(window_dir, spec)
    windows, missing = step_load(window_dir, spec)
    if len(windows) < 2:
        raise PMFCoverageError("need at least two windows")
    st = step_settings(windows, spec, n_bootstrap, seed, min_overlap)
    edges = step_bins(windows, st, bin_width_nm)
    x_n, N_k, u_kn, f_k, O, nbr = step_mbar(windows, st)
    info = step_info(windows, st, edges, N_k, f_k, u_kn, O, nbr)
    counts = np.histogram(x_n, bins=edges)[0]
    if plots:
        from solvmd.pmf import plots as P

        P.plot_overlap(O, [w.r0_nm for w in windows], out_dir / "overlap.png")
        P.plot_histograms(windows, edges, out_dir / "histograms.png")
    step_check_overlap(windows, st, nbr, info, out_dir, missing)
    step_check_coverage(windows, edges, counts, info, st, out_dir, missing)
    kT = st.kT_kJ_mol
    F_raw = step_fes(x_n, N_k, u_kn, f_k, edges, info, kT)
    boot = block_bootstrap(x_n, N_k, u_kn, f_k, edges, kT, st.n_bootstrap, st.seed)
    centres = 0.5 * (edges[1:] + edges[:-1])
    vol = 2.0 * kT * np.log(centres) if st.radial else np.zeros(len(centres))
    F_with, dF_with = _shifted(F_raw, boot)
    F_without, dF_without = _shifted(F_raw + vol, boot + vol[None, :])
    F_wham, mw = step_wham(windows, edges, counts, F_raw, kT, info)
    result = PMFResult(cv_nm=centres, F_with_volume_kJ_mol=F_with, dF_with_volume_kJ_mol=dF_with,
                       F_without_volume_kJ_mol=F_without, dF_without_volume_kJ_mol=dF_without,
                       F_wham_with_volume_kJ_mol=F_wham, counts=counts, boot_with_volume_kJ_mol=boot, overlap=O,
                       neighbour_overlap=nbr, windows=windows, edges=edges, kT_kJ_mol=kT, radial=st.radial,
                       volume_term=st.volume_term, mbar_wham_max_diff_kJ_mol=mw, info=info)
    step_write(result, st, vol, out_dir, window_dir, system, plots)
    return result


def step_write(result: PMFResult, st: Settings, vol, out_dir: Path, window_dir: Path, system, plots) -> None:
    """Step 11: pmf.csv, profile.csv, barrier.json, estimate.json and pmf.png."""
    from solvmd.pmf.barrier import barrier_from_result, write_barrier
    from solvmd.pmf.profile import write_profile

    info, spec = result.info, st.spec
    F_wham = result.F_wham_with_volume_kJ_mol + (vol if st.volume_term == "removed" else 0.0)
    df = pd.DataFrame({
        "cv_nm": result.cv_nm, "F_kJ_mol": result.F, "dF_kJ_mol": result.dF,
        "F_with_volume_kJ_mol": result.F_with_volume_kJ_mol, "dF_with_volume_kJ_mol": result.dF_with_volume_kJ_mol,
        "F_without_volume_kJ_mol": result.F_without_volume_kJ_mol,
        "dF_without_volume_kJ_mol": result.dF_without_volume_kJ_mol, "F_wham_kJ_mol": F_wham - np.nanmin(F_wham),
        "n_samples": result.counts})
    atomic_write_text(out_dir / "pmf.csv", df.to_csv(index=False, float_format="%.6g"))
    info["pmf_csv_F_kJ_mol_volume_term"] = st.volume_term if st.radial else "none"
    paths = [window_dir / f"window_{w.k_index}.npz" for w in result.windows]
    result.profile = write_profile(paths, out_dir / "profile.csv") if all(p.is_file() for p in paths) else None
    if spec is not None:
        info["cv"], info["cv_kind"] = spec.name, spec.cv.kind
    result.barrier = barrier_from_result(result, bound_side=spec.bound_side if spec is not None else "low",
                                         cv_kind=info.get("cv_kind"))
    result.barrier.update({
        "system": system or _system_from_path(out_dir), "cv": info.get("cv", out_dir.name),
        "cv_kind": info.get("cv_kind", "distance" if st.radial else "height"),
        "min_neighbour_overlap": info["min_neighbour_overlap"], "mbar_wham_max_diff_kJ_mol": info[
            "mbar_wham_max_diff_kJ_mol"], "n_windows": info["n_windows"],
        "sampled_ps_per_window": float(np.median(info["sampled_ps_per_window"])),
        "n_bootstrap": int(st.n_bootstrap), "bootstrap_seed": int(st.seed), "sampler": info["sampler"],
        "error_kind": "within-run bootstrap standard deviation over decorrelated samples (one run; see "
                      "convergence.reasons, and repeats for the between-run spread)"})
    conv = _assess(result, spec, st.seed)
    sampling = _plan_sampling(result, spec, out_dir, st)
    if sampling["status"] == "extending":
        conv["converged"] = False
        conv["reasons"] = [r for r in conv["reasons"] if r != "all checks passed"] + [
            f"extending: {sampling['next_round']['reason']}; {sampling['note']}"]
    elif sampling["status"] == "budget used" and not conv["converged"]:
        conv["reasons"].append(f"sampling budget used ({sampling['note']})")
    result.barrier.update(converged=conv["converged"], converged_reason="; ".join(conv["reasons"]),
                          convergence={k: v for k, v in conv.items() if k != "series"}, sampling=sampling)
    write_barrier(result.barrier, out_dir / records.BARRIER_JSON)
    atomic_write_text(out_dir / records.ESTIMATE_JSON, json.dumps(finite_json(info), indent=2))
    if plots:
        from solvmd.pmf import plots as P

        P.plot_pmf(result, out_dir / "pmf.png")
        P.plot_convergence(conv["series"], out_dir / "convergence.png")
    log.info("pmf %s: min neighbour overlap %.3f, MBAR-WHAM max diff %.2f kJ/mol, dG_barrier %s", info.get("cv", ""),
             info["min_neighbour_overlap"], info["mbar_wham_max_diff_kJ_mol"], result.barrier.get("dG_barrier_kJ_mol"))


def _plan_sampling(result: PMFResult, spec, out_dir: Path, st: Settings) -> dict:
    """The ``sampling`` block: target met, budget used, or the next extension round (extend.json)."""
    from solvmd.pmf.convergence import headline_name, quantities
    from solvmd.pmf.extend import plan_extension, window_contributions

    contributions = None
    if spec is not None and spec.target_error_kJ_mol is not None and spec.sampler == "independent":
        head = headline_name(result.barrier)
        q = next((q for q in quantities(result.barrier, result.cv_nm) if q.name in (head, "dG_barrier")), None)
        if q is not None:
            vol = 2.0 * result.kT_kJ_mol * np.log(result.cv_nm) if result.radial and result.volume_term == "removed" \
                else np.zeros(len(result.cv_nm))
            x_n = np.concatenate([w.x_sub for w in result.windows])
            N_k = np.array([len(w.x_sub) for w in result.windows])
            u_kn = reduced_bias(result.windows, x_n, st.kT_kJ_mol)
            f_k = solve_mbar_newton(u_kn, N_k, np.zeros(len(N_k)))
            contributions = window_contributions(result.windows, x_n, N_k, u_kn, f_k, result.edges, st.kT_kJ_mol, q,
                                                 vol, st.seed)
    return plan_extension(result, spec, out_dir, contributions)


def _assess(result: PMFResult, spec, seed: int) -> dict:
    """The convergence verdict (:func:`solvmd.pmf.convergence.assess`); a PMF whose checks cannot be
    computed is not converged, with the reason."""
    from solvmd.pmf.convergence import assess

    try:
        return assess(result, spec, seed)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
        return {"converged": False, "reasons": [f"convergence checks failed: {err}"], "series": {}}


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
