"""Typed analysis spec: what to analyse, read from YAML or written from a solvmd manifest.

Example (every field except topology, trajectory, cation and partners is optional)::

    topology: results/x/build/system.pdb
    trajectory: results/x/md/traj.xtc
    cation: "resname LI"
    partners:                       # partner species -> its donor atoms (MDAnalysis selection)
      DME: "resname DME and element O"
      TFSI: "resname TFS and (element O or element N)"
    anions: [TFSI]                  # which partners are anions (SSIP/CIP/AGG, clusters)
    cutoffs_A: {DME: 2.8}           # overrides; other partners get the automatic cutoff
    frames: {start: 0, stop: null, step: 1}
    timestep_ps: null               # time between trajectory frames; default: from the file
    charges: {LI: 1, TFS: -1}       # formal charges (resname, partner name or "cation")
    temperature_K: 298.15

Relative paths are taken relative to the current directory, or, when nothing is
there, relative to the spec file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from solvmd.errors import SolvmdError, check_empty_blocks, validation_message
from solvmd.io import read_yaml

PositiveFloat = Annotated[float, Field(gt=0)]
_NAME = re.compile(r"^[A-Za-z0-9_+\-.]+$")
RESERVED = {"total", "all", "cation", "cations"}


# MDAnalysis 2.x Universe keywords and the reader/parser keywords it passes on (LAMMPS,
# DCD/XTC/TRR, GRO, PDB ...); see MDAnalysis.core.universe.Universe and coordinates.*
UNIVERSE_KWARGS = {
    "all_coordinates", "guess_bonds", "vdwradii", "fudge_factor", "lower_bound", "in_memory", "in_memory_step",
    "continuous", "to_guess", "force_guess", "context", "dt", "time_offset", "convert_units", "atom_style",
    "lammps_coordinate_convention", "unwrap_images", "timeunit", "lengthunit", "additional_columns",
    "refresh_offsets",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class FrameRange(_Model):
    """Frames to analyse, as Python slicing of the trajectory."""

    start: int = Field(0, ge=0)
    stop: int | None = Field(None, ge=1)
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _order(self) -> "FrameRange":
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be larger than start ({self.start})")
        return self


class RDFSettings(_Model):
    """Histogram and automatic-cutoff settings."""

    r_max_A: PositiveFloat | None = Field(
        None, description="RDF range; default min(8 A, half the smallest box width)"
    )
    bin_A: PositiveFloat = 0.05
    smooth_A: float = Field(0.1, ge=0, description="Gaussian smoothing width used to find the cutoff")
    first_peak_max_A: PositiveFloat = Field(
        3.5, description="a first-shell peak must lie below this distance"
    )
    min_peak_g: PositiveFloat = Field(
        1.0, description="a first-shell peak must rise at least this high (smoothed g), i.e. above bulk density"
    )


class ResidenceSettings(_Model):
    enabled: bool = True
    max_lag_ps: PositiveFloat | None = Field(None, description="longest lag; default half the analysed time")


class TransportSettings(_Model):
    """MSD fits, the Onsager matrix and its errors (see docs/transport.md)."""

    enabled: bool = True
    window: Literal["auto", "fraction"] = Field(
        "auto", description="auto: the fit starts where the log-log MSD slope stays within 1 +- "
        "diffusive_tolerance and ends at max_lag_frac of a block; fraction: fit_start_frac..fit_stop_frac of a block")
    fit_start_frac: float = Field(0.1, ge=0, lt=1, description="window 'fraction': fit start, fraction of a block")
    fit_stop_frac: float = Field(0.5, gt=0, le=1, description="window 'fraction': fit end, fraction of a block")
    max_lag_frac: float = Field(0.5, gt=0, le=1, description="window 'auto': longest fitted lag, fraction of a block")
    diffusive_tolerance: float = Field(0.1, gt=0, lt=1, description="diffusive regime: |d ln MSD / d ln t - 1| <= this")
    n_blocks: int = Field(5, ge=1, description="independent time blocks for the errors (jackknife); 1: no errors")
    remove_com_drift: bool = True

    @model_validator(mode="after")
    def _window(self) -> "TransportSettings":
        if self.fit_stop_frac <= self.fit_start_frac:
            raise ValueError(
                f"fit_stop_frac ({self.fit_stop_frac}) must be larger than fit_start_frac ({self.fit_start_frac})"
            )
        return self


class AnalysisSpec(_Model):
    """Everything ``run_analysis`` needs; see the module docstring for an example."""

    topology: Path
    trajectory: Path | list[Path]
    topology_format: str | None = None
    trajectory_format: str | None = None
    universe_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="passed to MDAnalysis.Universe (e.g. atom_style, timeunit for LAMMPS)"
    )
    cation: str = Field(min_length=1, description="MDAnalysis selection of the cation atoms")
    partners: dict[str, str] = Field(description="partner species name -> selection of its donor atoms")
    anions: list[str] = Field(default_factory=list)
    cutoffs_A: dict[str, PositiveFloat] = Field(default_factory=dict)
    frames: FrameRange = Field(default_factory=FrameRange)
    timestep_ps: PositiveFloat | None = None
    charges: dict[str, float] = Field(default_factory=dict)
    charge_scale: PositiveFloat = Field(
        1.0, description="scaling applied to ionic charges in the force field (recorded; conductivity uses formal charges)"
    )
    temperature_K: PositiveFloat = 298.15
    rdf: RDFSettings = Field(default_factory=RDFSettings)
    residence: ResidenceSettings = Field(default_factory=ResidenceSettings)
    transport: TransportSettings = Field(default_factory=TransportSettings)

    @field_validator("universe_kwargs")
    @classmethod
    def _known_kwargs(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Only keywords MDAnalysis.Universe or its readers/parsers take (a misspelled one
        would be silently ignored or fail deep inside MDAnalysis)."""
        for key in v:
            if key in ("format", "topology_format"):
                raise ValueError(f"{key}: give it as the spec field {'trajectory_format' if key == 'format' else key}")
            if key not in UNIVERSE_KWARGS:
                raise ValueError(f"{key}: not a keyword MDAnalysis.Universe takes; allowed: {', '.join(sorted(UNIVERSE_KWARGS))}")
        return v

    @field_validator("partners")
    @classmethod
    def _partners(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("at least one partner species is needed, e.g. {DME: 'resname DME and element O'}")
        for name, sel in v.items():
            if not _NAME.match(name) or name.lower() in RESERVED:
                raise ValueError(
                    f"partner name {name!r} must be letters/digits/_+-. and not one of {sorted(RESERVED)}"
                )
            if not isinstance(sel, str) or not sel.strip():
                raise ValueError(f"partner {name}: selection must be a non-empty MDAnalysis selection string")
        return v

    @model_validator(mode="after")
    def _cross(self) -> "AnalysisSpec":
        known = list(self.partners)
        for name in self.cutoffs_A:
            if name not in self.partners:
                raise ValueError(f"cutoffs_A.{name}: not a partner; partners are {known}")
        for name in self.anions:
            if name not in self.partners:
                raise ValueError(f"anions: {name!r} is not a partner; partners are {known}")
        if len(set(self.anions)) != len(self.anions):
            raise ValueError(f"anions: duplicate names in {self.anions}")
        if self.rdf.r_max_A is not None:
            for name, c in self.cutoffs_A.items():
                if c > self.rdf.r_max_A:
                    raise ValueError(f"cutoffs_A.{name}: {c} A is beyond rdf.r_max_A = {self.rdf.r_max_A} A")
        return self

    @property
    def trajectories(self) -> list[Path]:
        return list(self.trajectory) if isinstance(self.trajectory, list) else [self.trajectory]


def _resolve(path: Path, base: Path) -> Path:
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    alt = base / path
    return alt if alt.exists() else path


def spec_from_dict(data: dict[str, Any], source: str = "spec", base: Path | None = None) -> AnalysisSpec:
    """Validate a plain dict; errors name the offending field."""
    if not isinstance(data, dict):
        raise SolvmdError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    check_empty_blocks(data, AnalysisSpec, source, "analysis spec")
    try:
        spec = AnalysisSpec.model_validate(data)
    except ValidationError as err:
        raise SolvmdError(validation_message(err, source, "analysis spec")) from None
    if base is not None:
        spec.topology = _resolve(spec.topology, base)
        if isinstance(spec.trajectory, list):
            spec.trajectory = [_resolve(p, base) for p in spec.trajectory]
        else:
            spec.trajectory = _resolve(spec.trajectory, base)
    return spec


def load_spec(path: str | Path) -> AnalysisSpec:
    """Read and validate an analysis spec (YAML or JSON)."""
    path = Path(path)
    data = read_yaml(path, "analysis spec")
    return spec_from_dict(data, source=str(path), base=path.resolve().parent)


def _donor_selection(residue: str, donors: list[str], has_elements: bool) -> str:
    # Atom naming contract of solvmd: element symbol + running index (O1, O2, Cl1 ...).
    if has_elements:
        inner = " or ".join(f"element {d}" for d in donors)
    else:
        inner = " or ".join(f"name {d}[0-9]*" for d in donors) + " or " + " or ".join(f"name {d}" for d in donors)
    return f"resname {residue} and ({inner})"


def _has_elements(topology: Path) -> bool:
    """Does the topology carry elements for every atom (else donors are selected by name)?"""
    if not topology.is_file():
        return True
    import warnings

    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            u = mda.Universe(str(topology))
        except Exception as err:  # noqa: BLE001 - MDAnalysis raises many types for unreadable files
            raise SolvmdError(f"topology: MDAnalysis cannot read {topology}: {type(err).__name__}: {err}") from None
    return hasattr(u.atoms, "elements") and all(str(e).strip() for e in u.atoms.elements)


def _partners(species: list[dict], has_elements: bool) -> tuple[dict[str, str], list[str], dict[str, float]]:
    """(partner name -> donor selection, anion partners, residue -> formal charge) from manifest species rows."""
    partners: dict[str, str] = {}
    anions: list[str] = []
    charges: dict[str, float] = {}
    for s in species:
        role = s.get("role")
        if s.get("charge") is not None:  # 0 too: a neutral species is the solvent of the solvent-fixed frame
            charges[s["residue"]] = float(s["charge"])
        if role == "cation":
            continue
        donors = list(s.get("donors") or [])
        if not donors:
            continue
        partners[s["name"]] = _donor_selection(s["residue"], donors, has_elements)
        if role == "anion":
            anions.append(s["name"])
    return partners, anions, charges


def spec_from_manifest(build_dir: str | Path, md_dir: str | Path, **overrides: Any) -> AnalysisSpec:
    """The spec for solvmd's own runs: ``build_dir/manifest.json`` + ``md_dir/md.json``.

    Cations are every species with role ``cation``; partners are every solvent and
    anion species present (count > 0) with their registry donor elements; formal
    charges come from the manifest (charge scaling is recorded but not applied).
    Keyword ``overrides`` replace top-level spec fields (e.g. ``cutoffs_A``).
    """
    from solvmd import records
    from solvmd.io import read_json

    build_dir, md_dir = Path(build_dir), Path(md_dir)
    man_path = build_dir / records.MANIFEST
    manifest = records.read_manifest(build_dir).model_dump(mode="json")
    md_info: dict[str, Any] = {}
    md_json = md_dir / records.MD_JSON
    if md_json.is_file():
        md_info = read_json(md_json, "MD record")
        dt = md_info.get("frame_interval_ps")
        if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float)) or dt <= 0):
            raise SolvmdError(f"{md_json}: frame_interval_ps: must be a number > 0 ps (got {dt!r}); rerun `solvmd md`")
    topology = build_dir / records.SYSTEM_PDB
    name = md_info.get("trajectory")
    trajectory = md_dir / (name if name in [records.traj_name(f) for f in records.TRAJ_FORMATS] else "traj.xtc")
    if not trajectory.exists() and (md_dir / records.traj_name("dcd")).exists():
        trajectory = md_dir / records.traj_name("dcd")

    species = [s for s in manifest.get("species", []) if int(s.get("count", 0)) > 0]
    if not species:
        raise SolvmdError(f"{man_path}: field `species` lists no species with count > 0")
    cations = [s["residue"] for s in species if s.get("role") == "cation"]
    if not cations:
        raise SolvmdError(f"{man_path}: no species with role 'cation' in `species`")
    partners, anions, charges = _partners(species, _has_elements(topology))
    data: dict[str, Any] = {
        "topology": str(topology),
        "trajectory": str(trajectory),
        "cation": "resname " + " ".join(cations),
        "partners": partners,
        "anions": anions,
        "charges": charges,
        "charge_scale": manifest.get("charge_scale", 1.0),
        "temperature_K": manifest.get("temperature_K", 298.15),
    }
    if md_info.get("frame_interval_ps"):
        data["timestep_ps"] = md_info["frame_interval_ps"]
    data.update(overrides)
    return spec_from_dict(data, source=str(man_path))
