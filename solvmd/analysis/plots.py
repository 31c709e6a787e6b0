"""Figures of the solvation analysis (PNG). Uses ``matplotlib.figure.Figure`` directly:
no pyplot, no global backend switch, no ``show()``; safe in scripts, notebooks and workers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from solvmd.analysis import columns as C

from solvmd.io import atomic_path  # noqa: E402

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def save(fig: Figure, path: Path, dpi: int = 150) -> Path:
    """Write a PNG under a temporary name, then move it into place."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)


def plot_rdf(rdf: pd.DataFrame, coordination: pd.DataFrame, cation_label: str = "cation") -> Figure:
    """g(r) per partner (all donors bold, each donor type thin) with running CN and the cutoff."""
    partners = list(dict.fromkeys(rdf[C.PARTNER]))
    n = len(partners)
    ncol = min(n, 3)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(4.6 * ncol, 3.4 * nrow), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    cn = coordination.set_index(C.PARTNER)
    for ax, p in zip(axes, partners):
        sub = rdf[rdf[C.PARTNER] == p]
        types = [t for t in dict.fromkeys(sub[C.DONOR_TYPE]) if t != C.ALL_DONORS]
        allb = sub[sub[C.DONOR_TYPE] == C.ALL_DONORS]
        ax.plot(allb[C.R], allb[C.G], color="k", lw=1.8, label=f"{p} (all donors)")
        if len(types) > 1:
            for k, t in enumerate(types):
                b = sub[sub[C.DONOR_TYPE] == t]
                ax.plot(b[C.R], b[C.G], lw=1.0, color=PALETTE[k % len(PALETTE)], label=f"{p} {t}")
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("g(r)")
        ax.set_xlim(0, float(allb[C.R].max()) + 0.05)
        ax.set_ylim(bottom=0)
        cut = cn.loc[p, C.CUTOFF] if p in cn.index else np.nan
        # running CN over the first shell and a bit beyond, so its plateau stays readable
        r_n = 2.0 * cut if np.isfinite(cut) else 5.0
        nb = allb[allb["r_upper_A"] <= r_n]
        ax2 = ax.twinx()
        ax2.plot(nb["r_upper_A"], nb[C.N_R], color="grey", ls="--", lw=1.2, label="n(r)")
        ax2.set_ylabel("n(r): donor atoms per cation", color="grey")
        ax2.set_ylim(bottom=0, top=max(1.0, float(nb[C.N_R].max()) * 1.05) if len(nb) else 1.0)
        if np.isfinite(cut):
            ax.axvline(cut, color="tab:red", lw=1.0, ls=":")
            ax.set_title(
                f"{cation_label}–{p}: cutoff {cut:.2f} Å, CN {cn.loc[p, C.CN_MOL]:.2f} mol / "
                f"{cn.loc[p, C.CN_DON]:.2f} donors",
                fontsize=9,
            )
        else:
            ax.set_title(f"{cation_label}–{p}: not coordinating", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def plot_coordination(coordination: pd.DataFrame) -> Figure:
    """Bars: coordination number per partner, counted per molecule and per donor atom."""
    df = coordination
    fig = Figure(figsize=(1.2 + 1.3 * len(df), 3.6), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(df))
    w = 0.38
    b1 = ax.bar(x - w / 2, df[C.CN_MOL], w, yerr=df[C.CN_MOL_STD], capsize=3, label="molecules", color=PALETTE[0])
    b2 = ax.bar(x + w / 2, df[C.CN_DON], w, yerr=df[C.CN_DON_STD], capsize=3, label="donor atoms", color=PALETTE[3])
    for bars in (b1, b2):
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
    labels = [p if c else f"{p}\n(not coord.)" for p, c in zip(df[C.PARTNER], df[C.COORDINATING])]
    ax.set_xticks(x, labels)
    ax.set_ylabel("coordination number per cation")
    ax.set_title("First-shell coordination (bars: mean, whiskers: std over shells)", fontsize=9)
    ax.legend(fontsize=8)
    ax.set_ylim(bottom=0)
    return fig


def plot_shells(shells: pd.DataFrame, top: int = 12) -> Figure:
    """Horizontal bars: the most common first-shell compositions (percent of shells)."""
    df = shells.head(top).iloc[::-1]
    fig = Figure(figsize=(6.0, 0.9 + 0.32 * max(len(df), 1)), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(df[C.COMPOSITION], df[C.PERCENT], color=PALETTE[0])
    ax.bar_label(bars, fmt="%.1f %%", fontsize=8, padding=2)
    rest = 100.0 - float(shells.head(top)[C.PERCENT].sum())
    title = "First-shell compositions (molecules per shell)"
    if len(shells) > top:
        title += f"; {len(shells) - top} rarer ones = {rest:.1f} %"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("% of cation shells")
    ax.set_xlim(0, max(5.0, float(df[C.PERCENT].max()) * 1.18) if len(df) else 100)
    return fig


def plot_speciation(spec: pd.DataFrame) -> Figure:
    """Bars: SSIP/CIP/AGG fractions, anion-centric (per anion species) and cation-centric."""
    groups = list(dict.fromkeys(zip(spec[C.DEFINITION], spec[C.SPECIES])))
    fig = Figure(figsize=(1.5 + 2.1 * max(len(groups), 1), 3.8), layout="constrained")
    ax = fig.subplots()
    classes = [C.SSIP, C.CIP, C.AGG]
    w = 0.8 / len(classes)
    x = np.arange(len(groups))
    for k, cls in enumerate(classes):
        vals = [
            float(spec[(spec[C.DEFINITION] == d) & (spec[C.SPECIES] == s) & (spec[C.CLASS] == cls)][C.FRACTION].sum())
            * 100
            for d, s in groups
        ]
        bars = ax.bar(x + (k - 1) * w, vals, w, label=cls, color=PALETTE[k])
        ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=1)
    ax.set_xticks(x, [f"{s}\n{d.replace(' (', chr(10) + '(')}" for d, s in groups], fontsize=8)
    ax.set_ylabel("% of ions")
    ax.set_ylim(0, 110)
    ax.set_title("Ion pairing: anion-centric (anion bound to 0/1/≥2 cations) and cation-centric (network)", fontsize=8)
    ax.legend(fontsize=8, ncols=3, loc="upper center")
    return fig


def plot_interface_density(density: pd.DataFrame) -> Figure:
    """Number density per species (top) and total mass density (bottom) against the height above the sheet."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    per_species = density[density[C.SPECIES] != C.ALL_SPECIES]
    for k, (name, sub) in enumerate(per_species.groupby(C.SPECIES, sort=False)):
        ax.plot(sub[C.Z], sub[C.N_DENS], lw=1.2, color=PALETTE[k % len(PALETTE)], label=name)
    ax.set_ylabel("ρ (molecules nm⁻³)")
    ax.legend(fontsize=7, ncol=2)
    tot = density[density[C.SPECIES] == C.ALL_SPECIES]
    ax2.plot(tot[C.Z], tot[C.MASS_DENS], color="k", lw=1.2)
    ax2.set_ylabel("ρ (g cm⁻³)")
    ax2.set_xlabel("z above the sheet (Å)")
    return fig


def plot_interface_coordination(coord: pd.DataFrame, contact_A: float) -> Figure:
    """Cation CN (molecules) per partner against the cation height (Å); the contact layer edge
    (``contact_A``, Å) dotted. An empty table (no cation sampled) gives a figure that says so."""
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    for k, (name, sub) in enumerate(coord.groupby(C.PARTNER, sort=False)):
        total = name == C.TOTAL
        ax.plot(sub[C.HEIGHT], sub[C.CN_MOL], marker="o", ms=3, lw=1.8 if total else 1.0,
                color="k" if total else PALETTE[k % len(PALETTE)], label=name)
    ax.axvline(contact_A, color="tab:red", ls=":", lw=1)
    ax.set_xlabel("cation height above the sheet (Å)")
    ax.set_ylabel("CN (molecules)")
    if len(coord):
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no cation sampled", transform=ax.transAxes, ha="center", va="center")
    return fig


def plot_site_rdf(site: pd.DataFrame) -> Figure:
    """Cation - metal site g(r) (3D), the lateral g of contact-layer cations, and the running count."""
    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(site[C.R], site[C.G_SITE], color="k", label="g(r) cation–metal (3D)")
    ax.plot(site[C.R], site[C.G_LATERAL], color="tab:blue", lw=1, label="lateral g, contact layer")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g")
    ax2 = ax.twinx()
    ax2.plot(site[C.R], site[C.N_SITE], color="grey", ls="--", lw=1)
    ax2.set_ylabel("n(r): cations per site", color="grey")
    ax.legend(fontsize=7)
    return fig


def plot_transport(transport: pd.DataFrame, msd: pd.DataFrame, tolerance: float = 0.1) -> Figure:
    """MSD log-log (self per species; collective <|dR_i|^2>/N_i and charge dipole /N_ions dashed)
    with the fit windows shaded, and the local slope d ln MSD / d ln t against the diffusive band."""
    from solvmd.analysis.transport import loglog_slope

    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    ax, axb = fig.subplots(1, 2)
    self_rows = transport[transport[C.METHOD] == C.MSD_SELF].set_index(C.SPECIES)
    ok_all = bool(transport[C.DIFFUSIVE].fillna(False).all()) if len(transport) else False
    shaded = set()
    for k, name in enumerate(self_rows.index):
        cur = msd[(msd[C.CURVE] == "self") & (msd[C.SPECIES] == name)]
        t, y = cur[C.TIME].to_numpy(float), cur[C.MSD].to_numpy(float)
        col = PALETTE[k % len(PALETTE)]
        pos = (t > 0) & (y > 0)
        ax.loglog(t[pos], y[pos], color=col, lw=1.6, label=f"{name} self")
        n = self_rows.loc[name, C.N_MOLECULES]
        coll = msd[(msd[C.CURVE] == "collective") & (msd[C.SPECIES] == name) & (msd[C.SPECIES_J] == name)]
        if len(coll):
            coll = coll[coll[C.REF_FRAME] == coll[C.REF_FRAME].iloc[0]]
            yc = coll[C.MSD].to_numpy(float) / max(float(n), 1.0)
            pc = (coll[C.TIME].to_numpy(float) > 0) & (yc > 0)
            ax.loglog(coll[C.TIME].to_numpy(float)[pc], yc[pc], color=col, lw=1.0, ls="--",
                      label=f"{name} collective / N")
        fs, fe = self_rows.loc[name, C.FIT_START], self_rows.loc[name, C.FIT_STOP]
        if np.isfinite(fs) and np.isfinite(fe) and fe > fs:
            stop = float(fe)
            tc, beta = loglog_slope(t, y, stop * 2.0)
            axb.semilogx(tc, beta, color=col, lw=1.4, label=name)
            if (fs, fe) not in shaded:
                shaded.add((fs, fe))
                diff = bool(self_rows.loc[name, C.DIFFUSIVE]) if pd.notna(self_rows.loc[name, C.DIFFUSIVE]) else False
                for a in (ax, axb):
                    a.axvspan(fs, fe, color="tab:green" if diff else "tab:red", alpha=0.12, lw=0)
    dip = msd[msd[C.CURVE] == "charge dipole"]
    if len(dip):
        n_ions = transport.loc[transport[C.METHOD] == C.EINSTEIN_HELFAND, C.N_MOLECULES]
        nn = float(n_ions.iloc[0]) if len(n_ions) else 1.0
        y = dip[C.MSD].to_numpy(float) / max(nn, 1.0)
        t = dip[C.TIME].to_numpy(float)
        pos = (t > 0) & (y > 0)
        ax.loglog(t[pos], y[pos], color="k", lw=1.0, ls=":", label="charge dipole / N_ions")
    ax.set_xlabel("lag t (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.legend(fontsize=7, loc="upper left")
    axb.axhspan(1 - tolerance, 1 + tolerance, color="grey", alpha=0.2, lw=0)
    axb.axhline(1.0, color="grey", lw=0.8)
    axb.set_xlabel("lag t (ps)")
    axb.set_ylabel("d ln MSD / d ln t")
    axb.set_ylim(0, 2.2)
    if axb.get_legend_handles_labels()[0]:
        axb.legend(fontsize=7)
    if not len(self_rows) or not np.isfinite(self_rows[C.FIT_START]).any():
        fig.suptitle("no MSD fit: too few frames", color="tab:red")
    elif ok_all:
        fig.suptitle("fit windows (shaded) in the diffusive regime")
    else:
        fig.suptitle("NOT DIFFUSIVE: run too short for the diffusive regime - D, L_ij, t+ are not final (red windows)",
                     color="tab:red", fontsize=10)
    return fig
