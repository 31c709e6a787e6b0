"""PMF figures (Agg backend; files only, never shown)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from solvmd.pmf.io import atomic_savefig  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=150)
    plt.close(fig)
    return path


def plot_profile(ax, profile, barrier=None):
    """Desolvation profile: mean first-shell molecules per species (and sheet contacts) per window."""
    x = profile["cv_mean_nm"]
    cols = [c for c in profile.columns if c.startswith("n_") and c != "n_shell_total"]
    for i, c in enumerate(cols):
        style = "--" if c.startswith("n_surface_") else "-"
        ax.plot(x, profile[c], style, marker="o", ms=3, color=f"C{i % 10}", label=c[2:])
    ax.plot(x, profile["n_shell_total"], "k-", lw=2, label="solvent + anions")
    if barrier:
        ax.axvline(barrier["transition_state"]["cv_nm"], color="C3", ls=":", lw=1)
    ax.set_ylabel("first-shell count")
    ax.legend(fontsize=6, ncol=3)


def plot_pmf(result, path):
    """PMF +- bootstrap error (barrier convention), the other convention and WHAM dashed; barrier marked;
    the desolvation profile (first-shell counts per window) underneath when there is one."""
    x = result.cv_nm
    prof = getattr(result, "profile", None)
    if prof is not None and len(prof):
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True, height_ratios=[3, 2])
        plot_profile(ax2, prof, result.barrier)
        ax2.set_xlabel("CV (nm)")
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
    lab = {"removed": "without 2kT ln r volume term", "included": "with volume term (-kT ln p)"}
    main = lab[result.volume_term] if result.radial else "F (height)"
    ax.plot(x, result.F, color="C0", lw=2, label=f"MBAR, {main}")
    ax.fill_between(x, result.F - result.dF, result.F + result.dF, color="C0", alpha=0.3, lw=0)
    if result.radial:
        other = "included" if result.volume_term == "removed" else "removed"
        Fo = result.F_with if other == "included" else result.F_without
        ax.plot(x, Fo, color="C2", lw=1, label=f"MBAR, {lab[other]}")
    Fw = result.F_wham_with + (2 * result.kT * np.log(x) if (result.radial and result.volume_term == "removed") else 0)
    ax.plot(x, Fw - np.nanmin(Fw), "k--", lw=1, label="WHAM")
    b = result.barrier
    if b:
        xb, xt = b["bound_state"]["cv_nm"], b["transition_state"]["cv_nm"]
        Fb, Ft = b["bound_state"]["F_kJ_mol"], b["transition_state"]["F_kJ_mol"]
        ax.plot([xb], [Fb], "v", color="C3")
        ax.plot([xt], [Ft], "^", color="C3")
        ax.annotate("", xy=(xt, Ft), xytext=(xt, Fb), arrowprops=dict(arrowstyle="<->", color="C3"))
        ax.hlines(Fb, xb, xt, colors="C3", linestyles=":", lw=1)
        ax.text(
            xt, 0.5 * (Fb + Ft),
            f"  ΔG‡ = {b['dG_barrier_kJ_mol']:.1f} ± {b['dG_barrier_err_kJ_mol']:.1f} kJ/mol",
            color="C3", va="center", fontsize=8,
        )
    ax.set_xlabel("CV (nm)")
    ax.set_ylabel("F (kJ/mol)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_histograms(windows, edges, path):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lo, hi = edges[0], edges[-1]
    allx = np.concatenate([w.x for w in windows])
    bins = np.linspace(min(lo, allx.min()), max(hi, allx.max()), 200)
    for i, w in enumerate(windows):
        h, e = np.histogram(w.x, bins=bins)
        ax.plot(0.5 * (e[1:] + e[:-1]), h, color=plt.cm.viridis(i / max(1, len(windows) - 1)), lw=1)
        ax.axvline(w.r0_nm, color="0.8", lw=0.5, zorder=0)
    ax.set_xlabel("CV (nm)")
    ax.set_ylabel("samples per bin")
    ax.set_title("umbrella window histograms")
    return _save(fig, path)


def plot_overlap(O, r0, path):
    O = np.asarray(O)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(O, cmap="viridis", vmin=0, vmax=max(0.2, float(np.max(np.diag(O, 1))) if len(O) > 1 else 1))
    fig.colorbar(im, ax=ax, label="MBAR overlap")
    ax.set_xlabel("window")
    ax.set_ylabel("window")
    if len(O) > 1:
        nb = np.diag(O, 1)
        i = int(np.argmin(nb))
        ax.set_title(f"smallest neighbour overlap {nb[i]:.3f} (windows {i}-{i + 1})", fontsize=8)
    return _save(fig, path)


def plot_compare(df, path):
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(df) + 2), 3.5))
    labels = [f"{s}\n{c}" for s, c in zip(df["system"], df["cv"])]
    pos = np.arange(len(df))
    ax.bar(pos, df["dG_barrier_kJ_mol"], yerr=df["dG_barrier_err_kJ_mol"], capsize=3, color="C0")
    ax.set_xticks(pos, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("ΔG‡ (kJ/mol)")
    sec = ax.secondary_yaxis("right", functions=(lambda v: v / 4.184, lambda v: v * 4.184))
    sec.set_ylabel("ΔG‡ (kcal/mol)")
    return _save(fig, path)


def plot_replica_paths(state_of_replica, interval_ps: float, path):
    """State (window) index of each exchange replica against sampled time (ps)."""
    s = np.asarray(state_of_replica)
    t = (np.arange(len(s)) + 1) * interval_ps
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in range(s.shape[1]):
        ax.step(t, s[:, r], where="post", lw=0.8, color=plt.cm.viridis(r / max(1, s.shape[1] - 1)))
    ax.set_xlabel("sampled time per replica (ps)")
    ax.set_ylabel("window (state) index")
    ax.set_title("replica paths through the windows (one colour per replica)", fontsize=9)
    return _save(fig, path)


def plot_convergence(series: dict, path):
    """Forward (first fraction of every window) and reverse (last fraction) estimates of each quantity,
    with error bars, against the fraction of sampled time: ``series[name] = rows`` of
    {fraction, direction, value, err}."""
    names = [n for n, rows in series.items() if rows]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4.2 * max(1, len(names)), 3.3), squeeze=False)
    for ax, name in zip(axes[0], names):
        for direction, colour in (("forward", "C0"), ("reverse", "C3")):
            rows = [r for r in series[name] if r["direction"] == direction]
            ax.errorbar([r["fraction"] for r in rows], [r["value"] for r in rows], yerr=[r["err"] for r in rows],
                        marker="o", ms=3, capsize=2, color=colour, label=direction)
        ax.set_xlabel("fraction of sampled time used")
        ax.set_ylabel(f"{name} (kJ/mol)")
        ax.legend(fontsize=7)
    fig.suptitle("convergence: forward (first part of every window) and reverse (last part)", fontsize=9)
    return _save(fig, path)
