"""Compare barriers across systems: one table (CSV) and one figure from several barrier.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from solvmd.errors import SolvmdError
from solvmd.pmf.barrier import read_barrier

COLUMNS = [
    "system", "cv", "cv_kind", "volume_term",
    "dG_barrier_kJ_mol", "dG_barrier_err_kJ_mol", "dG_barrier_kcal_mol", "dG_barrier_err_kcal_mol",
    "dG_kJ_mol", "dG_err_kJ_mol", "dG_kcal_mol", "dG_err_kcal_mol",
    "bound_cv_nm", "ts_cv_nm", "ts_at_range_end", "min_neighbour_overlap", "mbar_wham_max_diff_kJ_mol",
    "temperature_K", "path",
]


def collect_barriers(paths, labels=None) -> pd.DataFrame:
    """One row per barrier.json (system/cv from the file, else from results/<system>/pmf/<cv>/)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise SolvmdError("compare needs at least one barrier.json")
    rows = []
    for i, p in enumerate(paths):
        if not p.is_file():
            raise SolvmdError(f"{p} does not exist (run the PMF estimate for that system first)")
        b = read_barrier(p)
        system = b.get("system") or (p.parent.parent.parent.name if p.parent.parent.name == "pmf" else p.parent.name)
        if labels is not None:
            system = labels[i]
        rows.append({
            "system": system,
            "cv": b.get("cv", p.parent.name),
            "cv_kind": b.get("cv_kind", ""),
            "volume_term": b.get("volume_term"),
            **{k: b.get(k) for k in COLUMNS if k.startswith("dG")},
            "bound_cv_nm": b["bound_state"]["cv_nm"],
            "ts_cv_nm": b["transition_state"]["cv_nm"],
            "ts_at_range_end": b.get("ts_at_range_end"),
            "min_neighbour_overlap": b.get("min_neighbour_overlap"),
            "mbar_wham_max_diff_kJ_mol": b.get("mbar_wham_max_diff_kJ_mol"),
            "temperature_K": b.get("temperature_K"),
            "path": str(p),
        })
    df = pd.DataFrame(rows, columns=COLUMNS)
    mixed = df.groupby("cv_kind")["volume_term"].nunique()
    if (mixed > 1).any():
        import warnings

        warnings.warn("barriers of one CV kind use different volume-term conventions; compare with care",
                      RuntimeWarning, stacklevel=2)
    return df


def compare_barriers(paths, out_csv, out_png=None, labels=None) -> pd.DataFrame:
    """Write the comparison table (``out_csv``) and bar chart of dG_barrier +- error (``out_png``)."""
    from solvmd.pmf.io import atomic_write_text

    df = collect_barriers(paths, labels)
    atomic_write_text(out_csv, df.to_csv(index=False, float_format="%.4g"))
    if out_png is not None:
        from solvmd.pmf.plots import plot_compare

        plot_compare(df, out_png)
    return df
