"""Interfacial analysis: electrolyte above a sheet (``solvmd build`` interface systems).

Geometry: the sheet lies in a plane z0 (the centroid z of the sheet atoms, 0 for solvmd
builds); the liquid fills the periodic box between the sheet and its image one box
height up. For every atom or molecule centre, ``z_A`` is the height above the sheet
plane, (z - z0) mod Lz in [0, Lz); ``height_A`` is the distance to the nearer sheet face,
min(z, Lz - z): both faces of the sheet are equivalent and are pooled.

Tables (one pass over the frames of the solvation analysis, whose contact table gives
each cation's first shell):

- ``interface_density.csv``: number density of molecule centres (``n_per_nm3``) and mass
  density of atoms (``mass_g_cm3``) per species, and ``all``, against ``z_A``;
- ``interface_coordination.csv``: cation CN per partner and total (molecules, donor
  atoms) against ``height_A`` bins;
- ``interface_shells.csv``: shell census per height layer (the contact layer first);
- ``interface_site_rdf.csv``: cation - metal site g(r) (3D, normalised by the mid-slab
  cation density) with running count, and the lateral (in-plane) g of contact-layer
  cations around the site;
- ``interface_coordination_lateral.csv``: CN of contact-layer cations against their
  in-plane distance to the nearest metal site;
- ``interface.csv``: summary (contact layer, fractions, mid-slab density vs bulk,
  flatness of the mid-slab profile), plus ``interface.json`` and figures.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from solvmd.analysis import columns as C
from solvmd.analysis import plots
from solvmd.analysis.contacts import AnalysisWarning, _select, open_universe
from solvmd.analysis.spec import AnalysisSpec
from solvmd.analysis.structure import composition_label, shell_counts
from solvmd.errors import SolvmdError

AVOGADRO = 6.02214076e23

# column names (units in the name)
Z = "z_A"
HEIGHT = "height_A"
HEIGHT_LO = "height_lo_A"
HEIGHT_HI = "height_hi_A"
LAYER = "layer"
N_DENS = "n_per_nm3"
MASS_DENS = "mass_g_cm3"
N_SAMPLES = "n_samples"
R_SITE = "r_A"
G_SITE = "g_site"
N_SITE = "n_site"
G_LATERAL = "g_lateral_contact"
LATERAL_LO = "lateral_lo_A"  # in-plane distance to the nearest metal site
LATERAL_HI = "lateral_hi_A"
QUANTITY, VALUE, STD, UNIT, NOTE = "quantity", "value", "std", "unit", "note"
ALL = "all"
CONTACT = "contact"


class InterfaceSettings(BaseModel):
    """What the interfacial analysis needs beyond an :class:`AnalysisSpec`."""

    model_config = ConfigDict(extra="forbid")

    sheet: str = Field("resname GRA", description="MDAnalysis selection of the sheet atoms")
    sites: str | None = Field(None, description="selection of the metal site atoms (None: no site analysis)")
    species: dict[str, str] = Field(default_factory=dict, description="species -> selection of its molecules")
    bin_A: float = Field(0.25, gt=0, description="density-profile bin")
    height_bin_A: float = Field(1.0, gt=0, description="bin of the CN-vs-height table")
    census_bin_A: float = Field(3.0, gt=0, description="layer width of the shell census beyond the contact layer")
    contact_layer_A: float | None = Field(None, gt=0, description="default: first minimum of the cation profile")
    contact_peak_max_A: float = Field(7.0, gt=0, description="the contact-layer peak lies below this height")
    contact_bin_A: float = Field(0.5, gt=0, description="bin of the cation height profile (contact layer)")
    site_r_max_A: float = Field(10.0, gt=0)
    site_peak_max_A: float = Field(4.0, gt=0, description="the first site g(r) peak lies below this distance")
    site_bin_A: float = Field(0.1, gt=0)
    site_cutoff_A: float | None = Field(None, gt=0, description="cation 'at the site' within this; default: first "
                                                               "minimum of the site g(r)")
    wall_exclusion_A: float = Field(10.0, ge=0, description="mid-slab region: this far from both sheet faces")
    flat_bin_A: float = Field(2.0, gt=0, description="slice width of the mid-slab count flatness test")
    bulk_density_g_cm3: float | None = Field(None, gt=0, description="reference for the mid-slab density check")
    density_tolerance: float = Field(0.03, gt=0, description="allowed relative mid-slab vs bulk density deviation")


def interface_settings_from_manifest(build_dir: str | Path, **overrides) -> InterfaceSettings:
    """Settings for a solvmd interface build (sheet residue, site atoms, species, bulk density)."""
    man_path = Path(build_dir) / "manifest.json"
    if not man_path.is_file():
        raise SolvmdError(f"manifest {man_path} not found: run `solvmd build` first")
    from solvmd.io import read_json

    man = read_json(man_path, "build manifest")
    surf = man.get("surface")
    if not surf:
        raise SolvmdError(f"{man_path}: not an interface build (no `surface` entry)")
    data = {
        "sheet": f"resname {surf.get('residue', 'GRA')}",
        "sites": ("index " + " ".join(str(i) for i in surf["site_atoms"])) if surf.get("site_atoms") else None,
        "species": {s["name"]: f"resname {s['residue']}" for s in man.get("species", []) if s.get("count", 0) > 0},
        "bulk_density_g_cm3": man.get("density_g_cm3"),
    }
    data.update(overrides)
    return InterfaceSettings.model_validate(data)


# --------------------------------------------------------------------------- helpers


def _first_min_after_peak(x: np.ndarray, y: np.ndarray, peak_max: float | None = None,
                          smooth_pts: int = 3) -> tuple[float | None, float | None]:
    """(peak x, first minimum x after it) of a profile; the peak is the highest point at
    x <= ``peak_max``; None where there is no clear peak or minimum."""
    if len(y) < 5 or not np.any(y > 0):
        return None, None
    k = np.ones(smooth_pts) / smooth_pts
    ys = np.convolve(y, k, mode="same")
    lim = len(ys) if peak_max is None else int(np.searchsorted(x, peak_max, side="right"))
    if lim < 1:
        return None, None
    ip = int(np.argmax(ys[:lim]))
    if ys[ip] <= 0:
        return None, None
    for j in range(ip + 1, len(ys) - 1):
        if ys[j] <= ys[j - 1] and ys[j] <= ys[j + 1] and ys[j] < 0.8 * ys[ip]:
            return float(x[ip]), float(x[j])
    return float(x[ip]), None


def _residue_centres(positions: np.ndarray, res_of_atom: np.ndarray, w: np.ndarray, n_res: int,
                     box: np.ndarray) -> np.ndarray:
    """Mass-weighted centres of residues whole across the boundary (minimum image to the residue's first atom)."""
    first = np.full(n_res, -1)
    order = np.arange(len(res_of_atom))[::-1]
    first[res_of_atom[order]] = order
    ref = positions[first[res_of_atom]]
    d = positions - ref
    d -= box * np.rint(d / box)
    wd = d * w[:, None]
    num = np.stack([np.bincount(res_of_atom, weights=wd[:, k], minlength=n_res) for k in range(3)], axis=1)
    den = np.bincount(res_of_atom, weights=w, minlength=n_res)
    return positions[first] + num / den[:, None]


# --------------------------------------------------------------------------- the analysis


def analyze_interface(spec: AnalysisSpec, settings: InterfaceSettings, results=None, universe=None,
                      verbose: bool = False) -> dict:
    """Interfacial tables (see module docstring); ``results`` from :func:`solvmd.analysis.analyze`.

    Returns ``{name: DataFrame}`` plus ``"meta"`` (a dict).
    """
    if results is None:
        from solvmd.analysis.workflow import analyze

        light = spec.model_copy(update={"residence": spec.residence.model_copy(update={"enabled": False}),
                                        "transport": spec.transport.model_copy(update={"enabled": False})})
        results = analyze(light, verbose=verbose, universe=universe)
    ct = results.contacts
    u = universe if universe is not None else open_universe(spec)
    sheet = _select(u, settings.sheet, "interface.sheet")
    sites = _select(u, settings.sites, "interface.sites") if settings.sites else None
    cat_ix = ct.cations
    cations = u.atoms[cat_ix]
    species = settings.species or {str(r): f"resname {r}" for r in dict.fromkeys(u.atoms.resnames) if r != sheet.resnames[0]}
    sp_groups = {}
    for name, sel in species.items():
        ag = _select(u, sel, f"interface.species.{name}")
        if np.intersect1d(ag.ix, sheet.ix).size:
            raise SolvmdError(f"interface.species.{name}: selection {sel!r} overlaps the sheet")
        res = ag.residues
        atoms = res.atoms
        _, res_local = np.unique(atoms.resindices, return_inverse=True)
        masses = atoms.masses.astype(np.float64) if hasattr(atoms, "masses") else np.ones(atoms.n_atoms)
        sp_groups[name] = (atoms, res_local, np.where(masses > 0, masses, 1.0), res.n_residues)
    names = list(sp_groups)

    F = ct.n_frames
    dims0 = u.trajectory[int(ct.frames[0])].dimensions
    z_max = 1.5 * float(dims0[2])  # bins cover the tallest box; grown below if a frame is taller
    nb = int(math.ceil(z_max / settings.bin_A))
    edges = np.arange(nb + 1) * settings.bin_A
    n_hist = np.zeros((len(names) + 1, nb))
    m_hist = np.zeros((len(names) + 1, nb))
    vol_acc = np.zeros(nb)  # sum over frames of the bin volume (A^3) where the bin exists
    cat_h = np.zeros((F, cations.n_atoms))
    cat_lat = np.full((F, cations.n_atoms), np.nan)
    cat_r3 = np.full((F, cations.n_atoms), np.nan)
    n_sites = sites.n_atoms if sites is not None else 0
    site_nb = int(round(settings.site_r_max_A / settings.site_bin_A))
    site_hist = np.zeros(site_nb)
    lat_pairs: list[np.ndarray] = []
    lat_norm = []
    sheet_z_spread = 0.0
    m_frames = np.zeros((F, nb))  # per-frame mass histogram of all liquid atoms (flatness, block errors)
    area = []
    Lz_all = []
    for fi, f in enumerate(ct.frames):
        ts = u.trajectory[int(f)]
        box = np.asarray(ts.dimensions[:3], dtype=np.float64)
        if np.any(np.abs(np.asarray(ts.dimensions[3:6]) - 90.0) > 1e-3):
            raise SolvmdError("interface analysis needs an orthorhombic box (sheet in the xy plane)")
        Lx, Ly, Lz = box
        if Lz > edges[-1]:
            grow = int(math.ceil(Lz / settings.bin_A)) + 1 - nb
            n_hist, m_hist = (np.pad(a, ((0, 0), (0, grow))) for a in (n_hist, m_hist))
            vol_acc, m_frames = np.pad(vol_acc, (0, grow)), np.pad(m_frames, ((0, 0), (0, grow)))
            nb += grow
            edges = np.arange(nb + 1) * settings.bin_A
        area.append(Lx * Ly)
        Lz_all.append(Lz)
        sz = sheet.positions[:, 2].astype(np.float64)
        dz = sz - sz[0]
        dz -= Lz * np.rint(dz / Lz)
        z0 = sz[0] + dz.mean()
        sheet_z_spread = max(sheet_z_spread, float(np.ptp(dz)))
        exists = edges[1:] <= Lz + 1e-9
        vol_acc += np.where(exists, Lx * Ly * settings.bin_A, 0.0)
        for k, name in enumerate(names):
            atoms, rl, w, nres = sp_groups[name]
            pos = atoms.positions.astype(np.float64)
            com = _residue_centres(pos, rl, w, nres, box)
            hc = np.mod(com[:, 2] - z0, Lz)
            ha = np.mod(pos[:, 2] - z0, Lz)
            n_hist[k] += np.bincount(np.minimum((hc / settings.bin_A).astype(int), nb - 1), minlength=nb)
            mh = np.bincount(np.minimum((ha / settings.bin_A).astype(int), nb - 1), weights=w, minlength=nb)
            m_hist[k] += mh
            m_frames[fi] += mh
        cp = cations.positions.astype(np.float64)
        h = np.mod(cp[:, 2] - z0, Lz)
        cat_h[fi] = np.minimum(h, Lz - h)
        if sites is not None:
            spos = sites.positions.astype(np.float64)
            d = cp[None, :, :] - spos[:, None, :]
            d -= box * np.rint(d / box)
            r3 = np.sqrt((d**2).sum(-1))  # (sites, cations)
            rl2 = np.sqrt((d[..., :2] ** 2).sum(-1))
            cat_r3[fi] = r3.min(0)
            cat_lat[fi] = rl2.min(0)
            b = (r3 / settings.site_bin_A).astype(int)
            site_hist += np.bincount(b[b < site_nb], minlength=site_nb)
            lat_pairs.append(rl2)
            lat_norm.append(Lx * Ly)
    n_hist[-1] = n_hist[:-1].sum(0)
    m_hist[-1] = m_hist[:-1].sum(0)
    Lz_all = np.asarray(Lz_all)
    A_mean = float(np.mean(area))

    # ---- density profiles
    with np.errstate(invalid="ignore", divide="ignore"):
        n_dens = n_hist / vol_acc * 1000.0  # per nm^3
        m_dens = m_hist / AVOGADRO / (vol_acc * 1e-24)  # g/cm^3
    centres = 0.5 * (edges[1:] + edges[:-1])
    rows = []
    for k, name in enumerate(names + [ALL]):
        for j in range(nb):
            if vol_acc[j] > 0:
                rows.append({Z: centres[j], HEIGHT: min(centres[j], np.mean(Lz_all) - centres[j]), C.SPECIES: name,
                             N_DENS: n_dens[k, j], MASS_DENS: m_dens[k, j]})
    density = pd.DataFrame(rows, columns=[Z, HEIGHT, C.SPECIES, N_DENS, MASS_DENS])

    # ---- cation height profile -> contact layer
    warn_msgs: list[str] = []
    hb = settings.contact_bin_A
    h_edges = np.arange(0, 0.5 * Lz_all.min() + hb, hb)
    ch, _ = np.histogram(cat_h.ravel(), bins=h_edges)
    h_cent = 0.5 * (h_edges[1:] + h_edges[:-1])
    peak_A, auto_min = _first_min_after_peak(h_cent, ch.astype(float), settings.contact_peak_max_A)
    contact = settings.contact_layer_A if settings.contact_layer_A is not None else auto_min
    contact_source = "override" if settings.contact_layer_A is not None else "auto"
    if contact is None:
        contact = 5.0
        contact_source = "fallback (no first minimum in the cation profile)"
        warn_msgs.append("contact_layer_A: the cation height profile has no clear first peak and minimum; "
                         "5 A used - set interface.contact_layer_A")

    # ---- mid-slab region, bulk reference and flatness
    excl = settings.wall_exclusion_A
    Lz_mean = float(Lz_all.mean())
    if Lz_mean - 2 * excl < 3.0:
        excl = max(0.0, (Lz_mean - 3.0) / 2.0)
        warn_msgs.append(f"wall_exclusion_A: the slab is thin; mid-slab region taken {excl:.1f} A from both faces")
    mid = (centres - 0.5 * settings.bin_A >= excl) & (centres + 0.5 * settings.bin_A <= Lz_all.min() - excl)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho_mid = float(m_hist[-1, mid].sum() / AVOGADRO / (vol_acc[mid].sum() * 1e-24)) if mid.any() else float("nan")
        cat_mid_n = float(n_hist[:-1][[names.index(n) for n in names if _is_cation_species(sp_groups[n][0], cations)]].sum(0)[mid].sum()
                          / vol_acc[mid].sum()) if mid.any() else float("nan")  # per A^3
    flat = _flatness(m_frames, np.asarray(area) * settings.bin_A, mid)
    packing_rel = _packing_rel_dev(names, sp_groups, n_hist, vol_acc, mid, settings.bulk_density_g_cm3)
    flat["count_chi2_per_dof"] = _count_flatness(n_hist[-1] / F, mid, settings.bin_A, settings.flat_bin_A)
    bulk = settings.bulk_density_g_cm3
    rel = (rho_mid / bulk - 1.0) if bulk else float("nan")
    if bulk and (abs(rel) > settings.density_tolerance or abs(packing_rel) > settings.density_tolerance):
        warn_msgs.append(
            f"mid-slab density {rho_mid:.4f} g/cm^3 deviates {100 * rel:+.1f} % from the bulk {bulk:.4f} g/cm^3, "
            f"molecular packing {100 * packing_rel:+.1f} % (tolerance {100 * settings.density_tolerance:.0f} %). "
            "Packing off: equilibrate longer or check the barostat / slab.excluded_nm; only the mass density off: "
            "the mid-slab composition differs from the bulk (ion enrichment/depletion; a thicker slab helps)")

    # ---- CN and shell census vs height (from the contact table)
    mol, don = shell_counts(ct)  # (F, C, P)
    P = len(ct.partner_names)
    pn = ct.partner_names + [C.TOTAL]
    molT = np.concatenate([mol, mol.sum(-1, keepdims=True)], -1)
    donT = np.concatenate([don, don.sum(-1, keepdims=True)], -1)
    hmax = 0.5 * Lz_all.max()  # every cation (h <= Lz/2 of its frame) falls in a bin
    cn_edges = np.arange(0, hmax + settings.height_bin_A, settings.height_bin_A)
    hb_idx = np.digitize(cat_h, cn_edges) - 1
    cn_rows = []
    for b in range(len(cn_edges) - 1):
        sel = hb_idx == b
        n = int(sel.sum())
        if n == 0:
            continue
        for p, name in enumerate(pn):
            cn_rows.append({HEIGHT_LO: cn_edges[b], HEIGHT_HI: cn_edges[b + 1],
                            HEIGHT: 0.5 * (cn_edges[b] + cn_edges[b + 1]), C.PARTNER: name, N_SAMPLES: n,
                            C.CN_MOL: float(molT[..., p][sel].mean()), C.CN_DON: float(donT[..., p][sel].mean())})
    coordination = pd.DataFrame(cn_rows, columns=[HEIGHT_LO, HEIGHT_HI, HEIGHT, C.PARTNER, N_SAMPLES, C.CN_MOL,
                                                  C.CN_DON])
    layer_edges = [0.0, contact] + list(np.arange(contact + settings.census_bin_A, hmax, settings.census_bin_A)) + [hmax + 1e-6]
    layer_idx = np.digitize(cat_h, layer_edges) - 1
    census_rows = []
    flat_mol = mol.reshape(-1, P)
    flat_layer = layer_idx.ravel()
    for L in range(len(layer_edges) - 1):
        sel = flat_layer == L
        n = int(sel.sum())
        if n == 0:
            continue
        comps, counts = np.unique(flat_mol[sel], axis=0, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        for c_, k_ in zip(comps[order], counts[order]):
            census_rows.append({HEIGHT_LO: layer_edges[L], HEIGHT_HI: min(layer_edges[L + 1], hmax),
                                LAYER: CONTACT if L == 0 else f"layer {L + 1}",
                                C.COMPOSITION: composition_label(c_, ct.partner_names), C.COUNT: int(k_),
                                C.FRACTION: k_ / n, C.CN_MOL: int(c_.sum())})
    shells = pd.DataFrame(census_rows, columns=[HEIGHT_LO, HEIGHT_HI, LAYER, C.COMPOSITION, C.COUNT, C.FRACTION,
                                                C.CN_MOL])

    # ---- site RDFs
    in_contact = cat_h < contact
    frac_contact_frames = in_contact.mean(1)
    site_rdf = pd.DataFrame(columns=[R_SITE, G_SITE, N_SITE, G_LATERAL])
    site_cut, site_source, frac_site, frac_site_std = None, None, float("nan"), float("nan")
    if sites is not None and n_sites:
        r_e = np.arange(site_nb + 1) * settings.site_bin_A
        r_c = 0.5 * (r_e[1:] + r_e[:-1])
        shell_vol = 4.0 / 3.0 * np.pi * (r_e[1:] ** 3 - r_e[:-1] ** 3)
        with np.errstate(invalid="ignore", divide="ignore"):
            g3 = site_hist / (F * n_sites * cat_mid_n * shell_vol)
        n_run = np.cumsum(site_hist) / (F * n_sites)
        lat = np.zeros(site_nb)
        lat_den = np.zeros(site_nb)
        ann = np.pi * (r_e[1:] ** 2 - r_e[:-1] ** 2)
        for fi in range(F):
            m = in_contact[fi]
            nc = int(m.sum())
            if nc == 0:
                continue
            rr = lat_pairs[fi][:, m].ravel()
            b = (rr / settings.site_bin_A).astype(int)
            lat += np.bincount(b[b < site_nb], minlength=site_nb)
            lat_den += n_sites * nc / lat_norm[fi] * ann
        with np.errstate(invalid="ignore", divide="ignore"):
            g_lat = lat / lat_den
        site_rdf = pd.DataFrame({R_SITE: r_c, G_SITE: g3, N_SITE: n_run, G_LATERAL: g_lat})
        if settings.site_cutoff_A is not None:
            site_cut, site_source = settings.site_cutoff_A, "override"
        else:
            _, site_cut = _first_min_after_peak(r_c, np.nan_to_num(g3), settings.site_peak_max_A)
            site_source = "auto"
            if site_cut is None:
                site_cut, site_source = 3.5, "fallback (no peak in the site g(r))"
                warn_msgs.append("site_cutoff_A: no first peak/minimum in the cation-site g(r); 3.5 A used")
        at_site = cat_r3 < site_cut
        frac_site, frac_site_std = float(at_site.mean()), float(at_site.mean(1).std())

    # ---- CN of contact-layer cations vs lateral distance to the nearest metal site
    lat_rows = []
    if sites is not None and n_sites:
        lat_edges = np.arange(0.0, settings.site_r_max_A + settings.height_bin_A, settings.height_bin_A)
        lb = np.digitize(cat_lat, lat_edges) - 1
        for b in range(len(lat_edges) - 1):
            sel = (lb == b) & in_contact
            n = int(sel.sum())
            if n == 0:
                continue
            for p, name in enumerate(pn):
                lat_rows.append({LATERAL_LO: lat_edges[b], LATERAL_HI: lat_edges[b + 1], C.PARTNER: name,
                                 N_SAMPLES: n, C.CN_MOL: float(molT[..., p][sel].mean()),
                                 C.CN_DON: float(donT[..., p][sel].mean())})
    lateral = pd.DataFrame(lat_rows, columns=[LATERAL_LO, LATERAL_HI, C.PARTNER, N_SAMPLES, C.CN_MOL, C.CN_DON])

    # ---- summary
    closest, n_cross = _sheet_contact_stats(u, ct.frames, sheet, sp_groups)
    if n_cross:
        warn_msgs.append(f"{n_cross} liquid atom(s) crossed the sheet plane: the sheet leaks (holes too large, "
                         "or a sheet atom without LJ)")
    cn_contact = float(molT[..., -1][in_contact].mean()) if in_contact.any() else float("nan")
    beyond = cat_h >= max(contact + settings.census_bin_A, excl)
    cn_bulk = float(molT[..., -1][beyond].mean()) if beyond.any() else float("nan")
    summary = pd.DataFrame([
        {QUANTITY: "contact_layer_A", VALUE: contact, STD: np.nan, UNIT: "A", NOTE: contact_source},
        {QUANTITY: "cation_profile_peak_A", VALUE: peak_A if peak_A is not None else np.nan, STD: np.nan, UNIT: "A",
         NOTE: "first peak of the cation height profile"},
        {QUANTITY: "fraction_cations_contact_layer", VALUE: float(in_contact.mean()),
         STD: float(frac_contact_frames.std()), UNIT: "", NOTE: "mean over frames; std over frames"},
        {QUANTITY: "site_cutoff_A", VALUE: site_cut if site_cut is not None else np.nan, STD: np.nan, UNIT: "A",
         NOTE: site_source or "no site"},
        {QUANTITY: "fraction_cations_at_site", VALUE: frac_site, STD: frac_site_std, UNIT: "",
         NOTE: "cation within site_cutoff_A of a metal site"},
        {QUANTITY: "cn_molecules_total_contact_layer", VALUE: cn_contact, STD: np.nan, UNIT: "", NOTE: ""},
        {QUANTITY: "cn_molecules_total_beyond", VALUE: cn_bulk, STD: np.nan, UNIT: "",
         NOTE: "cations farther than the census layer after contact and the wall exclusion"},
        {QUANTITY: "density_mid_slab_g_cm3", VALUE: rho_mid, STD: flat["block_sem"], UNIT: "g/cm3",
         NOTE: f"{excl:.1f} A or more from both faces"},
        {QUANTITY: "density_bulk_g_cm3", VALUE: bulk if bulk else np.nan, STD: np.nan, UNIT: "g/cm3",
         NOTE: "reference (manifest density)"},
        {QUANTITY: "density_mid_slab_rel_dev", VALUE: rel, STD: np.nan, UNIT: "",
         NOTE: f"tolerance {settings.density_tolerance}"},
        {QUANTITY: "mid_slab_packing_rel_dev", VALUE: packing_rel, STD: np.nan, UNIT: "",
         NOTE: "mid-slab molecular volume fraction (registry molar volumes) / bulk - 1: composition-independent "
               f"density check, tolerance {settings.density_tolerance}"},
        {QUANTITY: "mid_slab_profile_chi2_per_dof", VALUE: flat["chi2_per_dof"], STD: np.nan, UNIT: "",
         NOTE: f"flatness of the mid-slab mass density vs block-average errors ({flat['n_blocks']} blocks, "
               f"{flat['n_bins']} bins)"},
        {QUANTITY: "mid_slab_count_chi2_per_dof", VALUE: flat["count_chi2_per_dof"], STD: np.nan, UNIT: "",
         NOTE: f"molecule centres in {settings.flat_bin_A:g} A mid-slab slices vs Poisson noise of one frame"},
        {QUANTITY: "mid_slab_profile_rel_std", VALUE: flat["rel_std"], STD: np.nan, UNIT: "",
         NOTE: "std of the binned mid-slab mass density / its mean"},
        {QUANTITY: "mid_slab_halves_rel_diff", VALUE: flat["halves_rel_diff"], STD: np.nan, UNIT: "",
         NOTE: "(upper half - lower half) / mean of the mid-slab mass density: a gradient shows here"},
        {QUANTITY: "sheet_z_spread_A", VALUE: sheet_z_spread, STD: np.nan, UNIT: "A", NOTE: "planarity (0 = flat)"},
        {QUANTITY: "box_z_A", VALUE: Lz_mean, STD: float(Lz_all.std()), UNIT: "A", NOTE: ""},
        {QUANTITY: "min_liquid_height_A", VALUE: closest, STD: np.nan,
         UNIT: "A", NOTE: "closest approach of any liquid atom to the sheet plane"},
        {QUANTITY: "sheet_crossings", VALUE: n_cross, STD: np.nan, UNIT: "",
         NOTE: "liquid atoms that passed through a sheet plane (must be 0)"},
        {QUANTITY: "n_frames", VALUE: F, STD: np.nan, UNIT: "", NOTE: ""},
    ])
    for msg in warn_msgs:
        warnings.warn(msg, AnalysisWarning, stacklevel=2)
    meta = {"contact_layer_A": contact, "contact_layer_source": contact_source, "site_cutoff_A": site_cut,
            "site_cutoff_source": site_source, "wall_exclusion_A": excl, "n_sites": n_sites,
            "n_cations": int(cations.n_atoms), "species": names, "warnings": warn_msgs,
            "settings": settings.model_dump(), "area_A2": A_mean}
    return {"interface": summary, "interface_density": density, "interface_coordination": coordination,
            "interface_shells": shells, "interface_site_rdf": site_rdf, "interface_coordination_lateral": lateral,
            "meta": meta}


def _is_cation_species(atoms, cations) -> bool:
    return np.intersect1d(atoms.ix, cations.ix).size > 0


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
    conv = 1.0 / AVOGADRO / 1e-24  # amu / A^3 -> g / cm^3
    blocks = np.array_split(np.arange(F), nbk)
    prof = np.array([m_frames[b][:, mid].sum(0) / (bin_vol_A3[b].sum()) * conv for b in blocks])  # (blocks, bins)
    mean_prof = prof.mean(0)
    sem = prof.std(0, ddof=1) / np.sqrt(nbk)
    level = mean_prof.mean()
    ok = sem > 0
    if ok.sum() >= 2:
        out["chi2_per_dof"] = float((((mean_prof[ok] - level) / sem[ok]) ** 2).sum() / (ok.sum() - 1))
    out["rel_std"] = float(mean_prof.std(ddof=1) / level)
    half = nbins // 2
    out["halves_rel_diff"] = float((mean_prof[nbins - half:].mean() - mean_prof[:half].mean()) / level)
    block_mean = prof.mean(1)
    out["block_sem"] = float(block_mean.std(ddof=1) / np.sqrt(nbk))
    return out


def _packing_rel_dev(names, sp_groups, n_hist, vol_acc, mid, bulk_rho) -> float:
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
    counts = np.array([sp_groups[n][3] for n in names], dtype=float)
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


def _sheet_contact_stats(u, frames, sheet, sp_groups) -> tuple[float, int]:
    """(closest approach of any liquid atom to the sheet plane, A; number of liquid atoms
    that crossed a sheet plane). Crossing: the atom's z, unwrapped frame to frame by the
    minimum image, moved to another periodic slab (between sheet images z0 + k Lz)."""
    ix = np.concatenate([g[0].ix for g in sp_groups.values()]) if sp_groups else np.zeros(0, int)
    best = np.inf
    prev = zu = slab0 = None
    crossed = np.zeros(ix.size, dtype=bool)
    for f in frames:
        ts = u.trajectory[int(f)]
        Lz = float(ts.dimensions[2])
        sz = sheet.positions[:, 2].astype(np.float64)
        dz = sz - sz[0]
        dz -= Lz * np.rint(dz / Lz)
        z0 = sz[0] + dz.mean()
        z = u.atoms.positions[ix, 2].astype(np.float64)
        h = np.mod(z - z0, Lz)
        best = min(best, float(np.minimum(h, Lz - h).min()))
        if prev is None:
            zu = z.copy()
            slab0 = np.floor((zu - z0) / Lz)
        else:
            step = z - prev
            zu = zu + step - Lz * np.rint(step / Lz)
            crossed |= np.floor((zu - z0) / Lz) != slab0
        prev = z
    return best, int(crossed.sum())


# --------------------------------------------------------------------------- writing


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def plot_density(density: pd.DataFrame):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    for k, (name, sub) in enumerate(density[density[C.SPECIES] != ALL].groupby(C.SPECIES, sort=False)):
        ax.plot(sub[Z], sub[N_DENS], lw=1.2, color=plots.PALETTE[k % len(plots.PALETTE)], label=name)
    ax.set_ylabel("ρ (molecules nm⁻³)")
    ax.legend(fontsize=7, ncol=2)
    tot = density[density[C.SPECIES] == ALL]
    ax2.plot(tot[Z], tot[MASS_DENS], color="k", lw=1.2)
    ax2.set_ylabel("ρ (g cm⁻³)")
    ax2.set_xlabel("z above the sheet (Å)")
    return fig


def plot_coordination(coord: pd.DataFrame, contact: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    for k, (name, sub) in enumerate(coord.groupby(C.PARTNER, sort=False)):
        ax.plot(sub[HEIGHT], sub[C.CN_MOL], marker="o", ms=3, lw=1.8 if name == C.TOTAL else 1.0,
                color="k" if name == C.TOTAL else plots.PALETTE[k % len(plots.PALETTE)], label=name)
    ax.axvline(contact, color="tab:red", ls=":", lw=1)
    ax.set_xlabel("cation height above the sheet (Å)")
    ax.set_ylabel("CN (molecules)")
    ax.legend(fontsize=7)
    return fig


def plot_site_rdf(site: pd.DataFrame):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(site[R_SITE], site[G_SITE], color="k", label="g(r) cation–metal (3D)")
    ax.plot(site[R_SITE], site[G_LATERAL], color="tab:blue", lw=1, label="lateral g, contact layer")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g")
    ax2 = ax.twinx()
    ax2.plot(site[R_SITE], site[N_SITE], color="grey", ls="--", lw=1)
    ax2.set_ylabel("n(r): cations per site", color="grey")
    ax.legend(fontsize=7)
    return fig


def run_interface_analysis(spec: AnalysisSpec, settings: InterfaceSettings, out_dir: str | Path, results=None,
                           universe=None, verbose: bool = False) -> dict:
    """Analyse and write ``interface*.csv``, ``interface*.png`` and ``interface.json`` to ``out_dir``."""
    res = analyze_interface(spec, settings, results=results, universe=universe, verbose=verbose)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key in ("interface", "interface_density", "interface_coordination", "interface_shells", "interface_site_rdf",
                "interface_coordination_lateral"):
        _atomic_csv(res[key], out / f"{key}.csv")
    plots.save(plot_density(res["interface_density"]), out / "interface_density.png")
    if len(res["interface_coordination"]):
        plots.save(plot_coordination(res["interface_coordination"], res["meta"]["contact_layer_A"]),
                   out / "interface_coordination.png")
    if len(res["interface_site_rdf"]):
        plots.save(plot_site_rdf(res["interface_site_rdf"]), out / "interface_site_rdf.png")
    summary = {r[QUANTITY]: r[VALUE] for r in res["interface"].to_dict("records")}
    tmp = out / ".interface.json.partial"
    tmp.write_text(json.dumps(_jsonable({**res["meta"], "summary": summary}), indent=2) + "\n")
    os.replace(tmp, out / "interface.json")
    return res
