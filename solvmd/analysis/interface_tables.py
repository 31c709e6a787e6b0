"""Interfacial tables: pure functions of :class:`~solvmd.analysis.interface.InterfacePass` results
and the contact table. Heights in A, densities per nm^3 and g/cm^3 (see :mod:`interface`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from solvmd.analysis import columns as C
from solvmd.analysis.contacts import ContactTable
from solvmd.analysis.structure import composition_label, shell_counts
from solvmd.errors import SolvmdError
from solvmd.geometry import first_min_after_peak
from solvmd.units import AVOGADRO, G_CM3_PER_AMU_A3

CONTACT_FALLBACK_A = 5.0  # contact layer when the cation profile shows no first minimum
SITE_FALLBACK_A = 3.5  # site cutoff when the site g(r) shows no first minimum


def interface_tables(r, ct: ContactTable, groups: dict, cation_species: list[str], settings,
                     n_sites: int) -> tuple[dict, list[str]]:
    """All interfacial tables and the meta entries, plus the warning messages."""
    warn: list[str] = []
    names = list(groups)
    density = density_table(r, names, settings.bin_A)
    contact, contact_source, peak_A = contact_layer(r.cat_h, r.Lz_A, settings, warn)
    mid = mid_slab(r, names, groups, cation_species, settings, warn)
    counts = _cn_per_sample(ct)
    coordination = cn_vs_height(counts, r.cat_h, r.Lz_A, settings.height_bin_A)
    shells = census_by_layer(counts[0], ct.partner_names, r.cat_h, r.Lz_A, contact, settings.census_bin_A)
    in_contact = r.cat_h < contact
    site = site_tables(r, in_contact, mid["cat_mid_n"], settings, n_sites, warn)
    lateral = lateral_cn(counts, r.cat_lat, in_contact, settings) if n_sites else _empty_lateral()
    if r.n_crossed:
        warn.append(f"{r.n_crossed} liquid atom(s) crossed the sheet plane: the sheet leaks (holes too large, "
                    "or a sheet atom without LJ)")
    summary = summary_table(r, counts[0], contact, contact_source, peak_A, in_contact, site, mid, settings)
    meta = {"contact_layer_A": contact, "contact_layer_source": contact_source, "site_cutoff_A": site["cutoff"],
            "site_cutoff_source": site["source"], "wall_exclusion_A": mid["excl"], "n_sites": n_sites,
            "area_A2": float(np.mean(r.area_A2))}
    return {"interface": summary, "interface_density": density, "interface_coordination": coordination,
            "interface_shells": shells, "interface_site_rdf": site["table"],
            "interface_coordination_lateral": lateral, "meta": meta}, warn


# --------------------------------------------------------------------------- profiles


def density_table(r, names: list[str], bin_A: float) -> pd.DataFrame:
    """Number density of molecule centres and mass density per species (and all) against z."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n_dens = r.n_hist / r.vol_acc * 1000.0  # per nm^3
        m_dens = r.m_hist / AVOGADRO / (r.vol_acc * 1e-24)  # g/cm^3
    centres = 0.5 * (r.edges[1:] + r.edges[:-1])
    Lz_mean = np.mean(r.Lz_A)
    rows = [{C.Z: centres[j], C.HEIGHT: min(centres[j], Lz_mean - centres[j]), C.SPECIES: name,
             C.N_DENS: n_dens[k, j], C.MASS_DENS: m_dens[k, j]}
            for k, name in enumerate(names + [C.ALL_SPECIES]) for j in range(len(centres)) if r.vol_acc[j] > 0]
    return pd.DataFrame(rows, columns=[C.Z, C.HEIGHT, C.SPECIES, C.N_DENS, C.MASS_DENS])


def contact_layer(cat_h: np.ndarray, Lz: np.ndarray, settings, warn: list[str]) -> tuple[float, str, float | None]:
    """(contact-layer height, its source, cation profile peak): the first minimum of the cation height profile."""
    hb = settings.contact_bin_A
    h_edges = np.arange(0, 0.5 * Lz.min() + hb, hb)
    ch, _ = np.histogram(cat_h.ravel(), bins=h_edges)
    h_cent = 0.5 * (h_edges[1:] + h_edges[:-1])
    peak_A, auto_min = first_min_after_peak(h_cent, ch.astype(float), settings.contact_peak_max_A)
    if settings.contact_layer_A is not None:
        return settings.contact_layer_A, "override", peak_A
    if auto_min is None:
        warn.append(f"contact_layer_A: the cation height profile has no clear first peak and minimum; "
                    f"{CONTACT_FALLBACK_A:g} A used - set interface.contact_layer_A")
        return CONTACT_FALLBACK_A, "fallback (no first minimum in the cation profile)", peak_A
    return auto_min, "auto", peak_A


def mid_slab(r, names, groups, cation_species, settings, warn: list[str]) -> dict:
    """Mid-slab region (``wall_exclusion_A`` from both faces), its densities and flatness tests."""
    excl = settings.wall_exclusion_A
    Lz_mean = float(r.Lz_A.mean())
    if Lz_mean - 2 * excl < 3.0:
        excl = max(0.0, (Lz_mean - 3.0) / 2.0)
        warn.append(f"wall_exclusion_A: the slab is thin; mid-slab region taken {excl:.1f} A from both faces")
    centres = 0.5 * (r.edges[1:] + r.edges[:-1])
    mid = (centres - 0.5 * settings.bin_A >= excl) & (centres + 0.5 * settings.bin_A <= r.Lz_A.min() - excl)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = float(r.m_hist[-1, mid].sum() / AVOGADRO / (r.vol_acc[mid].sum() * 1e-24)) if mid.any() else np.nan
        cat_rows = [names.index(n) for n in names if n in cation_species]
        cat_mid_n = float(r.n_hist[:-1][cat_rows].sum(0)[mid].sum() / r.vol_acc[mid].sum()) if mid.any() else np.nan
    flat = _flatness(r.m_frames, r.area_A2 * settings.bin_A, mid)
    packing_rel = _packing_rel_dev(names, groups, r.n_hist, r.vol_acc, mid, settings.bulk_density_g_cm3)
    flat["count_chi2_per_dof"] = _count_flatness(r.n_hist[-1] / r.cat_h.shape[0], mid, settings.bin_A,
                                                 settings.flat_bin_A)
    bulk = settings.bulk_density_g_cm3
    rel = (rho / bulk - 1.0) if bulk else float("nan")
    if bulk and (abs(rel) > settings.density_tolerance or abs(packing_rel) > settings.density_tolerance):
        warn.append(
            f"mid-slab density {rho:.4f} g/cm^3 deviates {100 * rel:+.1f} % from the bulk {bulk:.4f} g/cm^3, "
            f"molecular packing {100 * packing_rel:+.1f} % (tolerance {100 * settings.density_tolerance:.0f} %). "
            "Packing off: equilibrate longer or check the barostat / slab.excluded_nm; only the mass density off: "
            "the mid-slab composition differs from the bulk (ion enrichment/depletion; a thicker slab helps)")
    return {"excl": excl, "rho": rho, "cat_mid_n": cat_mid_n, "flat": flat, "packing_rel": packing_rel, "rel": rel}


# --------------------------------------------------------------------------- CN and census vs height


def _cn_per_sample(ct: ContactTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(molecules (F, C, P), molecules with total (F, C, P+1), donors with total, partner names + total)."""
    mol, don = shell_counts(ct)
    molT = np.concatenate([mol, mol.sum(-1, keepdims=True)], -1)
    donT = np.concatenate([don, don.sum(-1, keepdims=True)], -1)
    return mol, molT, donT, ct.partner_names + [C.TOTAL]


def _binned_cn_rows(counts, sel_bins, bins: list[tuple], lo: str, hi: str, extra=lambda b: {}) -> list[dict]:
    """Mean CN (molecules, donor atoms) per partner over the samples of each bin."""
    _, molT, donT, pn = counts
    rows = []
    for b, (e0, e1) in enumerate(bins):
        sel = sel_bins(b)
        n = int(sel.sum())
        if n == 0:
            continue
        rows += [{lo: e0, hi: e1, **extra(b), C.PARTNER: name, C.N_SAMPLES: n,
                  C.CN_MOL: float(molT[..., p][sel].mean()), C.CN_DON: float(donT[..., p][sel].mean())}
                 for p, name in enumerate(pn)]
    return rows


def cn_vs_height(counts, cat_h: np.ndarray, Lz: np.ndarray, height_bin_A: float) -> pd.DataFrame:
    """Cation CN per partner and total against the cation height (every cation falls in a bin)."""
    edges = np.arange(0, 0.5 * Lz.max() + height_bin_A, height_bin_A)
    idx = np.minimum(np.digitize(cat_h, edges) - 1, len(edges) - 2)  # a cation on the midplane: last bin
    bins = list(zip(edges[:-1], edges[1:]))
    rows = _binned_cn_rows(counts, lambda b: idx == b, bins, C.HEIGHT_LO, C.HEIGHT_HI,
                           lambda b: {C.HEIGHT: 0.5 * (edges[b] + edges[b + 1])})
    return pd.DataFrame(rows, columns=[C.HEIGHT_LO, C.HEIGHT_HI, C.HEIGHT, C.PARTNER, C.N_SAMPLES, C.CN_MOL,
                                       C.CN_DON])


def census_by_layer(mol: np.ndarray, partners: list[str], cat_h: np.ndarray, Lz: np.ndarray, contact: float,
                    census_bin_A: float) -> pd.DataFrame:
    """Shell compositions per height layer: the contact layer, then ``census_bin_A`` layers."""
    hmax = 0.5 * Lz.max()
    edges = [0.0, contact] + list(np.arange(contact + census_bin_A, hmax, census_bin_A)) + [hmax + 1e-6]
    layer = (np.digitize(cat_h, edges) - 1).ravel()
    flat_mol = mol.reshape(-1, len(partners))
    rows = []
    for k in range(len(edges) - 1):
        sel = layer == k
        n = int(sel.sum())
        if n == 0:
            continue
        comps, counts = np.unique(flat_mol[sel], axis=0, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        rows += [{C.HEIGHT_LO: edges[k], C.HEIGHT_HI: min(edges[k + 1], hmax),
                  C.LAYER: C.CONTACT_LAYER if k == 0 else f"layer {k + 1}",
                  C.COMPOSITION: composition_label(c_, partners), C.COUNT: int(k_), C.FRACTION: k_ / n,
                  C.CN_MOL: int(c_.sum())} for c_, k_ in zip(comps[order], counts[order])]
    return pd.DataFrame(rows, columns=[C.HEIGHT_LO, C.HEIGHT_HI, C.LAYER, C.COMPOSITION, C.COUNT, C.FRACTION,
                                       C.CN_MOL])


def _empty_lateral() -> pd.DataFrame:
    return pd.DataFrame([], columns=[C.LATERAL_LO, C.LATERAL_HI, C.PARTNER, C.N_SAMPLES, C.CN_MOL, C.CN_DON])


def lateral_cn(counts, cat_lat: np.ndarray, in_contact: np.ndarray, settings) -> pd.DataFrame:
    """CN of contact-layer cations against their in-plane distance to the nearest metal site."""
    edges = np.arange(0.0, settings.site_r_max_A + settings.height_bin_A, settings.height_bin_A)
    lb = np.digitize(cat_lat, edges) - 1
    rows = _binned_cn_rows(counts, lambda b: (lb == b) & in_contact, list(zip(edges[:-1], edges[1:])),
                           C.LATERAL_LO, C.LATERAL_HI)
    return pd.DataFrame(rows, columns=_empty_lateral().columns)


# --------------------------------------------------------------------------- metal sites


def site_tables(r, in_contact: np.ndarray, cat_mid_n: float, settings, n_sites: int, warn: list[str]) -> dict:
    """Cation - site g(r) (3D, mid-slab cation density as reference), lateral g, site cutoff, fraction at site."""
    out = {"table": pd.DataFrame(columns=[C.R, C.G_SITE, C.N_SITE, C.G_LATERAL]), "cutoff": None, "source": None,
           "frac": float("nan"), "frac_std": float("nan")}
    if not n_sites:
        return out
    F, bw = r.cat_h.shape[0], settings.site_bin_A
    r_e = np.arange(r.site_hist.size + 1) * bw
    r_c = 0.5 * (r_e[1:] + r_e[:-1])
    shell_vol = 4.0 / 3.0 * np.pi * (r_e[1:] ** 3 - r_e[:-1] ** 3)
    with np.errstate(invalid="ignore", divide="ignore"):
        g3 = r.site_hist / (F * n_sites * cat_mid_n * shell_vol)
        g_lat = _lateral_g(r, in_contact, r_e, bw, n_sites)
    out["table"] = pd.DataFrame({C.R: r_c, C.G_SITE: g3, C.N_SITE: np.cumsum(r.site_hist) / (F * n_sites),
                                 C.G_LATERAL: g_lat})
    if settings.site_cutoff_A is not None:
        out["cutoff"], out["source"] = settings.site_cutoff_A, "override"
    else:
        _, out["cutoff"] = first_min_after_peak(r_c, np.nan_to_num(g3), settings.site_peak_max_A)
        out["source"] = "auto"
        if out["cutoff"] is None:
            out["cutoff"], out["source"] = SITE_FALLBACK_A, "fallback (no peak in the site g(r))"
            warn.append(f"site_cutoff_A: no first peak/minimum in the cation-site g(r); {SITE_FALLBACK_A:g} A used")
    at_site = r.cat_r3 < out["cutoff"]
    out["frac"], out["frac_std"] = float(at_site.mean()), float(at_site.mean(1).std())
    return out


def _lateral_g(r, in_contact: np.ndarray, r_e: np.ndarray, bw: float, n_sites: int) -> np.ndarray:
    nb = r_e.size - 1
    lat, lat_den = np.zeros(nb), np.zeros(nb)
    ann = np.pi * (r_e[1:] ** 2 - r_e[:-1] ** 2)
    for fi, m in enumerate(in_contact):
        nc = int(m.sum())
        if nc == 0:
            continue
        b = (r.lat_pairs[fi][:, m].ravel() / bw).astype(int)
        lat += np.bincount(b[b < nb], minlength=nb)
        lat_den += n_sites * nc / r.lat_norm[fi] * ann
    return lat / lat_den


# --------------------------------------------------------------------------- summary


def _row(q: str, value, unit: str = "", note: str = "", std=np.nan) -> dict:
    return {C.QUANTITY: q, C.VALUE: value, C.STD: std, C.UNIT: unit, C.NOTE: note}


def summary_table(r, mol, contact, contact_source, peak_A, in_contact, site, mid, settings) -> pd.DataFrame:
    """One row per interfacial quantity (value, std, unit, note)."""
    molT_total = mol.sum(-1)
    cn_contact = float(molT_total[in_contact].mean()) if in_contact.any() else float("nan")
    beyond = r.cat_h >= max(contact + settings.census_bin_A, mid["excl"])
    cn_bulk = float(molT_total[beyond].mean()) if beyond.any() else float("nan")
    flat, bulk, tol = mid["flat"], settings.bulk_density_g_cm3, settings.density_tolerance
    return pd.DataFrame([
        _row("contact_layer_A", contact, "A", contact_source),
        _row("cation_profile_peak_A", peak_A if peak_A is not None else np.nan, "A",
             "first peak of the cation height profile"),
        _row("fraction_cations_contact_layer", float(in_contact.mean()), "", "mean over frames; std over frames",
             float(in_contact.mean(1).std())),
        _row("site_cutoff_A", site["cutoff"] if site["cutoff"] is not None else np.nan, "A",
             site["source"] or "no site"),
        _row("fraction_cations_at_site", site["frac"], "", "cation within site_cutoff_A of a metal site",
             site["frac_std"]),
        _row("cn_molecules_total_contact_layer", cn_contact),
        _row("cn_molecules_total_beyond", cn_bulk, "",
             "cations farther than the census layer after contact and the wall exclusion"),
        _row("density_mid_slab_g_cm3", mid["rho"], "g/cm3", f"{mid['excl']:.1f} A or more from both faces",
             flat["block_sem"]),
        _row("density_bulk_g_cm3", bulk if bulk else np.nan, "g/cm3", "reference (manifest density)"),
        _row("density_mid_slab_rel_dev", mid["rel"], "", f"tolerance {tol}"),
        _row("mid_slab_packing_rel_dev", mid["packing_rel"], "",
             "mid-slab molecular volume fraction (registry molar volumes) / bulk - 1: composition-independent "
             f"density check, tolerance {tol}"),
        _row("mid_slab_profile_chi2_per_dof", flat["chi2_per_dof"], "",
             f"flatness of the mid-slab mass density vs block-average errors ({flat['n_blocks']} blocks, "
             f"{flat['n_bins']} bins)"),
        _row("mid_slab_count_chi2_per_dof", flat["count_chi2_per_dof"], "",
             f"molecule centres in {settings.flat_bin_A:g} A mid-slab slices vs Poisson noise of one frame"),
        _row("mid_slab_profile_rel_std", flat["rel_std"], "", "std of the binned mid-slab mass density / its mean"),
        _row("mid_slab_halves_rel_diff", flat["halves_rel_diff"], "",
             "(upper half - lower half) / mean of the mid-slab mass density: a gradient shows here"),
        _row("sheet_z_spread_A", r.sheet_z_spread_A, "A", "planarity (0 = flat)"),
        _row("box_z_A", float(r.Lz_A.mean()), "A", "", float(r.Lz_A.std())),
        _row("min_liquid_height_A", r.closest_A, "A", "closest approach of any liquid atom to the sheet plane"),
        _row("sheet_crossings", r.n_crossed, "", "liquid atoms that passed through a sheet plane (must be 0)"),
        _row("n_frames", r.cat_h.shape[0]),
    ])


# --------------------------------------------------------------------------- mid-slab checks


def _flatness(m_frames: np.ndarray, bin_vol_A3: np.ndarray, mid: np.ndarray, n_blocks: int = 5) -> dict:
    """Is the mid-slab mass density flat within noise?

    Frames are cut into ``n_blocks`` contiguous blocks; each block gives a mid-slab profile.
    chi^2/dof of the block-mean profile about its own mean, with per-bin standard errors
    from the spread between blocks: ~1 for a flat profile, >> 1 for a real gradient. Also
    the block standard error of the mid-slab mean density (g/cm^3).
    """
    F = m_frames.shape[0]
    nbins = int(mid.sum())
    nbk = min(n_blocks, F)
    out = {"chi2_per_dof": float("nan"), "rel_std": float("nan"), "block_sem": float("nan"), "n_blocks": nbk,
           "n_bins": nbins, "halves_rel_diff": float("nan")}
    if nbins < 3 or nbk < 2:
        return out
    blocks = np.array_split(np.arange(F), nbk)
    prof = np.array([m_frames[b][:, mid].sum(0) / (bin_vol_A3[b].sum()) * G_CM3_PER_AMU_A3 for b in blocks])
    mean_prof = prof.mean(0)
    sem = prof.std(0, ddof=1) / np.sqrt(nbk)
    level = mean_prof.mean()
    ok = sem > 0
    if ok.sum() >= 2:
        out["chi2_per_dof"] = float((((mean_prof[ok] - level) / sem[ok]) ** 2).sum() / (ok.sum() - 1))
    out["rel_std"] = float(mean_prof.std(ddof=1) / level)
    half = nbins // 2
    out["halves_rel_diff"] = float((mean_prof[nbins - half:].mean() - mean_prof[:half].mean()) / level)
    out["block_sem"] = float(prof.mean(1).std(ddof=1) / np.sqrt(nbk))
    return out


def _packing_rel_dev(names, groups, n_hist, vol_acc, mid, bulk_rho) -> float:
    """Mid-slab volume fraction of molecules (ideal-mixing molar volumes of the species registry)
    relative to the bulk at ``bulk_rho`` with the system's overall composition, minus 1.

    The mid-slab mass density also moves with the local composition (ions enriched or depleted
    away from the sheet change it by several % in small slabs); this measure does not."""
    if not bulk_rho or not mid.any():
        return float("nan")
    from solvmd import species as species_registry

    try:
        sps = [species_registry.get(n) for n in names]
    except SolvmdError:
        return float("nan")
    counts = np.array([groups[n].n_molecules for n in names], dtype=float)
    mass = float((counts * [sp.molar_mass_g_mol for sp in sps]).sum()) / AVOGADRO  # g
    v_bulk_A3 = mass / bulk_rho * 1e24
    v_mol = np.array([sp.molar_volume for sp in sps]) / AVOGADRO * 1e24  # A^3 per molecule
    n_mid = n_hist[: len(names), mid].sum(1) / vol_acc[mid].sum()
    return float((n_mid * v_mol).sum() / ((counts / v_bulk_A3) * v_mol).sum() - 1.0)


def _count_flatness(mean_counts: np.ndarray, mid: np.ndarray, bin_A: float, flat_bin_A: float) -> float:
    """chi^2/dof of the per-frame mean count of molecule centres in ``flat_bin_A`` slices of the
    mid slab about their mean, with Poisson variance of ONE frame (conservative: treats all
    frames as one independent sample, so it suits short runs; a flat liquid gives <~ 1, a real
    gradient or gap gives >> 1)."""
    idx = np.flatnonzero(mid)
    k = max(1, int(round(flat_bin_A / bin_A)))
    groups = [idx[i:i + k] for i in range(0, len(idx) - k + 1, k)]
    if len(groups) < 2:
        return float("nan")
    c = np.array([mean_counts[g].sum() for g in groups])
    m = c.mean()
    return float(((c - m) ** 2).sum() / m / (len(c) - 1)) if m > 0 else float("nan")
