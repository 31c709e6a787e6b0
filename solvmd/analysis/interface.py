"""Interfacial analysis: electrolyte above a sheet (``solvmd build`` interface systems).

Geometry: the sheet lies in a plane z0 (the centroid z of the sheet atoms, 0 for solvmd
builds); the liquid fills the periodic box between the sheet and its image one box
height up. For every atom or molecule centre, ``z_A`` is the height above the sheet
plane, (z - z0) mod Lz in [0, Lz); ``height_A`` is the distance to the nearer sheet face,
min(z, Lz - z): both faces of the sheet are equivalent and are pooled.

One pass over the frames of the solvation analysis (:class:`InterfacePass`, shaped like
MDAnalysis ``AnalysisBase``) accumulates profiles and cation heights; the tables are pure
functions of its ``results`` and of the contact table (:mod:`interface_tables`):

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

Column names live in :mod:`solvmd.analysis.columns`, figures in :mod:`solvmd.analysis.plots`.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import MDAnalysis as mda
import numpy as np
from MDAnalysis.analysis.base import AnalysisBase
from pydantic import BaseModel, ConfigDict, Field

from solvmd import records
from solvmd.analysis import columns as C
from solvmd.analysis import interface_tables as tables
from solvmd.analysis import plots
from solvmd.analysis.contacts import AnalysisWarning, _select, open_universe
from solvmd.analysis.spec import AnalysisSpec
from solvmd.errors import SolvmdError
from solvmd.geometry import minimum_image
from solvmd.io import atomic_path, write_text_atomic

TABLES = ("interface", "interface_density", "interface_coordination", "interface_shells", "interface_site_rdf",
          "interface_coordination_lateral")


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
    from solvmd.assembly.system import read_manifest  # OpenMM-heavy: imported when used

    man_path = Path(build_dir) / records.MANIFEST
    man = read_manifest(build_dir)
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


# --------------------------------------------------------------------------- selections


@dataclass
class SpeciesGroup:
    """The whole molecules of one liquid species, with per-atom lookups built once."""

    atoms: mda.AtomGroup
    res_local: np.ndarray  # per atom: index of its molecule within the species
    weights: np.ndarray  # per atom: mass (1 where the topology has none or <= 0), amu
    n_molecules: int

    @classmethod
    def select(cls, u: mda.Universe, name: str, selection: str, sheet: mda.AtomGroup) -> SpeciesGroup:
        ag = _select(u, selection, f"interface.species.{name}")
        if np.intersect1d(ag.ix, sheet.ix).size:
            raise SolvmdError(f"interface.species.{name}: selection {selection!r} overlaps the sheet")
        atoms = ag.residues.atoms
        _, res_local = np.unique(atoms.resindices, return_inverse=True)
        masses = atoms.masses.astype(np.float64) if hasattr(atoms, "masses") else np.ones(atoms.n_atoms)
        return cls(atoms, res_local, np.where(masses > 0, masses, 1.0), ag.residues.n_residues)

    def centres(self, box: np.ndarray) -> np.ndarray:
        """Mass-weighted molecule centres, whole across the boundary (minimum image to each first atom)."""
        pos = self.atoms.positions.astype(np.float64)
        first = np.full(self.n_molecules, -1)
        order = np.arange(len(self.res_local))[::-1]
        first[self.res_local[order]] = order
        d = minimum_image(pos - pos[first[self.res_local]], box)
        wd = d * self.weights[:, None]
        num = np.stack([np.bincount(self.res_local, weights=wd[:, k], minlength=self.n_molecules)
                        for k in range(3)], axis=1)
        den = np.bincount(self.res_local, weights=self.weights, minlength=self.n_molecules)
        return pos[first] + num / den[:, None]


def _species_groups(u: mda.Universe, settings: InterfaceSettings, sheet: mda.AtomGroup) -> dict[str, SpeciesGroup]:
    species = settings.species or {str(r): f"resname {r}" for r in dict.fromkeys(u.atoms.resnames)
                                   if r != sheet.resnames[0]}
    return {name: SpeciesGroup.select(u, name, sel, sheet) for name, sel in species.items()}


def sheet_plane(sheet: mda.AtomGroup, Lz: float) -> tuple[float, float]:
    """(z0, spread): mean z of the sheet atoms made whole across z (A), and their z range."""
    sz = sheet.positions[:, 2].astype(np.float64)
    dz = minimum_image(sz - sz[0], Lz)
    return float(sz[0] + dz.mean()), float(np.ptp(dz))


# --------------------------------------------------------------------------- the pass


class InterfacePass(AnalysisBase):
    """One pass: species profiles along z, cation heights and site distances, sheet crossings.

    ``results`` after ``run(frames=...)``: ``edges`` (z bin edges, A), ``n_hist``/``m_hist``
    (species + all: molecule-centre counts, atom masses per z bin, summed over frames),
    ``vol_acc`` (bin volume summed over the frames where the bin exists, A^3), ``m_frames``
    (per-frame mass histogram of all liquid atoms), ``cat_h`` (frames, cations: height of
    each cation, A), ``cat_r3``/``cat_lat`` (distance, in-plane distance to the nearest
    site), ``site_hist``, ``lat_pairs``/``lat_norm`` (in-plane site-cation distances and the
    box area per frame), ``area_A2``, ``Lz_A``, ``sheet_z_spread_A``, ``closest_A`` (closest
    liquid atom to the sheet plane), ``n_crossed`` (liquid atoms that crossed a sheet plane).
    """

    def __init__(self, cations: mda.AtomGroup, sheet: mda.AtomGroup, sites: mda.AtomGroup | None,
                 groups: dict[str, SpeciesGroup], settings: InterfaceSettings, z_max_A: float, verbose: bool = False):
        super().__init__(cations.universe.trajectory, verbose=verbose)
        self.cations, self.sheet, self.sites, self.groups, self.s = cations, sheet, sites, groups, settings
        self.names = list(groups)
        self._nb = int(math.ceil(z_max_A / settings.bin_A))  # grown below if a frame is taller
        self._site_nb = int(round(settings.site_r_max_A / settings.site_bin_A))
        self._liquid_ix = (np.concatenate([g.atoms.ix for g in groups.values()]) if groups
                           else np.zeros(0, int))

    def _prepare(self):
        r, F, nc, nb = self.results, self.n_frames, self.cations.n_atoms, self._nb
        r.edges = np.arange(nb + 1) * self.s.bin_A
        r.n_hist, r.m_hist = np.zeros((len(self.names) + 1, nb)), np.zeros((len(self.names) + 1, nb))
        r.vol_acc, r.m_frames = np.zeros(nb), np.zeros((F, nb))
        r.cat_h = np.zeros((F, nc))
        r.cat_lat, r.cat_r3 = np.full((F, nc), np.nan), np.full((F, nc), np.nan)
        r.site_hist, r.lat_pairs, r.lat_norm = np.zeros(self._site_nb), [], []
        r.area_A2, r.Lz_A, r.sheet_z_spread_A = [], [], 0.0
        r.closest_A, self._prev_z = np.inf, None
        self._crossed = np.zeros(self._liquid_ix.size, dtype=bool)

    def _single_frame(self):
        ts, r, fi = self._ts, self.results, self._frame_index
        box = np.asarray(ts.dimensions[:3], dtype=np.float64)
        if np.any(np.abs(np.asarray(ts.dimensions[3:6]) - 90.0) > 1e-3):
            raise SolvmdError("interface analysis needs an orthorhombic box (sheet in the xy plane)")
        Lx, Ly, Lz = box
        self._grow(Lz)
        r.area_A2.append(Lx * Ly)
        r.Lz_A.append(Lz)
        z0, spread = sheet_plane(self.sheet, Lz)
        r.sheet_z_spread_A = max(r.sheet_z_spread_A, spread)
        r.vol_acc += np.where(r.edges[1:] <= Lz + 1e-9, Lx * Ly * self.s.bin_A, 0.0)
        self._profiles(fi, box, z0)
        cp = self.cations.positions.astype(np.float64)
        h = np.mod(cp[:, 2] - z0, Lz)
        r.cat_h[fi] = np.minimum(h, Lz - h)
        if self.sites is not None:
            self._site_distances(fi, cp, box)
        self._track_crossings(z0, Lz)

    def _grow(self, Lz: float) -> None:
        r = self.results
        if Lz <= r.edges[-1]:
            return
        grow = int(math.ceil(Lz / self.s.bin_A)) + 1 - self._nb
        r.n_hist, r.m_hist = (np.pad(a, ((0, 0), (0, grow))) for a in (r.n_hist, r.m_hist))
        r.vol_acc, r.m_frames = np.pad(r.vol_acc, (0, grow)), np.pad(r.m_frames, ((0, 0), (0, grow)))
        self._nb += grow
        r.edges = np.arange(self._nb + 1) * self.s.bin_A

    def _profiles(self, fi: int, box: np.ndarray, z0: float) -> None:
        r, nb, Lz, b = self.results, self._nb, box[2], self.s.bin_A
        for k, g in enumerate(self.groups.values()):
            hc = np.mod(g.centres(box)[:, 2] - z0, Lz)
            ha = np.mod(g.atoms.positions[:, 2].astype(np.float64) - z0, Lz)
            r.n_hist[k] += np.bincount(np.minimum((hc / b).astype(int), nb - 1), minlength=nb)
            mh = np.bincount(np.minimum((ha / b).astype(int), nb - 1), weights=g.weights, minlength=nb)
            r.m_hist[k] += mh
            r.m_frames[fi] += mh

    def _site_distances(self, fi: int, cp: np.ndarray, box: np.ndarray) -> None:
        r = self.results
        d = minimum_image(cp[None, :, :] - self.sites.positions.astype(np.float64)[:, None, :], box)
        r3 = np.sqrt((d**2).sum(-1))  # (sites, cations)
        rl2 = np.sqrt((d[..., :2] ** 2).sum(-1))
        r.cat_r3[fi], r.cat_lat[fi] = r3.min(0), rl2.min(0)
        b = (r3 / self.s.site_bin_A).astype(int)
        r.site_hist += np.bincount(b[b < self._site_nb], minlength=self._site_nb)
        r.lat_pairs.append(rl2)
        r.lat_norm.append(box[0] * box[1])

    def _track_crossings(self, z0: float, Lz: float) -> None:
        """Closest approach to the sheet plane; a crossing is a z, unwrapped frame to frame by the
        minimum image, that moved to another periodic slab (between sheet images z0 + k Lz)."""
        z = self.cations.universe.atoms.positions[self._liquid_ix, 2].astype(np.float64)
        h = np.mod(z - z0, Lz)
        if z.size:
            self.results.closest_A = min(self.results.closest_A, float(np.minimum(h, Lz - h).min()))
        if self._prev_z is None:
            self._zu = z.copy()
            self._slab0 = np.floor((self._zu - z0) / Lz)
        else:
            self._zu = self._zu + minimum_image(z - self._prev_z, Lz)
            self._crossed |= np.floor((self._zu - z0) / Lz) != self._slab0
        self._prev_z = z

    def _conclude(self):
        r = self.results
        r.n_hist[-1] = r.n_hist[:-1].sum(0)
        r.m_hist[-1] = r.m_hist[:-1].sum(0)
        r.Lz_A, r.area_A2 = np.asarray(r.Lz_A), np.asarray(r.area_A2)
        r.n_crossed = int(self._crossed.sum())


# --------------------------------------------------------------------------- the analysis


def _solvation_results(spec: AnalysisSpec, universe, verbose: bool):
    from solvmd.analysis.workflow import analyze

    light = spec.model_copy(update={"residence": spec.residence.model_copy(update={"enabled": False}),
                                    "transport": spec.transport.model_copy(update={"enabled": False})})
    return analyze(light, verbose=verbose, universe=universe)


def analyze_interface(spec: AnalysisSpec, settings: InterfaceSettings, results=None, universe=None,
                      verbose: bool = False) -> dict:
    """Interfacial tables (see module docstring); ``results`` from :func:`solvmd.analysis.analyze`.

    Returns ``{name: DataFrame}`` plus ``"meta"`` (a dict).
    """
    if results is None:
        results = _solvation_results(spec, universe, verbose)
    ct = results.contacts
    u = universe if universe is not None else open_universe(spec)
    sheet = _select(u, settings.sheet, "interface.sheet")
    sites = _select(u, settings.sites, "interface.sites") if settings.sites else None
    cations = u.atoms[ct.cations]
    groups = _species_groups(u, settings, sheet)
    z_max = 1.5 * float(u.trajectory[int(ct.frames[0])].dimensions[2])  # bins cover the tallest box
    p = InterfacePass(cations, sheet, sites, groups, settings, z_max, verbose=verbose)
    p.run(frames=np.asarray(ct.frames, dtype=np.int64))
    cation_species = [n for n, g in groups.items() if np.intersect1d(g.atoms.ix, cations.ix).size > 0]
    out, warn_msgs = tables.interface_tables(p.results, ct, groups, cation_species, settings,
                                             n_sites=sites.n_atoms if sites is not None else 0)
    for msg in warn_msgs:
        warnings.warn(msg, AnalysisWarning, stacklevel=2)
    area = out["meta"].pop("area_A2")
    out["meta"].update({"n_cations": int(cations.n_atoms), "species": list(groups), "warnings": warn_msgs,
                        "settings": settings.model_dump(), "area_A2": area})
    return out


# --------------------------------------------------------------------------- writing


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


def run_interface_analysis(spec: AnalysisSpec, settings: InterfaceSettings, out_dir: str | Path, results=None,
                           universe=None, verbose: bool = False) -> dict:
    """Analyse and write ``interface*.csv``, ``interface*.png`` and ``interface.json`` to ``out_dir``."""
    res = analyze_interface(spec, settings, results=results, universe=universe, verbose=verbose)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key in TABLES:
        with atomic_path(out / f"{key}.csv") as tmp:
            res[key].to_csv(tmp, index=False)
    # the figures of records.analysis_outputs(interface=True, site_rdf=<metal sites>): always drawn
    plots.save(plots.plot_interface_density(res["interface_density"]), out / "interface_density.png")
    plots.save(plots.plot_interface_coordination(res["interface_coordination"], res["meta"]["contact_layer_A"]),
               out / "interface_coordination.png")
    if res["meta"]["n_sites"]:
        plots.save(plots.plot_site_rdf(res["interface_site_rdf"]), out / "interface_site_rdf.png")
    summary = {r[C.QUANTITY]: r[C.VALUE] for r in res["interface"].to_dict("records")}
    write_text_atomic(out / "interface.json", json.dumps(_jsonable({**res["meta"], "summary": summary}), indent=2) + "\n")
    return res
