"""Typed PMF settings: one :class:`PMFSpec` per collective variable (one ``pmf/<name>/`` folder).

A recipe's ``pmf:`` block is either one mapping or a list of mappings, each a PMFSpec::

    pmf:
      - name: li_dme                 # folder name under results/<system>/pmf/
        cv: {kind: distance, cation: LI, partner: DME, partner_site: donor}
        range_nm: [0.18, 0.75]
        spacing_nm: 0.025
        k_kJ_mol_nm2: 3000
        equil_ps: 20
        sample_ps: 200

CV kinds:

- ``distance``: cation - partner (solvent molecule or anion) distance; the partner
  site is its donor atom nearest the cation (``donor``) or its centre of mass (``com``).
- ``height``: cation z above a surface plane: the geometric centroid z of the
  ``surface`` residues' atoms (moves with the surface), or a fixed plane ``z0_nm``.
- ``site_distance``: cation - metal site distance (site atoms by element or index).

Tagged atoms (the cation, the partner, the surface/site) are picked automatically from
the equilibrated structure (see :mod:`solvmd.pmf.umbrella`) unless given as 0-based atom
indices (``cation_atoms``, ``partner_atoms``, ``surface_atoms``, ``site_atoms``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from solvmd.errors import SolvmdError, validation_message
from solvmd.io import read_yaml
from solvmd.units import KJ_PER_KCAL  # noqa: F401  (the pmf package takes it from here)
from solvmd.units import MOLAR_GAS_CONSTANT_KJ_MOL_K as KB_KJ_MOL_K  # k_B per mole, kJ/(mol K)

# Lowest height / site distance a window may sit at: 0.1 nm is well inside the van der Waals
# radius of carbon (0.170 nm, Bondi, J. Phys. Chem. 68, 441 (1964)); any ion there is inside the sheet.
MIN_CONTACT_NM = 0.1


class PMFSpecError(SolvmdError):
    """A PMF spec that cannot run: the message names the field and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_atoms(v):
    if v is None:
        return v
    if len(v) == 0:
        raise ValueError("an atom list must not be empty")
    if any(i < 0 for i in v):
        raise ValueError(f"atom indices are 0-based and non-negative, got {list(v)}")
    if len(set(v)) != len(v):
        raise ValueError(f"atom indices repeat: {list(v)}")
    return v


class Hold(_Strict):
    """Hold the cation at a height above a sheet (harmonic on its height) while a distance CV runs:
    the ion-solvent coordinate of an ion in the contact layer of a surface."""

    surface: tuple[str, ...] = Field(("GRA",), description="sheet residue names; plane = centroid z of their atoms")
    height_nm: float = Field(..., description="height the cation is held at (nm), e.g. the contact layer")
    k_kJ_mol_nm2: float = Field(2000.0, gt=0.0)

    @field_validator("height_nm")
    @classmethod
    def _above_contact(cls, v):
        if v < MIN_CONTACT_NM:
            raise ValueError(f"hold.height_nm {v} nm is below contact (< {MIN_CONTACT_NM} nm, inside the sheet)")
        return v


class DistanceCV(_Strict):
    """Cation - partner distance (solvent leaves the shell, or CIP -> SSIP for an anion)."""

    kind: Literal["distance"] = "distance"
    cation: str | None = Field(None, description="cation residue name (LI, MG); None: the first cation residue")
    partner: str | None = Field(None, description="partner residue name (DME, FSI, ...)")
    partner_site: Literal["donor", "com"] = "donor"
    shell_cutoff_nm: float = Field(0.30, gt=0.0, description="first-shell cation-donor cutoff for auto-selection")
    donors: tuple[str, ...] | None = Field(None, description="donor elements; None: from the species registry (O, N, F, Cl)")
    cation_atoms: tuple[int, ...] | None = None
    partner_atoms: tuple[int, ...] | None = None
    hold: Hold | None = Field(None, description="hold the cation at a height above a sheet (contact-layer desolvation)")

    _atoms = field_validator("cation_atoms", "partner_atoms")(_check_atoms)

    @model_validator(mode="after")
    def _need_partner(self):
        if self.partner is None and self.partner_atoms is None:
            raise ValueError("distance CV needs `partner` (a residue name such as DME or FSI) or `partner_atoms`")
        return self


class HeightCV(_Strict):
    """Cation height above a surface plane (z, the surface normal)."""

    kind: Literal["height"] = "height"
    cation: str | None = None
    surface: tuple[str, ...] | None = Field(None, description="surface residue names; plane = centroid z of their atoms")
    surface_atoms: tuple[int, ...] | None = None
    z0_nm: float | None = Field(None, description="fixed plane height instead of surface atoms")
    shell_cutoff_nm: float = Field(0.30, gt=0.0)
    donors: tuple[str, ...] | None = None
    cation_atoms: tuple[int, ...] | None = None

    _atoms = field_validator("cation_atoms", "surface_atoms")(_check_atoms)

    @model_validator(mode="after")
    def _need_plane(self):
        given = [self.surface is not None, self.surface_atoms is not None, self.z0_nm is not None]
        if sum(given) != 1:
            raise ValueError("height CV needs exactly one of `surface` (residue names), `surface_atoms` or `z0_nm`")
        return self


class SiteDistanceCV(_Strict):
    """Cation - metal site distance (e.g. Li+ to the Fe of an Fe-N4 site)."""

    kind: Literal["site_distance"] = "site_distance"
    cation: str | None = None
    site_element: str | None = Field(None, description="element symbol of the site atom, e.g. Fe, Zn")
    site_atoms: tuple[int, ...] | None = None
    shell_cutoff_nm: float = Field(0.30, gt=0.0)
    donors: tuple[str, ...] | None = None
    cation_atoms: tuple[int, ...] | None = None

    _atoms = field_validator("cation_atoms", "site_atoms")(_check_atoms)

    @model_validator(mode="after")
    def _need_site(self):
        if (self.site_element is None) == (self.site_atoms is None):
            raise ValueError("site_distance CV needs exactly one of `site_element` or `site_atoms`")
        return self


CVSpec = Annotated[Union[DistanceCV, HeightCV, SiteDistanceCV], Field(discriminator="kind")]


class PMFSpec(_Strict):
    """One umbrella-sampling PMF along one collective variable.

    Window centres: ``centers_nm`` if given, else ``n_windows`` evenly over ``range_nm``,
    else the fewest evenly spaced windows with spacing <= ``spacing_nm`` (both ends included).
    Lengths are per window. Energies in kJ/mol, lengths in nm.
    """

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    cv: CVSpec
    range_nm: tuple[float, float]
    spacing_nm: float | None = Field(None, gt=0.0)
    n_windows: int | None = Field(None, ge=2)
    centers_nm: tuple[float, ...] | None = None
    k_kJ_mol_nm2: float | tuple[float, ...] = Field(
        ..., description="force constant (kJ/mol/nm^2): one value, or one per window (stiff near contact walls)")
    equil_ps: float = Field(..., ge=0.0)
    sample_ps: float = Field(..., gt=0.0)
    sample_interval_steps: int = Field(50, ge=1)
    timestep_fs: float = Field(2.0, gt=0.0, le=10.0)
    temperature_K: float = Field(298.15, gt=0.0)
    friction_per_ps: float = Field(1.0, gt=0.0)
    seed: int = Field(2024, ge=0)
    init: Literal["pull", "place"] = "pull"
    pull_nm_per_ns: float = Field(1.0, gt=0.0)
    checkpoint_ps: float = Field(20.0, gt=0.0)
    keep_barostat: bool = False
    platform: str | None = Field(None, description="CUDA, OpenCL, CPU or Reference; None: fastest available")
    # sampling scheme and convergence control
    sampler: Literal["independent", "exchange"] = Field(
        "independent", description="independent: one job per window (spreads over GPUs/nodes); exchange: all windows "
        "as replicas of one Simulation with Hamiltonian replica exchange (openmm.app.ReplicaExchangeSampler)")
    exchange_interval_ps: float = Field(0.5, gt=0.0, description="exchange: MD time (ps) of every replica between "
                                        "exchange attempts; one CV sample per replica per interval")
    min_predicted_acceptance: float = Field(1e-3, gt=0.0, lt=1.0, description="exchange: neighbour states whose "
                                            "flat-PMF exchange acceptance is predicted below this are refused")
    repeats: int = Field(1, ge=1, description="independent copies of the whole PMF (own packing and velocity seeds); "
                         "the reported value is their mean, its error the between-repeat standard error")
    target_error_kJ_mol: float | None = Field(None, gt=0.0, description="sample until the barrier's error is "
                                              "below this (kJ/mol), up to max_sample_ps")
    max_sample_ps: float | None = Field(None, gt=0.0, description="sampling budget per window (ps) for "
                                        "target_error_kJ_mol; default sample_ps (no extension)")
    # estimation
    bin_width_nm: float | None = Field(None, gt=0.0)
    n_bootstrap: int = Field(100, ge=0)
    min_overlap: float = Field(0.03, gt=0.0, lt=1.0)
    min_predicted_overlap: float = Field(0.1, gt=0.0, lt=1.0)
    max_start_offset_sigma: float = Field(3.0, gt=0.0, description="a window start further than this many "
                                          "restraint widths sqrt(kT/k) from its centre is reported")
    max_drift_sigma: float = Field(3.0, gt=0.0, description="a window whose sampled mean is further than this many "
                                   "restraint widths from its centre is reported when it ends")
    add_windows: bool = Field(True, description="on an overlap gap, write the proposed windows to "
                              "added_windows.json so a rerun samples only them")
    max_added_windows: int = Field(40, ge=0, description="stop proposing windows once this many were added: "
                                   "windows that keep sliding need longer sampling, not more windows")
    profile_cutoff_nm: float | None = Field(None, gt=0.0, description="first-shell cutoff of the desolvation "
                                            "profile; None: cv.shell_cutoff_nm")
    barrier_volume_term: Literal["removed", "included"] = "removed"
    bound_side: Literal["low", "high"] = "low"

    @field_validator("k_kJ_mol_nm2")
    @classmethod
    def _k_positive(cls, v):
        ks = [v] if isinstance(v, (int, float)) else list(v)
        if not ks or any(not (math.isfinite(k) and k > 0.0) for k in ks):
            raise ValueError(f"force constants must be > 0 kJ/mol/nm^2, got {v}")
        return v

    @field_validator("range_nm")
    @classmethod
    def _range(cls, v):
        lo, hi = v
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ValueError(f"range_nm must be [lo, hi] with lo < hi, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _windows(self):
        given = [self.spacing_nm is not None, self.n_windows is not None, self.centers_nm is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of spacing_nm, n_windows or centers_nm")
        lo, hi = self.range_nm
        if self.cv.kind in ("distance", "site_distance") and lo <= 0.0:
            raise ValueError(f"range_nm for a {self.cv.kind} CV must start above 0 nm, got {lo}")
        if self.cv.kind in ("height", "site_distance") and lo < MIN_CONTACT_NM:
            raise ValueError(
                f"range_nm starts at {lo} nm: a {self.cv.kind} below {MIN_CONTACT_NM} nm crosses the sheet or lies "
                "below contact (inside the sheet atoms' van der Waals radius); start the range at the contact layer")
        if self.spacing_nm is not None and self.spacing_nm > hi - lo:
            raise ValueError(
                f"spacing_nm {self.spacing_nm} is wider than the range {hi - lo:.4g} nm: windows cannot cover it"
            )
        if self.centers_nm is not None:
            c = np.asarray(self.centers_nm, float)
            if len(c) < 2 or np.any(np.diff(c) <= 0):
                raise ValueError(f"centers_nm must be >= 2 strictly increasing values, got {list(c)}")
            tol = 1e-9
            if c[0] > lo + tol or c[-1] < hi - tol:
                raise ValueError(
                    f"windows do not cover range_nm [{lo}, {hi}]: centres span [{c[0]}, {c[-1]}]; "
                    "put the first centre at or below lo and the last at or above hi"
                )
        if not isinstance(self.k_kJ_mol_nm2, (int, float)) and len(self.k_kJ_mol_nm2) != len(self.centers()):
            raise ValueError(f"k_kJ_mol_nm2 as a list needs one value per window ({len(self.centers())} windows), "
                             f"got {len(self.k_kJ_mol_nm2)}")
        if self.max_sample_ps is not None and self.max_sample_ps < self.sample_ps:
            raise ValueError(f"max_sample_ps {self.max_sample_ps} is below sample_ps {self.sample_ps}: the budget "
                             "must allow the first round")
        check_window_widths(self)
        if self.sampler == "exchange":
            self._check_exchange()
        n_steps = self.sample_ps * 1000.0 / self.timestep_fs
        if n_steps < self.sample_interval_steps * 10:
            raise ValueError(
                f"sample_ps {self.sample_ps} gives fewer than 10 samples at sample_interval_steps="
                f"{self.sample_interval_steps} and timestep_fs={self.timestep_fs}"
            )
        return self

    def _check_exchange(self) -> None:
        """Exchange needs >= 2 states, an interval of whole steps within sample_ps, and overlapping neighbours."""
        if len(self.centers()) < 2:
            raise ValueError("sampler: exchange needs at least 2 windows (states) to exchange between")
        if self.exchange_steps < 1 or self.exchange_interval_ps > self.sample_ps / 10.0:
            raise ValueError(f"exchange_interval_ps {self.exchange_interval_ps} must be >= timestep_fs/1000 and give "
                             f">= 10 exchanges within sample_ps {self.sample_ps}")
        acc = predicted_acceptance(self.centers(), self.k_values(), self.kT)
        worst = int(np.argmin(acc))
        if acc[worst] < self.min_predicted_acceptance:
            c = self.centers()
            raise ValueError(
                f"exchange between windows {worst} and {worst + 1} (r0={c[worst]:.4g}, {c[worst + 1]:.4g} nm) would "
                f"almost never be accepted: predicted acceptance {acc[worst]:.2g} < min_predicted_acceptance="
                f"{self.min_predicted_acceptance:g} (flat PMF, harmonic windows). Put windows closer or lower "
                "k_kJ_mol_nm2")

    # -- derived quantities --------------------------------------------------
    @property
    def exchange_steps(self) -> int:
        """MD steps of one replica between exchange attempts."""
        return int(round(self.exchange_interval_ps * 1000.0 / self.timestep_fs))

    @property
    def kT(self) -> float:
        """k_B T in kJ/mol."""
        return KB_KJ_MOL_K * self.temperature_K

    def centers(self) -> np.ndarray:
        """Window centres (nm), increasing."""
        lo, hi = self.range_nm
        if self.centers_nm is not None:
            return np.asarray(self.centers_nm, float)
        if self.n_windows is not None:
            return np.linspace(lo, hi, self.n_windows)
        n = int(math.ceil((hi - lo) / self.spacing_nm - 1e-9)) + 1
        return np.linspace(lo, hi, n)

    def k_values(self) -> np.ndarray:
        """Force constant of each window (kJ/mol/nm^2), same order as :meth:`centers`."""
        return np.broadcast_to(np.asarray(self.k_kJ_mol_nm2, float), self.centers().shape).copy()

    @property
    def n_equil_steps(self) -> int:
        return int(round(self.equil_ps * 1000.0 / self.timestep_fs))

    @property
    def n_samples(self) -> int:
        return int(self.sample_ps * 1000.0 / self.timestep_fs) // self.sample_interval_steps

    @property
    def is_radial(self) -> bool:
        """True for 3-D distance CVs, whose raw PMF carries the -2 kT ln r volume (Jacobian) term."""
        return self.cv.kind in ("distance", "site_distance")


MAX_WIDTH_PER_SPACING = 5.0  # window width sqrt(kT/k) at most this many window spacings


def check_window_widths(spec: "PMFSpec") -> None:
    """Refuse a spec whose force constant is so weak that a window's width sqrt(kT/k) far exceeds
    the spacing to its neighbours (or the CV range): the windows would not localise the CV."""
    centers = np.asarray(spec.centers(), float)
    order = np.argsort(centers)
    centers, k = centers[order], np.asarray(spec.k_values(), float)[order]
    lo, hi = spec.range_nm
    gaps = np.diff(centers)
    spacing = np.maximum(np.r_[gaps, 0.0], np.r_[0.0, gaps]) if len(centers) > 1 else np.array([hi - lo])
    sigma = np.sqrt(spec.kT / k)
    limit = np.minimum(MAX_WIDTH_PER_SPACING * spacing, hi - lo)
    bad = np.flatnonzero(sigma > limit)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"k_kJ_mol_nm2: {k[i]:g} kJ/mol/nm^2 is too weak: window width sqrt(kT/k) = "
                         f"{sigma[i]:.3g} nm against a spacing of {spacing[i]:.3g} nm and a range of {hi - lo:.3g} nm "
                         f"(window at {centers[i]:.4g} nm); use k >= {spec.kT / limit[i] ** 2:.3g} kJ/mol/nm^2")


def predicted_acceptance(centers_nm, k_kJ_mol_nm2, kT: float, n_draws: int = 20000) -> np.ndarray:
    """Flat-PMF Hamiltonian-exchange acceptance of each neighbour pair of harmonic windows.

    A replica in window i samples x_i ~ N(r_i, kT/k_i); swapping i and j is accepted with
    min(1, exp(-Delta)), Delta = [u_i(x_j) + u_j(x_i) - u_i(x_i) - u_j(x_j)] / kT. Equal k gives
    the closed form erfc(d / (2 sigma)) (d the spacing, sigma = sqrt(kT/k)); unequal k are
    averaged over ``n_draws`` fixed-seed draws. 1 for identical windows, ~0 for disjoint ones.
    """
    from scipy.special import erfc

    c, k = np.asarray(centers_nm, float), np.asarray(k_kJ_mol_nm2, float)
    rng = np.random.default_rng(0)
    out = []
    for i in range(len(c) - 1):
        si, sj = math.sqrt(kT / k[i]), math.sqrt(kT / k[i + 1])
        if math.isclose(k[i], k[i + 1], rel_tol=1e-12):
            out.append(float(erfc(abs(c[i + 1] - c[i]) / (2.0 * si))))
            continue
        xi, xj = rng.normal(c[i], si, n_draws), rng.normal(c[i + 1], sj, n_draws)
        u = lambda x, r, kk: 0.5 * kk * (x - r) ** 2 / kT  # noqa: E731
        delta = u(xj, c[i], k[i]) + u(xi, c[i + 1], k[i + 1]) - u(xi, c[i], k[i]) - u(xj, c[i + 1], k[i + 1])
        out.append(float(np.mean(np.exp(-np.maximum(delta, 0.0)))))
    return np.array(out)


def parse_spec(data: dict | PMFSpec, where: str = "") -> PMFSpec:
    """Validate one mapping into a PMFSpec; errors name the field."""
    if isinstance(data, PMFSpec):
        return data
    try:
        return PMFSpec.model_validate(data)
    except ValidationError as err:
        raise PMFSpecError(validation_message(
            err, f"PMF spec {where}".strip(), "PMF spec", hint="allowed fields: solvmd.pmf_spec.PMFSpec; "
            "allowed cv kinds: distance, height, site_distance")) from None


def load_specs(source: str | Path | dict | list) -> list[PMFSpec]:
    """PMF specs from a YAML/JSON file, a recipe dict with a ``pmf:`` block, a mapping or a list."""
    where = ""
    if isinstance(source, (str, Path)):
        path = Path(source)
        where = f"in {path}"
        try:
            source = read_yaml(path, "PMF spec")
        except SolvmdError as err:
            raise PMFSpecError(str(err)) from None
    if isinstance(source, dict) and "pmf" in source and "cv" not in source:
        source = source["pmf"]
    items = source if isinstance(source, list) else [source]
    if not items:
        raise PMFSpecError(f"empty pmf block {where}")
    specs = [parse_spec(it, f"{where} (entry {i})".strip()) for i, it in enumerate(items)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise PMFSpecError(f"pmf entries must have distinct names {where}, got {names}")
    return specs


def load_spec(source: str | Path | dict | PMFSpec, name: str | None = None) -> PMFSpec:
    """One spec: a PMFSpec passes through; a file/recipe with several entries needs ``name``."""
    if isinstance(source, PMFSpec):
        return source
    specs = load_specs(source)
    if name is None:
        if len(specs) > 1:
            raise PMFSpecError(f"{len(specs)} pmf entries ({[s.name for s in specs]}): say which with name=")
        return specs[0]
    for s in specs:
        if s.name == name:
            return s
    raise PMFSpecError(f"no pmf entry named {name!r}; entries: {[s.name for s in specs]}")


def spec_json(spec: PMFSpec) -> str:
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True)
