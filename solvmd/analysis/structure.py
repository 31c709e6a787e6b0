"""RDFs, first-shell cutoffs, coordination numbers and the shell census.

RDF normalisation is the same as ``mdtraj.compute_rdf`` (and equal to MDAnalysis
``InterRDF`` for a fixed box)::

    g(r_k) = H_k / (N_cation * N_donor * sum_frames(1/V) * 4/3 pi (r_k+1^3 - r_k^3))

and the running coordination number n(r) = 4 pi rho int g r^2 dr is the cumulative
pair count per cation per frame, i.e. donor atoms per cation within r.

Coordination numbers are counted from the contact table: ``cn_molecules`` counts
distinct partner molecules with at least one donor atom within the cutoff (a
bidentate DME counts once); ``cn_donor_atoms`` counts donor atoms (the same DME
counts twice) and equals the RDF's running CN at the cutoff.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from solvmd.analysis import columns as C
from solvmd.analysis.contacts import ContactTable
from solvmd.analysis.spec import RDFSettings

# --------------------------------------------------------------------------- RDF


def rdf_table(
    hist: np.ndarray,
    type_labels: list[tuple[str, str]],
    n_donors_per_type: np.ndarray,
    n_cations: int,
    n_frames: int,
    inv_volume_sum: float,
    bin_A: float,
) -> pd.DataFrame:
    """Long RDF table: one block per partner (``donor_type == "all"``) and per donor type."""
    n_types = len(type_labels)
    h = hist.reshape(n_types, -1).astype(np.float64)
    nbins = h.shape[1]
    edges = np.arange(nbins + 1) * bin_A
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    centres = 0.5 * (edges[1:] + edges[:-1])
    partners = list(dict.fromkeys(p for p, _ in type_labels))

    def block(partner, dtype, counts, n_donors):
        norm = n_cations * n_donors * inv_volume_sum * shell
        g = np.divide(counts, norm, out=np.zeros_like(counts), where=norm > 0)
        return pd.DataFrame(
            {
                C.PARTNER: partner,
                C.DONOR_TYPE: dtype,
                C.N_DONORS: int(n_donors),
                C.R: centres,
                "r_upper_A": edges[1:],
                C.G: g,
                C.N_R: np.cumsum(counts) / (n_cations * n_frames),
            }
        )

    blocks = []
    for p in partners:
        idx = [k for k, (pp, _) in enumerate(type_labels) if pp == p]
        blocks.append(block(p, C.ALL_DONORS, h[idx].sum(0), n_donors_per_type[idx].sum()))
        if len(idx) > 1:
            for k in idx:
                blocks.append(block(p, type_labels[k][1], h[k], n_donors_per_type[k]))
        else:
            blocks.append(block(p, type_labels[idx[0]][1], h[idx[0]], n_donors_per_type[idx[0]]))
    return pd.concat(blocks, ignore_index=True)


def find_cutoff(r: np.ndarray, g: np.ndarray, settings: RDFSettings | None = None) -> dict:
    """First minimum after the first peak of the smoothed RDF.

    A first-shell ("solvation") peak is a local maximum of the smoothed g(r) below
    ``first_peak_max_A``, at least ``min_peak_g`` high (denser than bulk), and distinct
    (its prominence is >= 20 % of its height, i.e. g falls to <= 80 % of the peak before
    any higher peak); of several such peaks the first one reaching a quarter of the
    highest is taken (a stray close contact at tiny r is not a shell). The cutoff is the first local minimum of the smoothed g after it
    (the middle of a flat zero gap). Without such a peak, or without a minimum after it,
    the partner is reported as not coordinating and gets no cutoff.
    """
    s = settings or RDFSettings()
    r = np.asarray(r, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    bin_A = float(r[1] - r[0]) if r.size > 1 else 1.0
    sigma = s.smooth_A / bin_A
    gs = gaussian_filter1d(g, sigma, mode="nearest") if sigma > 0 else g.copy()
    out = {
        C.COORDINATING: False,
        C.CUTOFF: None,
        C.PEAK_R: None,
        C.PEAK_G: None,
        C.MIN_R: None,
        C.MIN_G: None,
        "reason": "",
    }
    if not np.any(g > 0):
        out["reason"] = "no cation-partner pairs within the RDF range"
        return out
    peaks, props = find_peaks(np.concatenate([[0.0], gs, [0.0]]), height=s.min_peak_g, prominence=0)
    peaks = peaks - 1
    ok = (r[peaks] <= s.first_peak_max_A) & (props["prominences"] >= 0.2 * props["peak_heights"])
    peaks, heights = peaks[ok], props["peak_heights"][ok]
    # ignore minor bumps (a stray close contact at tiny r): the first-shell peak must reach
    # a quarter of the highest candidate
    peaks = peaks[heights >= 0.25 * heights.max()] if peaks.size else peaks
    if peaks.size == 0:
        below = gs[r <= s.first_peak_max_A]
        gmax = float(below.max()) if below.size else 0.0
        out["reason"] = (
            f"no first-shell peak: smoothed g(r) below {s.first_peak_max_A} A never forms a distinct "
            f"peak >= {s.min_peak_g} (max {gmax:.3g})"
        )
        return out
    p = int(peaks[0])
    out[C.PEAK_R], out[C.PEAK_G] = float(r[p]), float(gs[p])
    tail = gs[p:]
    mins, mprops = find_peaks(-tail, prominence=0.02)
    mins = mins[(tail[mins] <= 0.8 * gs[p]) & (mins > 0)]
    if mins.size == 0:
        out["reason"] = (
            f"first peak at {r[p]:.2f} A but no minimum after it within {r[-1] + bin_A / 2:.1f} A; "
            "set an override in cutoffs_A"
        )
        return out
    m = p + int(mins[0])
    out.update({C.COORDINATING: True, C.CUTOFF: float(r[m]), C.MIN_R: float(r[m]), C.MIN_G: float(gs[m])})
    out["reason"] = "first minimum after the first peak of the smoothed RDF"
    return out


def determine_cutoffs(
    rdf: pd.DataFrame, partners: list[str], overrides: dict[str, float], settings: RDFSettings
) -> dict[str, dict]:
    """Per partner: automatic cutoff from its RDF (all donors), replaced by an override if given."""
    out = {}
    for p in partners:
        blk = rdf[(rdf[C.PARTNER] == p) & (rdf[C.DONOR_TYPE] == C.ALL_DONORS)]
        info = find_cutoff(blk[C.R].to_numpy(), blk[C.G].to_numpy(), settings)
        info["auto_cutoff_A"] = info[C.CUTOFF]
        if p in overrides:
            info.update({C.CUTOFF: float(overrides[p]), C.COORDINATING: True, C.CUTOFF_SOURCE: "override"})
        else:
            info[C.CUTOFF_SOURCE] = "auto" if info[C.CUTOFF] is not None else "none"
        out[p] = info
    return out


# --------------------------------------------------------------------------- coordination


def shell_counts(ct: ContactTable) -> tuple[np.ndarray, np.ndarray]:
    """Dense counts per (frame, cation, partner): (molecules, donor atoms), each shape (F, C, P)."""
    return ct.memo("shell_counts", lambda: _shell_counts(ct))


def _shell_counts(ct: ContactTable) -> tuple[np.ndarray, np.ndarray]:
    F, Cn, P = ct.n_frames, ct.n_cations, len(ct.partner_names)
    k = ct.codes
    shell = k["f"] * Cn + k["c"]
    donors = np.bincount(shell * P + k["p"], minlength=F * Cn * P).reshape(F, Cn, P)
    M = ct.molecules.size
    uniq = np.unique(shell * M + k["m"])
    mol = np.bincount((uniq // M) * P + ct.molecule_partner[uniq % M], minlength=F * Cn * P).reshape(F, Cn, P)
    return mol, donors


def coordination_per_cation(ct: ContactTable) -> pd.DataFrame:
    """Per frame, per cation, per partner: molecules and donor atoms in the first shell."""
    mol, don = shell_counts(ct)
    F, Cn, P = mol.shape
    return pd.DataFrame(
        {
            C.FRAME: np.repeat(ct.frames, Cn * P),
            C.TIME: np.repeat(ct.times_ps, Cn * P),
            C.CATION: np.tile(np.repeat(ct.cations, P), F),
            C.PARTNER: pd.Categorical.from_codes(np.tile(np.arange(P), F * Cn), categories=ct.partner_names),
            C.CN_MOL: mol.ravel(),
            C.CN_DON: don.ravel(),
        }
    )


def _with_total(mol: np.ndarray, don: np.ndarray, names: list[str]):
    return (
        np.concatenate([mol, mol.sum(-1, keepdims=True)], axis=-1),
        np.concatenate([don, don.sum(-1, keepdims=True)], axis=-1),
        names + [C.TOTAL],
    )


def coordination_table(ct: ContactTable, rdf: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean coordination numbers per partner (and total), both per molecule and per donor atom."""
    mol, don = shell_counts(ct)
    mol, don, names = _with_total(mol, don, ct.partner_names)
    rows = []
    for k, n in enumerate(names):
        m, d = mol[..., k].ravel(), don[..., k].ravel()
        cut = ct.cutoffs_A.get(n) if n != C.TOTAL else None
        coord = (cut is not None) if n != C.TOTAL else any(v is not None for v in ct.cutoffs_A.values())
        row = {
            C.PARTNER: n,
            C.COORDINATING: coord,
            C.CUTOFF: np.nan if cut is None else cut,
            C.CN_MOL: m.mean() if m.size else np.nan,
            C.CN_MOL_STD: m.std() if m.size else np.nan,
            C.CN_DON: d.mean() if d.size else np.nan,
            C.CN_DON_STD: d.std() if d.size else np.nan,
            C.FRAC_ANY: (m > 0).mean() if m.size else np.nan,
            C.N_MOLECULES: int(ct.partner_res[n].size) if n != C.TOTAL else int(ct.molecules.size),
            C.N_SHELLS: int(m.size),
        }
        if rdf is not None and n != C.TOTAL:
            row[C.CN_DON_RDF] = _running_cn_at(rdf, n, cut)
        rows.append(row)
    df = pd.DataFrame(rows)
    if rdf is not None:
        tot = df.loc[df[C.PARTNER] != C.TOTAL, C.CN_DON_RDF].sum()
        df.loc[df[C.PARTNER] == C.TOTAL, C.CN_DON_RDF] = tot
    return df


def _running_cn_at(rdf: pd.DataFrame, partner: str, cutoff: float | None) -> float:
    if cutoff is None:
        return 0.0
    blk = rdf[(rdf[C.PARTNER] == partner) & (rdf[C.DONOR_TYPE] == C.ALL_DONORS)]
    upper = blk["r_upper_A"].to_numpy()
    if cutoff > upper[-1]:
        return np.nan
    return float(np.interp(cutoff, np.concatenate([[0.0], upper]), np.concatenate([[0.0], blk[C.N_R].to_numpy()])))


def coordination_distribution(ct: ContactTable) -> pd.DataFrame:
    """Fraction of first shells holding n molecules / n donor atoms of each partner (and total)."""
    mol, don = shell_counts(ct)
    mol, don, names = _with_total(mol, don, ct.partner_names)
    rows = []
    for kind, arr in (("molecules", mol), ("donor_atoms", don)):
        for k, n in enumerate(names):
            x = arr[..., k].ravel()
            cnt = np.bincount(x) if x.size else np.zeros(1, int)
            for val, c in enumerate(cnt):
                if c:
                    rows.append({C.PARTNER: n, C.COUNT_KIND: kind, C.N: val, C.COUNT: int(c), C.FRACTION: c / x.size})
    return pd.DataFrame(rows, columns=[C.PARTNER, C.COUNT_KIND, C.N, C.COUNT, C.FRACTION])


def coordination_per_frame(ct: ContactTable) -> pd.DataFrame:
    """Mean coordination numbers per frame (over cations), per partner and total."""
    mol, don = shell_counts(ct)
    mol, don, names = _with_total(mol, don, ct.partner_names)
    F, _, P = mol.shape
    return pd.DataFrame(
        {
            C.FRAME: np.repeat(ct.frames, P),
            C.TIME: np.repeat(ct.times_ps, P),
            C.PARTNER: np.tile(names, F),
            C.CN_MOL: mol.mean(1).ravel(),
            C.CN_DON: don.mean(1).ravel(),
        }
    )


# --------------------------------------------------------------------------- shell census


def composition_label(counts: np.ndarray, names: list[str]) -> str:
    parts = [f"{n}:{int(c)}" for n, c in zip(names, counts) if c]
    return " ".join(parts) if parts else C.EMPTY_SHELL


def shell_census(ct: ContactTable) -> pd.DataFrame:
    """Distribution of first-shell compositions (molecules per partner), most common first."""
    mol, _ = shell_counts(ct)
    names = ct.partner_names
    flat = mol.reshape(-1, len(names))
    cols = [C.COMPOSITION, C.COUNT, C.FRACTION, C.PERCENT, C.CN_MOL] + [f"n_{n}" for n in names]
    if flat.shape[0] == 0:
        return pd.DataFrame(columns=cols)
    comps, counts = np.unique(flat, axis=0, return_counts=True)
    df = pd.DataFrame(comps, columns=[f"n_{n}" for n in names])
    df.insert(0, C.COMPOSITION, [composition_label(c, names) for c in comps])
    df.insert(1, C.COUNT, counts)
    df.insert(2, C.FRACTION, counts / flat.shape[0])
    df.insert(3, C.PERCENT, 100.0 * counts / flat.shape[0])
    df.insert(4, C.CN_MOL, comps.sum(1))
    df = df.sort_values([C.COUNT, C.COMPOSITION], ascending=[False, True], kind="stable").reset_index(drop=True)
    return df[cols]
