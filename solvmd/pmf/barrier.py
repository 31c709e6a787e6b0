"""Barrier extraction from a PMF: bound minimum, transition state, dG_barrier and dG with errors.

Definitions (``bound_side="low"``; ``"high"`` mirrors them):

- bound state: the first significant minimum from the low end of the range (an end point
  counts when F rises from it by at least the prominence threshold);
- transition state: the first significant maximum after the bound state and before the
  next significant minimum (else the highest point after the bound state);
- dG_barrier = F(TS) - F(bound); dG = F(far end of the range) - F(bound) (end to end);
  dG_reverse = F(TS) - F(product), product = next minimum after the TS, else the far end.

"Significant": prominence >= max(0.5 kJ/mol, 3 x median bootstrap error). Uncertainties are
bootstrap standard deviations of the same differences evaluated at the same CV points.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from scipy.signal import find_peaks

from solvmd.io import finite_json
from solvmd.pmf.io import atomic_write_text
from solvmd.pmf_spec import KJ_PER_KCAL

VOLUME_NOTE = {
    "removed": "F(r) = -kT ln p(r) + 2kT ln r (= -kT ln g(r) + const): the 2kT ln r volume term is removed",
    "included": "F(r) = -kT ln p(r): includes the -2kT ln r volume (Jacobian) entropy of the distance",
    "none": "Cartesian CV (height): no volume term",
}


def _first_min_at_end(x, p) -> bool:
    below = np.nonzero(x < x[0])[0]
    seg = x[: below[0]] if below.size else x
    return bool(seg.max() - x[0] >= p)


def find_barrier(cv, F, boot=None, bound_side: str = "low", prominence_kJ_mol: float | None = None) -> dict:
    """Indices and values of bound state, TS, far end and product (see module docstring)."""
    cv = np.asarray(cv, float)
    F = np.asarray(F, float)
    ok = np.isfinite(F)
    if not ok.all():
        raise ValueError("PMF has empty bins; cannot locate the barrier")
    if prominence_kJ_mol is None:
        if boot is not None and len(boot) > 1:
            dF = np.nanstd(boot - boot[:, [int(np.argmin(F))]], axis=0, ddof=1)
            prominence_kJ_mol = max(0.5, 3.0 * float(np.nanmedian(dF)))
        else:
            prominence_kJ_mol = 0.5
    p = prominence_kJ_mol
    n = len(F)
    order = np.arange(n) if bound_side == "low" else np.arange(n)[::-1]
    x = F[order]
    mins = list(find_peaks(-x, prominence=p)[0])
    maxs = list(find_peaks(x, prominence=p)[0])
    warn = []
    if _first_min_at_end(x, p):
        bound, found = 0, True
    elif mins:
        bound, found = mins[0], True
    else:
        bound, found = 0, False
        warn.append("no bound-state minimum in the range: the PMF falls from the bound side; extend range_nm")
    nxt = next((m for m in mins if m > bound), None)
    stop = nxt if nxt is not None else n - 1
    cand = [m for m in maxs if bound < m < stop]
    ts = cand[0] if cand else bound + int(np.argmax(x[bound : stop + 1]))
    ts_end = ts == n - 1
    if ts_end:
        warn.append("the maximum is at the end of the range: the transition state is not resolved; extend range_nm")
    prod = next((m for m in mins if m > ts), None)
    far = n - 1
    idx = {k: int(order[v]) for k, v in (("bound", bound), ("ts", ts), ("far", far)) if v is not None}
    idx["product"] = int(order[prod]) if prod is not None else int(order[far])

    def diff(a, b):
        val = float(F[idx[a]] - F[idx[b]])
        if boot is None or len(boot) < 2:
            return val, float("nan")
        d = boot[:, idx[a]] - boot[:, idx[b]]
        return val, float(np.nanstd(d, ddof=1))

    return {
        "idx": idx,
        "bound_minimum_found": found,
        "ts_at_range_end": bool(ts_end),
        "product_minimum_found": prod is not None,
        "prominence_kJ_mol": float(p),
        "dG_barrier": diff("ts", "bound"),
        "dG": diff("far", "bound"),
        "dG_reverse": diff("ts", "product"),
        "warnings": warn,
    }


# Interfacial coordinates (docs/science.md §3): the bulk plateau is the far end of the range, the contact
# state the lowest point near the sheet; widths in nm of the range ends that count as each.
PLATEAU_NM = 0.15
CONTACT_NM = 0.15


def find_adsorption(cv, F, boot=None, plateau_nm: float = PLATEAU_NM, contact_nm: float = CONTACT_NM) -> dict:
    """Adsorption numbers of a height or site-distance PMF (contact at the low end of ``cv``, nm).

    - F_bulk: mean F over the last ``plateau_nm`` of the range (the bulk plateau);
    - contact: the lowest F within ``contact_nm`` of the low end;
    - dG_ads = F(contact) - F_bulk (kJ/mol);
    - dG_barrier_in = highest F between contact and the plateau - F_bulk: what an ion coming from
      bulk pays to shed solvent and reach contact (0 or less: no barrier on the way in);
    - plateau_drift = F(far end) - F(plateau start): flat within error where bulk is reached.
    Errors: bootstrap standard deviations of the same differences (``boot``: (B, nbins) kJ/mol)."""
    cv, F = np.asarray(cv, float), np.asarray(F, float)
    if not np.isfinite(F).all():
        raise ValueError("PMF has empty bins; cannot locate the contact state and the bulk plateau")
    plat = np.nonzero(cv >= cv[-1] - plateau_nm - 1e-9)[0]
    if plat[0] == 0:
        plat = plat[1:]
    near = np.nonzero(cv <= cv[0] + contact_nm + 1e-9)[0]
    near = near[near < plat[0]] if (near < plat[0]).any() else near[:1]
    contact = int(near[np.argmin(F[near])])
    ts = contact + int(np.argmax(F[contact: plat[0] + 1]))

    def diff(f_a, f_b):
        val = float(f_a(F) - f_b(F))
        if boot is None or len(boot) < 2:
            return val, float("nan")
        return val, float(np.nanstd(f_a(boot.T) - f_b(boot.T), ddof=1))

    bulk = lambda y: np.mean(y[plat], axis=0)  # noqa: E731
    at = lambda i: (lambda y: y[i])  # noqa: E731
    drift = diff(at(plat[-1]), at(plat[0]))
    return {"dG_ads": diff(at(contact), bulk), "dG_barrier_in": diff(at(ts), bulk), "plateau_drift": drift,
            "plateau_flat": bool(abs(drift[0]) <= 2.0 * drift[1]) if np.isfinite(drift[1]) else None,
            "contact_cv_nm": float(cv[contact]), "ts_in_cv_nm": float(cv[ts]),
            "plateau_nm": [float(cv[plat[0]]), float(cv[plat[-1]])]}


def adsorption_block(cv, F, boot) -> dict:
    """The ``adsorption`` block of barrier.json (rounded numbers and their definitions)."""
    a = find_adsorption(cv, F, boot)
    out = {f"{k}_kJ_mol": round(a[k][0], 4) for k in ("dG_ads", "dG_barrier_in", "plateau_drift")}
    out.update({f"{k}_err_kJ_mol": round(a[k][1], 4) for k in ("dG_ads", "dG_barrier_in", "plateau_drift")})
    out.update({k: a[k] for k in ("plateau_flat", "contact_cv_nm", "ts_in_cv_nm", "plateau_nm")})
    out["definitions"] = (f"F_bulk = mean F over the last {PLATEAU_NM} nm of the range; contact = lowest F within "
                          f"{CONTACT_NM} nm of the low end; dG_ads = F(contact) - F_bulk; dG_barrier_in = highest F "
                          "between contact and the plateau - F_bulk; plateau_drift = F(far end) - F(plateau start), "
                          "flat when within 2 bootstrap sd (docs/science.md §3)")
    return out


def _numbers(fb: dict) -> dict:
    out = {}
    for key in ("dG_barrier", "dG", "dG_reverse"):
        v, e = fb[key]
        out[f"{key}_kJ_mol"] = round(v, 4)
        out[f"{key}_err_kJ_mol"] = round(e, 4)
        out[f"{key}_kcal_mol"] = round(v / KJ_PER_KCAL, 4)
        out[f"{key}_err_kcal_mol"] = round(e / KJ_PER_KCAL, 4)
    return out


def barrier_from_result(result, bound_side: str = "low", cv_kind: str | None = None) -> dict:
    """barrier.json content from a :class:`solvmd.pmf.estimate.PMFResult`; a height or site-distance
    coordinate (``cv_kind``) also gets the ``adsorption`` block (:func:`find_adsorption`)."""
    cv = result.cv_nm
    conv = result.volume_term if result.radial else "none"
    fb = find_barrier(cv, result.F, result.boot(), bound_side)
    pts = {}
    for name, key in (("bound_state", "bound"), ("transition_state", "ts"), ("far_end", "far"), ("product", "product")):
        i = fb["idx"][key]
        pts[name] = {"cv_nm": round(float(cv[i]), 5), "F_kJ_mol": round(float(result.F[i]), 4),
                     "dF_kJ_mol": round(float(result.dF[i]), 4)}
    out = {
        "temperature_K": result.info.get("temperature_K"),
        "volume_term": conv,
        "volume_term_note": VOLUME_NOTE[conv],
        "bound_side": bound_side,
        **_numbers(fb),
        **pts,
        "bound_minimum_found": fb["bound_minimum_found"],
        "ts_at_range_end": fb["ts_at_range_end"],
        "product_minimum_found": fb["product_minimum_found"],
        "prominence_kJ_mol": fb["prominence_kJ_mol"],
        "warnings": fb["warnings"],
        "definitions": "dG_barrier = F(TS) - F(bound); dG = F(far end) - F(bound); dG_reverse = F(TS) - F(product); "
        "errors: bootstrap standard deviation",
    }
    if result.radial:
        other = "included" if result.volume_term == "removed" else "removed"
        Fo = result.F_with if other == "included" else result.F_without
        fo = find_barrier(cv, Fo, result.boot(other), bound_side)
        out["other_volume_term"] = {
            "volume_term": other,
            "volume_term_note": VOLUME_NOTE[other],
            **_numbers(fo),
            "bound_state_cv_nm": round(float(cv[fo["idx"]["bound"]]), 5),
            "transition_state_cv_nm": round(float(cv[fo["idx"]["ts"]]), 5),
            "ts_at_range_end": fo["ts_at_range_end"],
        }
    if cv_kind in ("height", "site_distance") and bound_side == "low":
        out["adsorption"] = adsorption_block(cv, result.F, result.boot())
        if out["adsorption"]["plateau_flat"] is False:
            fb["warnings"].append("no bulk plateau: F still changes %.1f +- %.1f kJ/mol over the last %g nm; "
                                  "extend range_nm" % (out["adsorption"]["plateau_drift_kJ_mol"],
                                                       out["adsorption"]["plateau_drift_err_kJ_mol"], PLATEAU_NM))
    for w in fb["warnings"]:
        warnings.warn(w, RuntimeWarning, stacklevel=2)
    return out


def write_barrier(data: dict, path) -> Path:
    """barrier.json: standard JSON; a number that could not be computed is null (``warnings`` and
    ``converged_reason`` say why), never NaN."""
    return atomic_write_text(Path(path), json.dumps(finite_json(data), indent=2, default=float, allow_nan=False))


def read_barrier(path) -> dict:
    return json.loads(Path(path).read_text())
