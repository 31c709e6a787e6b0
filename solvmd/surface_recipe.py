"""The ``surface:`` block of an interface recipe: what sheet to build and with which parameters.

Recipe layer (below build/): the pydantic model :class:`SurfaceSpec`, the parameter file
``forcefields/surfaces.yaml`` (sources in ``forcefields/SOURCES.md``), and the sheet-size
check a recipe runs at load time. The sheet itself is built by :mod:`solvmd.assembly.surfaces`.
Lengths in nm.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from solvmd.errors import SolvmdError
from solvmd.species import FORCEFIELD_DIR

METALS = ("Zn", "Fe", "Co", "Ni", "Mn", "Cu")
KINDS = ("graphene", "N-graphene", "MN4")
TWO_SIXTH = 2.0 ** (1.0 / 6.0)
SHEET_RESIDUE = "GRA"


@lru_cache(maxsize=1)
def surface_parameters() -> dict:
    """``forcefields/surfaces.yaml`` as a dictionary (cached)."""
    path = FORCEFIELD_DIR / "surfaces.yaml"
    if not path.is_file():
        raise SolvmdError(f"surface parameter file {path} is missing; see forcefields/SOURCES.md")
    return yaml.safe_load(path.read_text())


def cc_bond_nm() -> float:
    return float(surface_parameters()["lattice"]["cc_bond_A"]) / 10.0


# --------------------------------------------------------------------------- recipe block


class SurfaceSpec(BaseModel):
    """The ``surface:`` block of an interface recipe.

    ``kind``: ``graphene`` | ``N-graphene`` | ``MN4``. ``size_nm``: requested sheet edges
    (x, y); the sheet has the closest whole number of rectangular cells. M-N4 sites:
    ``sites`` of them, on a grid ``site_spacing_nm`` apart centred on the sheet, or at
    ``site_positions_nm`` (each snapped to the nearest C-C bond parallel to y). N doping
    (any kind): ``graphitic_N`` and ``pyridinic_N`` atom counts (pyridinic N come in N3
    groups), or ``N_fraction`` of all sheet atoms with ``pyridinic_share`` of them
    pyridinic; placed at random (``seed``) with non-overlapping footprints.
    ``charges`` overrides the default charges (keys: metal, N_site, N_graphitic,
    N_pyridinic). ``carbon_lj``: ``opls`` (OPLS-AA CA) or ``cheng-steele``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["graphene", "N-graphene", "MN4"] = Field(description="pristine, N-doped, or M-N4 sites")
    metal: str | None = Field(default=None, description="site metal for MN4: Zn, Fe, Co, Ni, Mn or Cu")
    size_nm: tuple[float, float] = Field(description="requested sheet edges x, y (closest whole cells)")
    sites: int = Field(default=1, ge=1, description="number of M-N4 sites")
    site_spacing_nm: float | None = Field(default=None, gt=0, description="grid spacing of several sites")
    site_positions_nm: list[tuple[float, float]] | None = Field(default=None, description="or explicit (x, y) of each")
    graphitic_N: int | None = Field(default=None, ge=0, description="graphitic N atoms")
    pyridinic_N: int | None = Field(default=None, ge=0, description="pyridinic N atoms (in N3 groups)")
    N_fraction: float | None = Field(default=None, gt=0, lt=0.5, description="or N as a fraction of sheet atoms")
    pyridinic_share: float = Field(default=0.5, ge=0, le=1, description="pyridinic share of N_fraction")
    seed: int = Field(default=7, description="random placement of the N atoms")
    charges: dict[str, float] = Field(
        default_factory=dict, description="charge overrides (e): metal, N_site, N_graphitic, N_pyridinic")
    carbon_lj: Literal["opls", "cheng-steele"] = Field(default="opls", description="carbon Lennard-Jones set")

    @field_validator("metal")
    @classmethod
    def _known_metal(cls, v: str | None) -> str | None:
        if v is not None and v not in METALS:
            raise ValueError(f"unknown metal {v!r}; allowed: {', '.join(METALS)}")
        return v

    @field_validator("size_nm")
    @classmethod
    def _positive(cls, v):
        if min(v) <= 0:
            raise ValueError(f"sheet edges must be positive, got {list(v)}")
        return v

    @field_validator("pyridinic_N")
    @classmethod
    def _n3_groups(cls, v: int | None) -> int | None:
        if v is not None and v % 3:
            raise ValueError(f"pyridinic N come in N3 groups at a monovacancy, so the count must be a multiple of 3 "
                             f"(got {v})")
        return v

    @field_validator("charges")
    @classmethod
    def _charge_keys(cls, v: dict[str, float]) -> dict[str, float]:
        allowed = ("metal", "N_site", "N_graphitic", "N_pyridinic")
        bad = [k for k in v if k not in allowed]
        if bad:
            raise ValueError(f"unknown charge key(s) {bad}; allowed: {', '.join(allowed)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "SurfaceSpec":
        if self.kind == "MN4" and self.metal is None:
            raise ValueError(f"kind MN4 needs a metal (one of {', '.join(METALS)})")
        if self.kind != "MN4":
            if self.metal is not None:
                raise ValueError(f"metal is only for kind MN4, not {self.kind}")
            if self.site_positions_nm is not None or self.site_spacing_nm is not None or self.sites != 1:
                raise ValueError(f"sites / site_spacing_nm / site_positions_nm are only for kind MN4, not {self.kind}")
        if self.N_fraction is not None and (self.graphitic_N is not None or self.pyridinic_N is not None):
            raise ValueError("give N_fraction, or graphitic_N / pyridinic_N counts, not both")
        doped = bool(self.N_fraction) or bool(self.graphitic_N) or bool(self.pyridinic_N)
        if self.kind == "N-graphene" and not doped:
            raise ValueError("kind N-graphene needs N doping: graphitic_N / pyridinic_N counts or N_fraction")
        if self.kind == "graphene" and doped:
            raise ValueError("kind graphene is pristine; use kind N-graphene for N doping")
        if self.site_positions_nm is not None:
            if self.site_spacing_nm is not None:
                raise ValueError("give site_positions_nm or site_spacing_nm, not both")
            if len(self.site_positions_nm) != self.sites:
                if "sites" in self.model_fields_set:
                    raise ValueError(
                        f"sites = {self.sites} but site_positions_nm lists {len(self.site_positions_nm)} positions"
                    )
        if self.sites > 1 and self.site_positions_nm is None and self.site_spacing_nm is None:
            raise ValueError(f"sites = {self.sites}: give site_spacing_nm (grid) or site_positions_nm")
        return self

    @property
    def n_sites(self) -> int:
        if self.kind != "MN4":
            return 0
        return len(self.site_positions_nm) if self.site_positions_nm is not None else self.sites

    @property
    def label(self) -> str:
        return f"{self.metal}-N4" if self.kind == "MN4" else self.kind


def lattice_cells(size_nm: tuple[float, float]) -> tuple[int, int]:
    """Whole numbers of rectangular cells closest to the requested edges."""
    d = cc_bond_nm()
    a, b = math.sqrt(3.0) * d, 3.0 * d
    return max(1, int(round(size_nm[0] / a))), max(1, int(round(size_nm[1] / b)))


MN4_TOOL = "python forcefields/tools/mn4_site_charges.py"


def missing_site_charges(spec: SurfaceSpec) -> str | None:
    """Why ``spec``'s M-N4 sheet has no sourced site charges (None when it has them).

    Sourced: ``charges.MN4.<M>`` of surfaces.yaml holds numbers (the DFT/ESP fit of
    forcefields/tools/mn4_site_charges.py), or the recipe gives ``surface.charges`` metal and N_site.
    """
    if spec.kind != "MN4" or {"metal", "N_site"} <= set(spec.charges):
        return None
    entry = surface_parameters()["charges"]["MN4"].get(spec.metal) or {}
    if entry.get("metal") is not None and entry.get("N_site") is not None:
        return None
    return (f"surface.metal: {spec.metal}-N4 has no sourced site charges (forcefields/surfaces.yaml "
            f"charges.MN4.{spec.metal} is empty); compute them with `{MN4_TOOL} run {spec.metal}` then "
            f"`{MN4_TOOL} update`, or give surface.charges {{metal, N_site}} from a cited study")


def check_site_charges(spec: SurfaceSpec) -> None:
    """Refuse an M-N4 sheet without sourced site charges (see :func:`missing_site_charges`)."""
    msg = missing_site_charges(spec)
    if msg is not None:
        raise SolvmdError(msg)


def check_sheet_size(spec: SurfaceSpec, cutoff_nm: float) -> tuple[int, int]:
    """Cells for ``spec``; a sheet narrower than twice the cutoff is an error naming size_nm."""
    nx, ny = lattice_cells(spec.size_nm)
    d = cc_bond_nm()
    Lx, Ly = nx * math.sqrt(3.0) * d, ny * 3.0 * d
    if min(Lx, Ly) < 2.0 * cutoff_nm:
        raise SolvmdError(
            f"surface.size_nm: the sheet ({Lx:.3f} x {Ly:.3f} nm, {nx} x {ny} cells) is smaller than twice "
            f"the nonbonded cutoff ({2 * cutoff_nm:.2f} nm) in x or y; enlarge size_nm or lower "
            "forcefield.cutoff_nm of the electrolyte recipe"
        )
    return nx, ny
