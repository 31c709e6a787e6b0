"""The window table of a PMF: centres and force constants, predicted overlap, added windows.

A PMF folder's windows are the spec's windows (indices 0..n-1, in centre order) followed by
the windows an estimate proposed to close overlap or coverage gaps (``added_windows.json``,
indices n, n+1, ...).
Indices never change once given, so finished ``window_<k>.npz`` files stay valid and a rerun
of the same command samples only the new windows.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erfc, erfcinv

from solvmd.pmf.io import atomic_write_text
from solvmd.pmf_spec import PMFSpec, PMFSpecError, load_spec

log = logging.getLogger(__name__)

ADDED = "added_windows.json"


class PMFWarning(UserWarning):
    """A PMF setting that will probably give a poor estimate (raised before running)."""


@dataclass
class Window:
    """One umbrella window: index k, centre r0 (nm), force constant (kJ/mol/nm^2) — what the spec and an
    estimate's proposals define — and, once sampled, its CV samples (nm) and their decorrelation."""

    k_index: int
    r0_nm: float
    k_kJ_mol_nm2: float
    temperature_K: float | None = None
    x: np.ndarray | None = None  # CV samples (nm), time-ordered, extensions appended
    dt_sample_ps: float | None = None
    kind: str = "distance"
    g: float = 1.0  # statistical inefficiency (in samples): max of the CV's and, under exchange, the energy's
    x_sub: np.ndarray | None = None  # decorrelated samples
    u_all: np.ndarray | None = None  # exchange: (n_samples, n_states) reduced energies recorded by the sampler
    sub_idx: np.ndarray | None = None  # indices of the decorrelated samples
    g_cv: float = 1.0
    g_energy: float | None = None

    def sigma_nm(self, kT: float) -> float:
        """Width sqrt(kT/k) (nm) on a flat PMF."""
        return math.sqrt(kT / self.k_kJ_mol_nm2)

    def sliced(self, part: slice) -> "Window":
        """The same window restricted to the samples ``part`` (for forward/reverse and half estimates)."""
        return Window(self.k_index, self.r0_nm, self.k_kJ_mol_nm2, self.temperature_K, self.x[part],
                      self.dt_sample_ps, self.kind, u_all=None if self.u_all is None else self.u_all[part])


def window_centers(spec: PMFSpec) -> np.ndarray:
    """The spec's window centres in nm (increasing); added windows not included."""
    return spec.centers()


def added_windows(out_dir) -> list[dict]:
    """Windows proposed by an earlier estimate (``added_windows.json``), [] when none."""
    if out_dir is None or not (Path(out_dir) / ADDED).is_file():
        return []
    path = Path(out_dir) / ADDED
    try:
        data = json.loads(path.read_text())
        return [{"r0_nm": float(w["r0_nm"]), "k_kJ_mol_nm2": float(w["k_kJ_mol_nm2"])} for w in data["windows"]]
    except (ValueError, KeyError, TypeError) as err:
        raise PMFSpecError(f"{path}: unreadable ({err}); it needs windows: [{{r0_nm, k_kJ_mol_nm2}}, ...]; "
                           "delete it to run the spec's windows only") from None


def window_table(spec, out_dir=None) -> list[Window]:
    """Every window of the PMF folder ``out_dir``: the spec's, then the added ones."""
    spec = load_spec(spec)
    base = [Window(k, float(c), float(kk)) for k, (c, kk) in enumerate(zip(spec.centers(), spec.k_values()))]
    extra = [Window(len(base) + j, w["r0_nm"], w["k_kJ_mol_nm2"]) for j, w in enumerate(added_windows(out_dir))]
    return base + extra


def n_windows(spec, out_dir=None) -> int:
    """Number of windows (for the Snakemake fan-out), added windows of ``out_dir`` included."""
    return len(window_table(spec, out_dir))


def window_width(spec: PMFSpec) -> float:
    """Width sqrt(kT/k) (nm) of the softest window on a flat PMF."""
    return math.sqrt(spec.kT / float(np.min(spec.k_values())))


def pair_overlap(d_nm: float, s1: float, s2: float) -> float:
    """Overlap coefficient of two Gaussians (widths s1, s2 nm) whose centres are d_nm apart."""
    if math.isclose(s1, s2, rel_tol=1e-12):
        return float(erfc(abs(d_nm) / (2.0 * math.sqrt(2.0) * s1)))
    x = np.linspace(-6 * max(s1, s2), abs(d_nm) + 6 * max(s1, s2), 4001)
    p1 = np.exp(-0.5 * (x / s1) ** 2) / (s1 * math.sqrt(2 * math.pi))
    p2 = np.exp(-0.5 * ((x - abs(d_nm)) / s2) ** 2) / (s2 * math.sqrt(2 * math.pi))
    return float(np.trapezoid(np.minimum(p1, p2), x))


def predicted_overlap(spec: PMFSpec) -> np.ndarray:
    """Flat-PMF predicted overlap of each neighbour pair of the spec's windows (1 identical, 0 disjoint):
    erfc(spacing / (2 sqrt(2) sigma)) for equal widths sigma = sqrt(kT/k)."""
    c, s = spec.centers(), np.sqrt(spec.kT / spec.k_values())
    return np.array([pair_overlap(c[i + 1] - c[i], s[i], s[i + 1]) for i in range(len(c) - 1)])


def max_spacing_nm(sigma_nm: float, min_overlap: float) -> float:
    """Largest spacing (nm) at which two windows of width sigma still overlap ``min_overlap``."""
    return 2.0 * math.sqrt(2.0) * sigma_nm * float(erfcinv(min_overlap))


def _gap_message(spec: PMFSpec, ov: np.ndarray) -> str | None:
    worst = int(np.argmin(ov))
    if ov[worst] >= spec.min_predicted_overlap:
        return None
    c, ks = spec.centers(), spec.k_values()
    gap, k = c[worst + 1] - c[worst], float(max(ks[worst], ks[worst + 1]))
    sigma = math.sqrt(spec.kT / k)
    z = float(erfcinv(spec.min_predicted_overlap))
    return (f"pmf {spec.name}: force constant k={k:g} kJ/mol/nm^2 does not match the window spacing {gap:.4g} nm: "
            f"each window spans only sigma=sqrt(kT/k)={sigma:.4g} nm, so neighbour windows {worst} and {worst + 1} "
            f"(r0={c[worst]:.4g}, {c[worst + 1]:.4g} nm) are predicted to overlap {ov[worst]:.3g} < "
            f"min_predicted_overlap={spec.min_predicted_overlap:g}. Use spacing <= "
            f"{max_spacing_nm(sigma, spec.min_predicted_overlap):.3g} nm or k <= "
            f"{spec.kT * (2.0 * math.sqrt(2.0) * z / gap) ** 2:.3g} kJ/mol/nm^2.")


def check_windows(spec: PMFSpec, warn: bool = True, strict: bool = False) -> list[str]:
    """Checks before running; returns the messages (issued as :class:`PMFWarning`, or with
    ``strict`` raised as one :class:`PMFSpecError` before any MD runs)."""
    msgs = [m for m in [_gap_message(spec, predicted_overlap(spec))] if m]
    lo, hi = spec.range_nm
    sigma = window_width(spec)
    if sigma > 0.5 * (hi - lo):
        msgs.append(f"pmf {spec.name}: force constant k={float(np.min(spec.k_values())):g} kJ/mol/nm^2 is too weak "
                    f"to localise windows: sigma=sqrt(kT/k)={sigma:.3g} nm exceeds half the range {hi - lo:.3g} nm; "
                    "raise k.")
    if strict and msgs:
        raise PMFSpecError("\n".join(msgs) + "\n(nothing was run)")
    if warn:
        for m in msgs:
            warnings.warn(m, PMFWarning, stacklevel=2)
            log.warning(m)
    return msgs


# Stiffest force constant a gap proposal may use (kJ/mol/nm^2; width 0.007 nm at 298 K). Without
# it the 4x rule compounded over rounds on the demo (Mg2+ at Zn-N4 reached 640,000 after 5 rounds)
# where the PMF is steeper than short windows can follow: more rounds cannot fix too little sampling.
K_MAX_KJ_MOL_NM2 = 50000.0


def _drift_widths(w, kT: float) -> float:
    """How far window ``w``'s sampled mean sits from its centre, in restraint widths sqrt(kT/k)."""
    return abs(float(np.mean(w.x)) - w.r0_nm) / math.sqrt(kT / w.k_kJ_mol_nm2)


def propose_windows(wins: list, overlap: np.ndarray, min_overlap: float, kT: float,
                    min_predicted_overlap: float, stiffen: float = 4.0, slid_widths: float = 3.0) -> list[dict]:
    """Windows that close each neighbour gap with MBAR overlap below ``min_overlap``.

    ``wins``: sampled windows sorted by centre, each with ``r0``, ``kspring``, ``x`` (samples, nm).
    A window that slid from its centre measures the local mean force: F'(mean) ~ k (r0 - mean).
    New windows (force constant of the stiffer neighbour, times ``stiffen`` when a neighbour slid
    more than ``slid_widths`` restraint widths: the PMF is steep there and windows as soft as it
    slide again, round after round) go at evenly spaced targets between the two sampled means,
    each centre shifted by F'/k (F' interpolated linearly) so that its sampled mean lands on the
    target; spacing <= the one giving ``min_predicted_overlap``.
    Returns [{r0_nm, k_kJ_mol_nm2, target_nm, between}].
    """
    out = []
    for i in np.nonzero(np.asarray(overlap) < min_overlap)[0]:
        a, b = wins[i], wins[i + 1]
        ma, mb = float(np.mean(a.x)), float(np.mean(b.x))
        lo, hi = min(ma, mb), max(ma, mb)
        k = max(a.k_kJ_mol_nm2, b.k_kJ_mol_nm2) * (stiffen if max(_drift_widths(a, kT), _drift_widths(b, kT)) > slid_widths else 1.0)
        k = min(k, max(K_MAX_KJ_MOL_NM2, a.k_kJ_mol_nm2, b.k_kJ_mol_nm2))
        n = max(1, int(math.ceil((hi - lo) / max_spacing_nm(math.sqrt(kT / k), min_predicted_overlap))) - 1)
        fa, fb = a.k_kJ_mol_nm2 * (a.r0_nm - ma), b.k_kJ_mol_nm2 * (b.r0_nm - mb)  # mean force at each sampled mean, kJ/mol/nm
        for t in np.linspace(lo, hi, n + 2)[1:-1]:
            slope = fa + (fb - fa) * (t - ma) / (mb - ma) if mb != ma else 0.5 * (fa + fb)
            out.append(_not_a_repeat(float(t), slope, k, wins + out, kT, stiffen) | {"between": [a.k_index, b.k_index]})
    return out


def _not_a_repeat(target: float, force: float, k: float, existing: list, kT: float, stiffen: float) -> dict:
    """A window aimed at ``target`` (nm) against the mean force ``force`` (kJ/mol/nm): centre
    target + force/k. Where a window of the same k already sits within half a width of that centre
    (sampled, or proposed in this round), it slid away once and would again: k is raised by
    ``stiffen`` (up to K_MAX_KJ_MOL_NM2) until the proposal is new."""
    def taken(r0: float, kk: float) -> bool:
        for w in existing:
            w_r0, w_k = (w.r0_nm, w.k_kJ_mol_nm2) if hasattr(w, "k_kJ_mol_nm2") else (w["r0_nm"], w["k_kJ_mol_nm2"])
            if math.isclose(w_k, kk, rel_tol=1e-3) and abs(w_r0 - r0) < 0.5 * math.sqrt(kT / kk):
                return True
        return False

    r0 = target + force / k
    while taken(r0, k) and k < K_MAX_KJ_MOL_NM2:
        k = min(k * stiffen, K_MAX_KJ_MOL_NM2)
        r0 = target + force / k
    return {"r0_nm": round(r0, 5), "k_kJ_mol_nm2": round(k, 3), "target_nm": round(target, 5)}


def propose_for_empty(wins: list, segments: list[tuple[float, float]], kT: float,
                      min_predicted_overlap: float, stiffen: float = 4.0) -> list[dict]:
    """Windows for parts of the range no window sampled (``segments``: (lo, hi) nm), e.g. a contact
    wall or a range end the windows slid away from. Each gets ``stiffen`` x the force constant of
    the window whose sampled mean is nearest, and its centre shifted by that window's mean force
    F' ~ k (r0 - mean) over the new k, so it samples inside the segment."""
    out = []
    for lo, hi in segments:
        mid = 0.5 * (lo + hi)
        w = min(wins, key=lambda v: abs(float(np.mean(v.x)) - mid))
        k = min(stiffen * w.k_kJ_mol_nm2, max(K_MAX_KJ_MOL_NM2, w.k_kJ_mol_nm2))
        force = w.k_kJ_mol_nm2 * (w.r0_nm - float(np.mean(w.x)))
        n = max(1, int(math.ceil((hi - lo) / max_spacing_nm(math.sqrt(kT / k), min_predicted_overlap))))
        for t in lo + (np.arange(n) + 0.5) * (hi - lo) / n:
            out.append(_not_a_repeat(float(t), force, k, wins + out, kT, stiffen) | {"between": [w.k_index]})
    return out


def write_added_windows(out_dir, proposals: list[dict], reason: str) -> Path:
    """Append ``proposals`` to ``added_windows.json`` (atomically); returns its path."""
    path = Path(out_dir) / ADDED
    old = json.loads(path.read_text())["windows"] if path.is_file() else []
    data = {"windows": old + [dict(p, reason=reason) for p in proposals],
            "note": "windows added to close overlap or coverage gaps; indices follow the spec's windows in this order"}
    return atomic_write_text(path, json.dumps(data, indent=2))
