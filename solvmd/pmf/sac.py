"""The single-atom-catalyst comparison (docs/science.md §6): one row per (ion, surface, coordinate).

Reads only records: ``results/<system>/pmf/<cv>/{barrier,estimate,spec,cv}.json`` and
``profile.csv``, and ``results/<system>/build/manifest.json`` for the surface label.
Columns (energies in kJ/mol, errors are bootstrap standard deviations):

- ``dG_barrier_kJ_mol``: the desolvation barrier. Bulk (ion-solvent distance): F(transition
  state) - F(bound state), one solvent leaving the shell. Height / site coordinates (docs/science.md §3):
  the highest F between contact and the bulk plateau - F(bulk plateau), what an ion coming from
  bulk pays to shed solvent and reach the surface (barrier.json ``adsorption`` block);
- ``dG_kJ_mol``: F(far end) - F(bound state), end to end;
- ``dG_ads_kJ_mol`` (height / site coordinates only): F(contact) - F(bulk plateau), the
  adsorption free energy; contact = the lowest F within 0.15 nm of the low end of the range,
  plateau = mean F over its last 0.15 nm;
- ``plateau_drift_kJ_mol`` (height / site): F(far end) - F(plateau start), ``plateau_flat`` when
  within 2 bootstrap sd: far from the sheet the PMF must flatten to bulk;
- ``cn_bulk`` / ``cn_contact``: first-shell solvent + anion molecules around the ion in the
  window nearest the far end / the low end (from ``profile.csv``);
- ``min_neighbour_overlap``, ``n_windows``, ``sampled_ps_per_window``, ``mbar_wham_max_diff_kJ_mol``;
- ``warnings`` from barrier.json (e.g. a transition state at the range end: no bulk plateau reached);
- ``n_repeats``, ``error_kind``, ``converged``, ``converged_reason``: with a ``repeats.json`` in the
  folder (independent repeats combined, :mod:`solvmd.pmf.repeats`) the energies are the mean over
  repeats and their errors the between-repeat standard error; otherwise one run's within-run
  bootstrap error. ``converged`` is the verdict (:mod:`solvmd.pmf.convergence`); the figure hatches
  and labels the rows that are not converged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from solvmd import records
from solvmd.errors import SolvmdError
from solvmd.pmf.io import atomic_write_text

COLUMNS = [
    "system", "ion", "surface", "coordinate", "cv_kind", "dG_barrier_kJ_mol", "dG_barrier_err_kJ_mol",
    "dG_kJ_mol", "dG_err_kJ_mol", "dG_ads_kJ_mol", "dG_ads_err_kJ_mol", "cn_bulk", "cn_contact",
    "plateau_drift_kJ_mol", "plateau_drift_err_kJ_mol", "plateau_flat",
    "min_neighbour_overlap", "n_windows", "sampled_ps_per_window", "mbar_wham_max_diff_kJ_mol", "volume_term",
    "ts_cv_nm", "bound_cv_nm", "n_repeats", "error_kind", "converged", "converged_reason", "warnings",
]


# barrier.json's warning about its generic TS (bound minimum -> first maximum); a height or site
# row reports the barrier on the way in from the adsorption block instead, so it does not apply
GENERIC_TS_WARNING = "the maximum is at the end of the range"


def _json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise SolvmdError(f"{path} does not exist: run the {what} for that PMF first")
    return json.loads(path.read_text())


def _surface_label(pmf_dir: Path) -> str:
    manifest = pmf_dir.parent.parent / "build" / records.MANIFEST
    if not manifest.is_file():
        return "bulk"
    surf = json.loads(manifest.read_text()).get("surface")
    if not surf:
        return "bulk"
    return surf.get("label") or surf.get("kind", "surface")


def _ion(pmf_dir: Path, spec: dict) -> str:
    cv = spec.get("cv", {})
    if cv.get("cation"):
        return str(cv["cation"]).capitalize()
    meta = _json(pmf_dir / records.CV_JSON, "pmf-prepare").get("meta", {})
    return str(meta.get("cation_residue", {}).get("name", "?")).capitalize()


def _cn(pmf_dir: Path) -> tuple[float, float]:
    """(CN at the far/bulk end, CN at the low/contact end) of the desolvation profile."""
    path = pmf_dir / "profile.csv"
    if not path.is_file():
        return float("nan"), float("nan")
    prof = pd.read_csv(path)
    prof = prof.sort_values("cv_mean_nm" if "cv_mean_nm" in prof else "r0_nm")
    return float(prof["n_shell_total"].iloc[-1]), float(prof["n_shell_total"].iloc[0])


def sac_row(pmf_dir) -> dict:
    """One comparison row from a finished PMF folder ``results/<system>/pmf/<cv>``."""
    pmf_dir = Path(pmf_dir)
    b = _json(pmf_dir / records.BARRIER_JSON, "pmf-estimate")
    spec = _json(pmf_dir / records.SPEC_JSON, "pmf-prepare")
    kind = b.get("cv_kind", spec.get("cv", {}).get("kind"))
    cn_bulk, cn_contact = _cn(pmf_dir)
    ads = b.get("adsorption")
    if kind in ("height", "site_distance") and ads is None:
        raise SolvmdError(f"{pmf_dir / records.BARRIER_JSON} has no 'adsorption' block (written by solvmd "
                          "pmf-estimate since 2026-12): rerun pmf-estimate on that folder")
    barrier = ("dG_barrier_in", ads) if ads else ("dG_barrier", b)
    return _with_repeats({
        "system": b.get("system") or pmf_dir.parent.parent.name, "ion": _ion(pmf_dir, spec),
        "surface": _surface_label(pmf_dir), "coordinate": b.get("cv", pmf_dir.name), "cv_kind": kind,
        "dG_barrier_kJ_mol": barrier[1][f"{barrier[0]}_kJ_mol"],
        "dG_barrier_err_kJ_mol": barrier[1][f"{barrier[0]}_err_kJ_mol"],
        "dG_kJ_mol": b["dG_kJ_mol"], "dG_err_kJ_mol": b["dG_err_kJ_mol"],
        "dG_ads_kJ_mol": ads["dG_ads_kJ_mol"] if ads else np.nan,
        "dG_ads_err_kJ_mol": ads["dG_ads_err_kJ_mol"] if ads else np.nan,
        "plateau_drift_kJ_mol": ads["plateau_drift_kJ_mol"] if ads else np.nan,
        "plateau_drift_err_kJ_mol": ads["plateau_drift_err_kJ_mol"] if ads else np.nan,
        "plateau_flat": ads["plateau_flat"] if ads else None,
        "cn_bulk": cn_bulk, "cn_contact": cn_contact,
        "min_neighbour_overlap": b.get("min_neighbour_overlap"), "n_windows": b.get("n_windows"),
        "sampled_ps_per_window": b.get("sampled_ps_per_window"),
        "mbar_wham_max_diff_kJ_mol": b.get("mbar_wham_max_diff_kJ_mol"), "volume_term": b.get("volume_term"),
        "ts_cv_nm": ads["ts_in_cv_nm"] if ads else b["transition_state"]["cv_nm"],
        "bound_cv_nm": ads["contact_cv_nm"] if ads else b["bound_state"]["cv_nm"],
        "warnings": "; ".join(w for w in b.get("warnings", []) if not (ads and w.startswith(GENERIC_TS_WARNING))),
    }, pmf_dir, b)


def _with_repeats(row: dict, pmf_dir: Path, b: dict) -> dict:
    """Energies, errors and verdict from repeats.json when present (else the single run's)."""
    path = pmf_dir / "repeats.json"
    if not path.is_file():
        return {**row, "n_repeats": 1, "error_kind": b.get("error_kind", "within-run bootstrap"),
                "converged": b.get("converged"), "converged_reason": b.get("converged_reason")}
    rep = _json(path, "pmf-repeats")
    q = rep["quantities"]
    pick = {"dG_barrier": "dG_barrier_in" if row["cv_kind"] in ("height", "site_distance") and "dG_barrier_in" in q
            else "dG_barrier", "dG": "dG", "dG_ads": "dG_ads"}
    for col, name in pick.items():
        if name in q:
            row[f"{col}_kJ_mol"], row[f"{col}_err_kJ_mol"] = q[name]["mean_kJ_mol"], q[name]["err_kJ_mol"]
    return {**row, "n_repeats": rep["n_repeats"], "error_kind": rep["error_kind"], "converged": rep["converged"],
            "converged_reason": rep["converged_reason"]}


def sac_table(pmf_dirs) -> pd.DataFrame:
    """The comparison table, sorted by ion, then bulk first, then surface and coordinate."""
    dirs = [Path(p) for p in pmf_dirs]
    if not dirs:
        raise SolvmdError("sac comparison needs at least one PMF folder (results/<system>/pmf/<cv>)")
    df = pd.DataFrame([sac_row(d) for d in dirs], columns=COLUMNS)
    df["_bulk"] = df["surface"] != "bulk"
    return df.sort_values(["ion", "_bulk", "surface", "coordinate"]).drop(columns="_bulk").reset_index(drop=True)


def sac_figure(df: pd.DataFrame):
    """ΔG‡ and adsorption ΔG (kJ/mol ± the row's error) per (ion, surface, coordinate), a Figure; rows
    that are not converged are hatched and labelled."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6, 0.9 * len(df) + 3), 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    labels = [f"{i} | {s}\n{c}" for i, s, c in zip(df["ion"], df["surface"], df["coordinate"])]
    pos = np.arange(len(df))
    colors = [f"C{sorted(set(df['ion'])).index(i)}" for i in df["ion"]]
    for ax, col, title in ((axes[0], "dG_barrier", "ΔG‡ (kJ/mol)"), (axes[1], "dG_ads", "adsorption ΔG (kJ/mol)")):
        bars = ax.bar(pos, df[f"{col}_kJ_mol"], yerr=df[f"{col}_err_kJ_mol"], capsize=3, color=colors)
        for bar, ok in zip(bars, df["converged"]):
            if ok is not True:  # not converged (or no verdict): hatched, pale, labelled
                bar.set_alpha(0.35)
                bar.set_hatch("//")
                ax.annotate("not converged", (bar.get_x() + bar.get_width() / 2, 0), rotation=90, fontsize=6,
                            ha="center", va="bottom", color="0.3")
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_xticks(pos, labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel(title)
    return fig


def plot_sac(df: pd.DataFrame, path) -> Path:
    """Write :func:`sac_figure` to ``path`` atomically."""
    from solvmd.pmf.io import atomic_savefig

    return atomic_savefig(sac_figure(df), path, dpi=150)


def compare_sac(pmf_dirs, out_csv, out_png=None) -> pd.DataFrame:
    """Write ``sac_comparison.csv`` (and the figure) from finished PMF folders."""
    df = sac_table(pmf_dirs)
    atomic_write_text(out_csv, df.to_csv(index=False, float_format="%.4g"))
    if out_png is not None:
        plot_sac(df, out_png)
    return df
