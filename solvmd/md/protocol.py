"""Typed MD protocol: stage lengths, timestep, output intervals, platform choice."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from solvmd.errors import SolvmdError, validation_message
from solvmd.io import read_yaml


class MDProtocol(BaseModel):
    """minimize -> NVT heating -> [NVT anneal -> NVT cool-down] -> NPT equilibration -> NPT production.

    Lengths in ps, timestep in fs, intervals in ps (must be whole numbers of steps),
    temperatures in K. The anneal is optional (``anneal_K``): the liquid is held at
    ``anneal_K`` for ``anneal_ps`` at the packed volume, then cooled linearly to the run
    temperature over ``cool_ps``, so ion shells forget packmol's random start.
    A timestep above 2.5 fs needs a build with hydrogen mass repartitioning
    (``forcefield.hydrogen_mass_amu`` >= 2.5 amu) and constraints (checked by the engine).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestep_fs: float = Field(default=4.0, gt=0, le=5.0)
    friction_per_ps: float = Field(default=1.0, gt=0)
    minimize_max_iterations: int = Field(default=2000, ge=0)
    heat_ps: float = Field(default=20.0, ge=0)
    heat_start_K: float = Field(default=50.0, gt=0)
    anneal_K: float | None = Field(default=None, gt=0, le=1000.0)
    anneal_ps: float = Field(default=0.0, ge=0)
    cool_ps: float = Field(default=0.0, ge=0)
    equilibrate_ps: float = Field(default=200.0, ge=0)
    production_ps: float = Field(default=1000.0, gt=0)
    report_interval_ps: float = Field(default=1.0, gt=0)
    frame_interval_ps: float = Field(default=1.0, gt=0)
    checkpoint_interval_ps: float = Field(default=50.0, gt=0)
    barostat_interval_steps: int = Field(default=25, gt=0)
    trajectory_format: Literal["xtc", "dcd"] = "xtc"
    platform: Literal["auto", "CUDA", "OpenCL", "CPU", "Reference"] = "auto"
    precision: Literal["mixed", "single", "double"] = "mixed"
    # Run-time policy, not physics: excluded from the dumped protocol (md.json, protocol.json),
    # so changing it never invalidates a partial or finished run. See solvmd.md.platforms.
    allow_cpu_fallback: bool | None = Field(default=None, exclude=True)
    seed: int = 2024
    max_energy_kJ_mol_per_atom: float = Field(default=1.0e4, gt=0)

    def steps(self, ps: float) -> int:
        """Whole number of MD steps in ``ps`` picoseconds."""
        return int(round(ps * 1000.0 / self.timestep_fs))

    @model_validator(mode="after")
    def _intervals_are_whole_steps(self) -> "MDProtocol":
        if (self.anneal_K is None) != (self.anneal_ps == 0 and self.cool_ps == 0):
            raise ValueError("anneal_K, anneal_ps and cool_ps go together: give anneal_K with anneal_ps > 0 "
                             "(and cool_ps >= 0), or none of them")
        if self.anneal_K is not None and self.anneal_ps == 0:
            raise ValueError("anneal_ps must be > 0 when anneal_K is given")
        for name in ("report_interval_ps", "frame_interval_ps", "checkpoint_interval_ps", "heat_ps",
                     "anneal_ps", "cool_ps", "equilibrate_ps", "production_ps"):
            ps = getattr(self, name)
            exact = ps * 1000.0 / self.timestep_fs
            if abs(exact - round(exact)) > 1e-6:
                raise ValueError(f"{name}={ps} ps is not a whole number of {self.timestep_fs} fs steps")
        for name in ("report_interval_ps", "checkpoint_interval_ps"):
            ratio = getattr(self, name) / self.frame_interval_ps
            if name == "checkpoint_interval_ps" and abs(ratio - round(ratio)) > 1e-6:
                raise ValueError("checkpoint_interval_ps must be a multiple of frame_interval_ps")
        ratio = self.checkpoint_interval_ps / self.report_interval_ps
        if abs(ratio - round(ratio)) > 1e-6:
            raise ValueError("checkpoint_interval_ps must be a multiple of report_interval_ps")
        return self


def load_protocol(path: str | Path | None, overrides: dict | None = None) -> MDProtocol:
    """Protocol from a YAML file (top level, or its ``md:`` block), plus overrides."""
    data: dict = {}
    if path is not None:
        raw = read_yaml(path, "MD protocol") or {}
        data = dict(raw.get("md", raw))
    data.update(overrides or {})
    try:
        return MDProtocol.model_validate(data)
    except ValidationError as err:
        raise SolvmdError(validation_message(err, str(path or "protocol"), "MD protocol", loc_prefix="md.")) from None
