"""Typed MD protocol: stage lengths, timestep, output intervals, platform choice."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from solvmd.errors import SolvmdError, check_empty_blocks, validation_message
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

    timestep_fs: float = Field(default=4.0, gt=0, le=5.0,
                               description="integration step; above 2.5 fs the build needs HMR (hydrogen_mass_amu)")
    friction_per_ps: float = Field(default=1.0, gt=0, description="Langevin friction")
    minimize_max_iterations: int = Field(default=2000, ge=0, description="energy minimization budget (0: to convergence)")
    heat_ps: float = Field(default=20.0, ge=0, description="NVT heating from heat_start_K to the recipe temperature")
    heat_start_K: float = Field(default=50.0, gt=0, description="temperature the heating starts at")
    anneal_K: float | None = Field(default=None, gt=0, le=1000.0,
                                   description="optional NVT anneal temperature, above the recipe temperature")
    anneal_ps: float = Field(default=0.0, ge=0, description="anneal length (with anneal_K)")
    cool_ps: float = Field(default=0.0, ge=0, description="linear cool-down after the anneal")
    equilibrate_ps: float = Field(default=200.0, ge=0, description="NPT equilibration")
    production_ps: float = Field(default=1000.0, gt=0, description="NPT production (the trajectory analysed)")
    report_interval_ps: float = Field(default=1.0, gt=0, description="thermo.csv line and progress interval")
    frame_interval_ps: float = Field(default=1.0, gt=0, description="trajectory frame interval")
    checkpoint_interval_ps: float = Field(default=50.0, gt=0, description="checkpoint interval (resume point)")
    barostat_interval_steps: int = Field(default=25, gt=0, description="Monte Carlo barostat attempt interval")
    trajectory_format: Literal["xtc", "dcd"] = Field(default="xtc", description="trajectory file format")
    platform: Literal["auto", "CUDA", "OpenCL", "CPU", "Reference"] = Field(
        default="auto", description="OpenMM platform; auto: a probed GPU, else the CPU")
    precision: Literal["mixed", "single", "double"] = Field(default="mixed", description="GPU platform precision")
    # Run-time policy, not physics: excluded from the dumped protocol (md.json, protocol.json),
    # so changing it never invalidates a partial or finished run. See solvmd.md.platforms.
    allow_cpu_fallback: bool | None = Field(
        default=None, exclude=True, description="run on the CPU when the GPU platform is unusable (None: only "
        "with platform auto)")
    seed: int = Field(default=2024, description="velocity seed (+ repeat - 1)")
    max_energy_kJ_mol_per_atom: float = Field(
        default=1.0e4, gt=0, description="potential energy per atom beyond which the run stops as blown up")

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


HMR_TIMESTEP_FS = 2.5  # above this timestep a system needs hydrogen mass repartitioning ...
HMR_MIN_HYDROGEN_AMU = 2.5  # ... (lightest particle at least this heavy; Hopkins et al., JCTC 2015, 11, 1864)


def check_timestep_masses(system, timestep_fs: float, field: str) -> None:
    """Refuse ``timestep_fs`` > 2.5 fs for a System with natural-mass hydrogens or no constraints.

    ``field`` names the setting in the message (e.g. ``md.timestep_fs``). Massless (frozen)
    particles are ignored; a System without hydrogen (ions only) passes.
    """
    if timestep_fs <= HMR_TIMESTEP_FS:
        return
    from openmm import unit

    masses = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())]
    lightest = min((m for m in masses if m > 0.0), default=HMR_MIN_HYDROGEN_AMU)
    if system.getNumConstraints() == 0 and lightest < 4.0:
        raise SolvmdError(f"{field} = {timestep_fs} needs constraints on bonds to hydrogen; the system has none "
                          f"(use {field} <= {HMR_TIMESTEP_FS})")
    if lightest < HMR_MIN_HYDROGEN_AMU:
        raise SolvmdError(f"{field} = {timestep_fs} needs hydrogen mass repartitioning: the lightest particle has "
                          f"{lightest:.3f} amu; build with forcefield.hydrogen_mass_amu >= {HMR_MIN_HYDROGEN_AMU} "
                          f"or use {field} <= {HMR_TIMESTEP_FS}")


def load_protocol(path: str | Path | None, overrides: dict | None = None) -> MDProtocol:
    """Protocol from a YAML file (top level, or its ``md:`` block), plus overrides."""
    data: dict = {}
    if path is not None:
        raw = read_yaml(path, "MD protocol") or {}
        if not isinstance(raw, dict):
            raise SolvmdError(f"{path}: an MD protocol must be a YAML mapping (its fields, or an md: block), "
                              f"got {type(raw).__name__}")
        block = raw.get("md", raw)
        if block is None:
            raise SolvmdError(f"{path}: invalid MD protocol\n  md: the block is empty; give its fields, or leave "
                              "the line out (and -p with it) to use the defaults (docs/reference.md, MD protocol)")
        if not isinstance(block, dict):
            raise SolvmdError(f"{path}: invalid MD protocol\n  md: must be a mapping of fields, got "
                              f"{type(block).__name__}")
        check_empty_blocks(block, MDProtocol, str(path), "MD protocol", prefix="md." if "md" in raw else "")
        data = dict(block)
    data.update(overrides or {})
    try:
        return MDProtocol.model_validate(data)
    except ValidationError as err:
        raise SolvmdError(validation_message(err, str(path or "protocol"), "MD protocol", loc_prefix="md.")) from None
