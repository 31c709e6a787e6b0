"""MD run figures (``matplotlib.figure.Figure``: no pyplot, no ``show()``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from solvmd.io import atomic_path

STAGE_COLOURS = {"heat": "#ff7f0e", "equilibrate": "#1f77b4", "production": "#2ca02c"}


def plot_thermo(thermo: pd.DataFrame) -> Figure:
    """Temperature (K), density (g/cm³) and potential energy (kJ/mol) against time (ps), by stage.

    ``thermo`` has the columns of ``thermo.csv`` (stage, time_ps, T_K, density_g_cm3,
    Epot_kJ_mol); the production mean density is drawn as a dashed line.
    """
    fig = Figure(figsize=(7.0, 6.0), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for (col, label), ax in zip((("T_K", "T (K)"), ("density_g_cm3", "density (g/cm³)"),
                                 ("Epot_kJ_mol", "E_pot (kJ/mol)")), axes):
        for stage, part in thermo.groupby("stage", sort=False):
            if col == "density_g_cm3" and stage == "heat":
                continue  # NVT: constant volume
            ax.plot(part["time_ps"], part[col], ".-", ms=2, lw=0.8, label=stage,
                    color=STAGE_COLOURS.get(stage, "grey"))
        ax.set_ylabel(label)
    prod = thermo[thermo["stage"] == "production"]
    if len(prod):
        mean = prod["density_g_cm3"].mean()
        axes[1].axhline(mean, color="k", ls="--", lw=0.8, label=f"production mean {mean:.4f}")
    axes[0].legend(fontsize=7, ncols=3)
    axes[1].legend(fontsize=7, ncols=3)
    axes[-1].set_xlabel("time (ps)")
    return fig


def write_thermo_plot(thermo_csv: str | Path, png: str | Path) -> Path:
    """Read ``thermo.csv`` and write its :func:`plot_thermo` figure to ``png`` (atomically)."""
    with atomic_path(Path(png)) as tmp:
        plot_thermo(pd.read_csv(thermo_csv)).savefig(tmp, format="png", dpi=150, bbox_inches="tight")
    return Path(png)
