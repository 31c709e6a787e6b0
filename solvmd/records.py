"""The results layout: every file name, a typed model per record, validating readers,
atomic writers, and the identity (fingerprint) of a run's inputs.

Layout (``results/<system>/``)::

    build/     system.pdb  system.xml  manifest.json
    md/        identity.json  protocol.json  <stage>.chk  traj.xtc|traj.dcd  thermo.csv
               final.xml  final.pdb  md.json  (md.json written last)
    analysis/  identity.json  *.csv  *.png  cutoffs.json  analysis.json  (written last)
    pmf/<cv>/  identity.json  spec.json  cv.json  init/window_<k>.xml  window_<k>.npz
               estimate.json  pmf.csv  barrier.json  *.png
    summary.csv  summary.html  barriers.csv  barriers.png

Readers (``read_manifest``, ``read_md``, ...) parse strictly (:func:`solvmd.io.read_json`)
and validate with the model; a bad record is one :class:`SolvmdError` naming the file,
the field and what to do. Models allow extra fields (writers may record more), but the
fields other steps rely on are typed and checked.

Run identity: :func:`fingerprint` hashes a run's inputs (system.xml, atom count, recipe
name, protocol/spec); :func:`claim_folder` records it in ``identity.json`` when a step
starts and refuses a folder that holds another system's or protocol's run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from solvmd.errors import SolvmdError, validation_message
from solvmd.io import read_json, sha256_file, write_json_atomic

# --------------------------------------------------------------------------- file names

BUILD, MD, ANALYSIS, PMF = "build", "md", "analysis", "pmf"
SYSTEM_PDB, SYSTEM_XML, MANIFEST = "system.pdb", "system.xml", "manifest.json"
IDENTITY = "identity.json"
MD_JSON, PROTOCOL_JSON, FINAL_XML, FINAL_PDB, THERMO_CSV = "md.json", "protocol.json", "final.xml", "final.pdb", "thermo.csv"
THERMO_PNG = "thermo.png"
TRAJ_FORMATS = ("xtc", "dcd")
ANALYSIS_JSON, CUTOFFS_JSON = "analysis.json", "cutoffs.json"
CV_JSON, SPEC_JSON, ESTIMATE_JSON, BARRIER_JSON, PMF_CSV = "cv.json", "spec.json", "estimate.json", "barrier.json", "pmf.csv"
PMF_FIGURES = ("pmf.png", "overlap.png", "histograms.png")
SUMMARY_CSV, SUMMARY_HTML, BARRIERS_CSV, BARRIERS_PNG = "summary.csv", "summary.html", "barriers.csv", "barriers.png"

# analysis tables: always written / written only with a switch on
ANALYSIS_CSV_ALWAYS = ("rdf", "coordination", "coordination_distribution", "coordination_frames", "shells",
                       "speciation", "clusters")
ANALYSIS_CSV_RESIDENCE = ("residence", "residence_acf")
ANALYSIS_CSV_TRANSPORT = ("transport", "msd")
ANALYSIS_PNG_ALWAYS = ("rdf", "coordination", "shells")
INTERFACE_CSV = ("interface", "interface_density", "interface_coordination", "interface_shells",
                 "interface_site_rdf", "interface_coordination_lateral")
INTERFACE_PNG = ("interface_density", "interface_coordination")  # + interface_site_rdf with metal sites
INTERFACE_JSON = "interface.json"


def traj_name(fmt: str) -> str:
    """``traj.xtc`` or ``traj.dcd``."""
    if fmt not in TRAJ_FORMATS:
        raise SolvmdError(f"trajectory format {fmt!r}: allowed are {', '.join(TRAJ_FORMATS)}")
    return f"traj.{fmt}"


def window_npz(k: int, segment: int = 1) -> str:
    """Samples of window k; ``segment`` j >= 2: its j-th extension (``target_error_kJ_mol``)."""
    return f"window_{k}.npz" if int(segment) == 1 else f"window_{k}.s{segment}.npz"


def window_end_xml(k: int, segment: int = 1) -> str:
    """The State at the end of a window (segment), where its next extension starts."""
    return f"window_{k}.end.xml" if int(segment) == 1 else f"window_{k}.s{segment}.end.xml"


def exchange_marker(segment: int = 1) -> str:
    """Written last by an exchange run (segment j >= 2: its j-th extension)."""
    return "exchange.json" if int(segment) == 1 else f"exchange.s{segment}.json"


EXTEND_JSON = "extend.json"  # sampling extensions planned by pmf-estimate (solvmd.pmf.extend)
WINDOW_NPZ_RE = r"^window_(\d+)\.npz$"  # a window's first segment (not window_<k>.s<j>.npz)


def window_init_xml(k: int) -> str:
    return f"init/window_{k}.xml"


def checkpoint_name(stage: str) -> str:
    return f"{stage}.chk"


def step_dir(results: str | Path, system: str, step: str, cv: str | None = None) -> Path:
    """``results/<system>/<step>`` (``pmf/<cv>`` for step ``pmf``)."""
    if step not in (BUILD, MD, ANALYSIS, PMF):
        raise SolvmdError(f"step {step!r}: allowed are build, md, analysis, pmf")
    base = Path(results) / system / step
    return base / cv if step == PMF and cv else base


def analysis_outputs(residence: bool = True, transport: bool = True, speciation_figure: bool = True,
                     interface: bool = False, site_rdf: bool = False) -> list[str]:
    """File names ``solvmd analyze`` writes for these switches (``analysis.json`` last).

    ``speciation_figure``: the system has an anion (else speciation.png is not drawn);
    ``transport`` also needs a frame interval (solvmd md records one in md.json);
    ``interface``: an interface build; ``site_rdf``: its sheet has metal sites (M-N4)."""
    csv = list(ANALYSIS_CSV_ALWAYS) + (list(ANALYSIS_CSV_RESIDENCE) if residence else []) + (
        list(ANALYSIS_CSV_TRANSPORT) if transport else [])
    png = list(ANALYSIS_PNG_ALWAYS) + (["speciation"] if speciation_figure else []) + (
        ["transport"] if transport else [])
    files = [f"{n}.csv" for n in csv] + [f"{n}.png" for n in png] + [CUTOFFS_JSON]
    if interface:
        png_i = list(INTERFACE_PNG) + (["interface_site_rdf"] if site_rdf else [])
        files += [f"{n}.csv" for n in INTERFACE_CSV] + [f"{n}.png" for n in png_i] + [INTERFACE_JSON]
    return files + [ANALYSIS_JSON]


def analysis_switches_for_recipe(recipe_data: dict, options: dict | None = None) -> dict[str, bool]:
    """The :func:`analysis_outputs` switches for a recipe mapping (bulk or interface) and
    the workflow's analysis options (``{"residence": bool, "transport": bool}``)."""
    options = options or {}
    interface = isinstance(recipe_data, dict) and "surface" in recipe_data
    bulk = recipe_data.get("electrolyte") if interface else recipe_data
    salts = bulk.get("salts") if isinstance(bulk, dict) else True  # a named electrolyte has salts
    surface = recipe_data.get("surface") if interface else None
    sites = isinstance(surface, dict) and surface.get("kind") == "MN4"
    return {"residence": bool(options.get("residence", True)), "transport": bool(options.get("transport", True)),
            "speciation_figure": bool(salts), "interface": interface, "site_rdf": sites}


def step_outputs(step: str, **switches: Any) -> list[str]:
    """File names a step declares as outputs (the Snakefile asks here instead of spelling them).

    Steps: ``build``, ``md`` (only md.json: the trajectory and checkpoints must survive a
    failed job to resume), ``analysis`` (see :func:`analysis_outputs`), ``pmf-prepare``,
    ``pmf-estimate``, ``compare``, ``summary``."""
    table = {
        BUILD: [SYSTEM_PDB, SYSTEM_XML, MANIFEST],
        MD: [MD_JSON],
        "pmf-prepare": [CV_JSON],
        "pmf-estimate": [BARRIER_JSON, *PMF_FIGURES, PMF_CSV],
        "compare": [BARRIERS_CSV, BARRIERS_PNG],
        "summary": [SUMMARY_CSV, SUMMARY_HTML],
    }
    if step == ANALYSIS:
        return analysis_outputs(**switches)
    if step not in table:
        raise SolvmdError(f"step {step!r}: allowed are {', '.join([ANALYSIS, *table])}")
    return list(table[step])


# --------------------------------------------------------------------------- models


class Record(BaseModel):
    """Base of every record: extra fields allowed, the typed ones validated."""

    model_config = ConfigDict(extra="allow")


class SpeciesEntry(Record):
    name: str = Field(min_length=1)
    residue: str = Field(min_length=1)
    role: Literal["cation", "anion", "solvent"]
    count: int = Field(ge=0)
    charge: int = 0
    donors: list[str] = Field(default_factory=list)


class Manifest(Record):
    """``build/manifest.json``: what was built (counts, box, state point, versions)."""

    species: list[SpeciesEntry] = Field(min_length=1)
    temperature_K: float = Field(gt=0)
    name: str | None = Field(default=None, min_length=1)  # the following are always written by solvmd build
    n_atoms: int | None = Field(default=None, gt=0)
    box_nm: list[float] | None = Field(default=None, min_length=3, max_length=3)
    pressure_bar: float | None = Field(default=None, gt=0)
    cutoff_nm: float | None = Field(default=None, gt=0)
    charge_scale: float = Field(default=1.0, gt=0, le=1)

    @field_validator("box_nm")
    @classmethod
    def _positive_box(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(x <= 0 for x in v):
            raise ValueError(f"box lengths must be > 0 nm, got {v}")
        return v


class StageRecord(Record):
    start_step: int = Field(ge=0)
    steps: int = Field(ge=0)
    npt: bool


class ProtocolRecord(Record):
    """``md/protocol.json`` (and ``md.json``'s ``protocol``): the MD protocol as run."""

    timestep_fs: float = Field(gt=0)
    production_ps: float = Field(gt=0)
    frame_interval_ps: float = Field(gt=0)
    trajectory_format: Literal["xtc", "dcd"] = "xtc"


class MDRecord(Record):
    """``md/md.json``: written last by ``solvmd md``; its presence means the run is complete."""

    platform: str = Field(min_length=1)
    timestep_fs: float = Field(gt=0)
    stages: dict[str, StageRecord] = Field(min_length=1)
    steps_done: int = Field(ge=0)
    frame_interval_ps: float = Field(gt=0)
    n_frames: int = Field(ge=0)
    trajectory: str
    temperature_K: float = Field(gt=0)
    protocol: ProtocolRecord
    density_production_mean_g_cm3: float | None = Field(default=None, gt=0)

    @field_validator("trajectory")
    @classmethod
    def _traj(cls, v: str) -> str:
        if v not in [traj_name(f) for f in TRAJ_FORMATS]:
            raise ValueError(f"must be one of {[traj_name(f) for f in TRAJ_FORMATS]}")
        return v


class FramesRecord(Record):
    start: int = Field(ge=0)
    stop: int = Field(ge=0)
    step: int = Field(ge=1)


class AnalysisRecord(Record):
    """``analysis/analysis.json``: written last by ``solvmd analyze``."""

    spec: dict
    n_atoms: int = Field(gt=0)
    n_frames_analysed: int = Field(gt=0)
    frames: FramesRecord
    files: list[str]
    warnings: list[str] = Field(default_factory=list)


class CVRecord(Record):
    """``pmf/<cv>/cv.json``: the resolved collective variable (atom groups and weights)."""

    kind: Literal["distance", "site_distance", "height"]
    groups: list[list[int]] = Field(min_length=1)
    weights: list[list[float]] = Field(min_length=1)
    z0_nm: float | None = None
    periodic: bool = True
    description: str = ""
    meta: dict = Field(default_factory=dict)

    @field_validator("groups")
    @classmethod
    def _atoms(cls, v: list[list[int]]) -> list[list[int]]:
        for g in v:
            if not g or min(g) < 0:
                raise ValueError("every group needs at least one atom index >= 0")
        return v


class StatePoint(Record):
    cv_nm: float


class BarrierRecord(Record):
    """``pmf/<cv>/barrier.json``: barrier and free-energy difference with bootstrap errors."""

    dG_barrier_kJ_mol: float | None
    dG_barrier_err_kJ_mol: float | None = None
    bound_state: StatePoint
    transition_state: StatePoint
    temperature_K: float | None = Field(default=None, gt=0)
    converged: bool | None = None  # the convergence verdict (solvmd.pmf.convergence); None: written before it existed
    converged_reason: str | None = None
    error_kind: str | None = None


class SummaryRow(Record):
    """One row of ``summary.csv`` (the fixed columns; ``cn_*`` and ``pmf_*`` are extra)."""

    system: str = Field(min_length=1)
    n_atoms: int | None = None
    temperature_K: float | None = None
    platform: str | None = None
    production_ps: float | None = None
    n_frames: int | None = None
    density_g_cm3: float | None = None
    density_std_g_cm3: float | None = None
    density_estimate_g_cm3: float | None = None


class Fingerprint(Record):
    """What a run was made from; two runs with different fingerprints must not share a folder."""

    recipe: str | None = None
    n_atoms: int | None = None
    system_xml_sha256: str | None = None
    protocol_sha256: str | None = None
    step: str | None = None

    def describe(self) -> str:
        parts = [f"recipe {self.recipe!r}" if self.recipe else None,
                 f"{self.n_atoms} atoms" if self.n_atoms is not None else None,
                 f"system.xml {self.system_xml_sha256[:12]}" if self.system_xml_sha256 else None,
                 f"protocol {self.protocol_sha256[:12]}" if self.protocol_sha256 else None]
        return ", ".join(p for p in parts if p) or "unknown inputs"


# --------------------------------------------------------------------------- readers / writers

M = TypeVar("M", bound=BaseModel)


def validate_record(data: dict, model: type[M], source: str, what: str) -> M:
    """``model`` from ``data``; errors name ``source`` (the file) and each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise SolvmdError(validation_message(err, source, what) + "\n  rerun the step that writes it") from None


def validate_present(data: dict, model: type[BaseModel], source: str, what: str) -> dict:
    """Check the fields ``data`` has against ``model`` (types, bounds) without requiring
    the missing ones; returns ``data`` unchanged. For readers of partial results (summary)."""
    try:
        model.model_validate(data)
    except ValidationError as err:
        errors = [e for e in err.errors() if e["type"] != "missing"]
        if errors:
            bad = type("Errors", (), {"errors": lambda self: errors})()
            raise SolvmdError(validation_message(bad, source, what) + "\n  rerun the step that writes it") from None
    return data


def read_record(path: str | Path, model: type[M], what: str) -> M:
    """Read and validate one record file."""
    return validate_record(read_json(path, what), model, str(path), what)


def write_record(path: str | Path, record: BaseModel | dict) -> Path:
    """Write a record atomically (a model is validated by construction; a dict is written as is)."""
    data = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
    write_json_atomic(path, data)
    return Path(path)


def _need_file(path: Path, what: str, hint: str) -> Path:
    if not path.is_file():
        raise SolvmdError(f"{path.parent}: no {path.name} ({what}); {hint}")
    return path


def read_manifest(build_dir: str | Path) -> Manifest:
    """``build_dir/manifest.json``, validated."""
    path = _need_file(Path(build_dir) / MANIFEST, "build manifest", "run `solvmd build` first")
    return read_record(path, Manifest, "build manifest")


def read_md(md_dir: str | Path) -> MDRecord:
    """``md_dir/md.json``, validated (a missing md.json: the run is not finished)."""
    path = _need_file(Path(md_dir) / MD_JSON, "MD record", "the MD run is not finished: run `solvmd md` first")
    return read_record(path, MDRecord, "MD record")


def read_protocol_record(md_dir: str | Path) -> ProtocolRecord:
    path = _need_file(Path(md_dir) / PROTOCOL_JSON, "MD protocol record", "no MD run was started there")
    return read_record(path, ProtocolRecord, "MD protocol record")


def read_analysis(analysis_dir: str | Path) -> AnalysisRecord:
    path = _need_file(Path(analysis_dir) / ANALYSIS_JSON, "analysis record", "run `solvmd analyze` first")
    return read_record(path, AnalysisRecord, "analysis record")


def read_cv(pmf_dir: str | Path) -> CVRecord:
    path = _need_file(Path(pmf_dir) / CV_JSON, "resolved CV", "run `solvmd pmf-prepare` first")
    return read_record(path, CVRecord, "resolved CV")


def read_barrier(path: str | Path) -> BarrierRecord:
    """A ``barrier.json`` (given by its path)."""
    path = Path(path)
    if not path.is_file():
        raise SolvmdError(f"{path} does not exist (run `solvmd pmf-estimate` for that system first)")
    return read_record(path, BarrierRecord, "barrier record")


# --------------------------------------------------------------------------- build files


def check_build(build_dir: str | Path) -> Manifest:
    """A finished build: valid manifest, system.pdb and a system.xml whose particle count
    matches the manifest. Returns the manifest."""
    build_dir = Path(build_dir)
    if not build_dir.is_dir():
        raise SolvmdError(f"build folder {build_dir} does not exist; run `solvmd build` first")
    man = read_manifest(build_dir)
    for key in ("name", "n_atoms", "box_nm", "cutoff_nm"):
        if getattr(man, key) is None:
            raise SolvmdError(f"{build_dir / MANIFEST}: {key}: missing (not written by `solvmd build`?); rebuild")
    n = count_xml_particles(build_dir / SYSTEM_XML, "serialized OpenMM System")
    if n != man.n_atoms:
        raise SolvmdError(f"{build_dir / SYSTEM_XML}: {n} particles but {MANIFEST} says n_atoms = {man.n_atoms}; "
                          "the files do not belong together: rebuild with `solvmd build`")
    _need_file(build_dir / SYSTEM_PDB, "topology", "rebuild with `solvmd build`")
    n_pdb = count_pdb_atoms(build_dir / SYSTEM_PDB)
    if n_pdb != man.n_atoms:
        raise SolvmdError(f"{build_dir / SYSTEM_PDB}: {n_pdb} ATOM/HETATM records but {MANIFEST} says n_atoms = "
                          f"{man.n_atoms}; the files do not belong together: rebuild with `solvmd build`")
    return man


def load_openmm_xml(path: str | Path, what: str, root_tag: str = "System"):
    """Deserialize an OpenMM ``System`` or ``State`` XML; anything OpenMM cannot read is a
    SolvmdError naming the file (checked for well-formed XML of that kind first)."""
    import openmm

    count_xml_particles(Path(path), what, root_tag)
    try:
        return openmm.XmlSerializer.deserialize(Path(path).read_text())
    except Exception as err:  # noqa: BLE001 - OpenMMException, ValueError ...
        raise SolvmdError(f"{path}: OpenMM cannot read this {what} ({type(err).__name__}: "
                          f"{' '.join(str(err).split())}); rerun the step that writes it") from None


def count_pdb_atoms(path: Path) -> int:
    """ATOM/HETATM records in a PDB file (checked to be text)."""
    from solvmd.io import read_text_checked

    text = read_text_checked(path, "PDB topology", max_bytes=1 << 31)
    return sum(1 for ln in text.splitlines() if ln.startswith(("ATOM  ", "HETATM")))


def count_xml_particles(path: Path, what: str, root_tag: str = "System") -> int:
    """Particles in an OpenMM ``System`` XML or atoms (``Positions``) in a ``State`` XML
    (``root_tag``), checked to be well-formed XML of that kind without deserializing it."""
    import xml.etree.ElementTree as ET

    from solvmd.io import read_text_checked

    text = read_text_checked(path, what, max_bytes=1 << 31)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise SolvmdError(f"{path}: {what} is not well-formed XML ({err}); rerun the step that writes it") from None
    if root.tag != root_tag:
        raise SolvmdError(f"{path}: {what} expected (an OpenMM <{root_tag}>), found an XML <{root.tag}> document")
    if root.tag == "System":
        parts = root.find("Particles")
        n = len(parts) if parts is not None else 0
    elif root.tag == "State":
        pos = root.find("Positions")
        n = len(pos) if pos is not None else 0
    else:
        raise SolvmdError(f"{path}: {what} expected, found an XML <{root.tag}> document")
    if n == 0:
        raise SolvmdError(f"{path}: {what} holds no particles/positions; rerun the step that writes it")
    return n


def check_state(path: str | Path, n_atoms: int, what: str = "OpenMM State") -> None:
    """A State XML with positions for exactly ``n_atoms`` atoms."""
    n = count_xml_particles(Path(path), what, "State")
    if n != n_atoms:
        raise SolvmdError(f"{path}: {what} has {n} atoms but the build has {n_atoms}; it belongs to another system")


# --------------------------------------------------------------------------- identity


def _sha(data: Any) -> str:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(build_dir: str | Path | None = None, protocol: Any = None, step: str | None = None) -> Fingerprint:
    """The identity of a run's inputs: the build's recipe name, atom count and system.xml
    hash, plus a hash of ``protocol`` (an MD protocol, analysis or PMF spec: model or dict)."""
    fp: dict[str, Any] = {"step": step}
    if build_dir is not None:
        man = check_build(build_dir)
        fp.update(recipe=man.name, n_atoms=man.n_atoms, system_xml_sha256=sha256_file(Path(build_dir) / SYSTEM_XML))
    if protocol is not None:
        fp["protocol_sha256"] = _sha(protocol)
    return Fingerprint(**fp)


RUN_FILES = (MD_JSON, PROTOCOL_JSON, FINAL_XML, ANALYSIS_JSON, CV_JSON, BARRIER_JSON, *[traj_name(f) for f in TRAJ_FORMATS])


def _mismatch(recorded: Fingerprint, current: Fingerprint) -> list[str]:
    keys = ("recipe", "n_atoms", "system_xml_sha256", "protocol_sha256")
    return [k for k in keys if getattr(current, k) is not None and getattr(recorded, k) != getattr(current, k)]


def check_identity(folder: str | Path, current: Fingerprint, require: bool = True) -> Fingerprint | None:
    """Refuse ``folder`` if it records (identity.json) a run of other inputs than ``current``
    (fields of ``current`` that are None are not compared), or, with ``require``, holds run
    files with no recorded identity. Returns the recorded fingerprint (None if none).

    Use ``require=True`` for a folder a step writes into, ``require=False`` for an input
    folder it only reads (e.g. the md folder an analysis reads, checked against the build)."""
    folder = Path(folder)
    path = folder / IDENTITY
    if not path.exists() and not require:
        return None
    if not path.exists():
        found = [n for n in RUN_FILES if (folder / n).exists()] + sorted(p.name for p in folder.glob("*.chk"))
        if found:
            raise SolvmdError(f"{folder} holds a run ({', '.join(found[:4])}) with no recorded identity "
                              f"({IDENTITY}), so it may be another system's: use another output folder, "
                              "or delete it to start over")
        return None
    recorded = read_record(path, Fingerprint, "run identity")
    bad = _mismatch(recorded, current)
    if bad:
        what = "protocol" if bad == ["protocol_sha256"] else "system"
        raise SolvmdError(f"{folder} holds a run of another {what}: recorded {recorded.describe()}; "
                          f"this run: {current.describe()} (differs in {', '.join(bad)}). Use another output "
                          "folder, or delete it to start over (rerun with the same inputs to resume)")
    return recorded


def claim_folder(folder: str | Path, current: Fingerprint) -> None:
    """:func:`check_identity`, then record ``current`` in ``folder/identity.json``
    (call when a step starts writing into ``folder``)."""
    recorded = check_identity(folder, current)
    if recorded is None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        write_record(Path(folder) / IDENTITY, current)


# --------------------------------------------------------------------------- tables and arrays

MAX_TABLE_BYTES = 256 << 20  # CSV tables solvmd writes are far below this
THERMO_REQUIRED = ("stage", "time_ps", "T_K", "density_g_cm3")
WINDOW_KEYS = ("cv_nm", "r0_nm", "k_kJ_mol_nm2", "temperature_K", "timestep_fs", "sample_interval_steps")


def read_table(path: str | Path, what: str, required: tuple[str, ...] = (), numeric: tuple[str, ...] = ()):
    """A CSV table as a DataFrame: present, non-empty, with the ``required`` columns, and
    ``numeric`` columns all finite numbers. Errors name the file and the column."""
    import numpy as np
    import pandas as pd

    from solvmd.io import read_text_checked

    path = Path(path)
    read_text_checked(path, what, max_bytes=MAX_TABLE_BYTES)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise SolvmdError(f"{path}: {what} is not a readable CSV table ({' '.join(str(err).split())})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SolvmdError(f"{path}: {what} has no column(s) {missing}; columns are {list(df.columns)[:12]}")
    if df.empty:
        raise SolvmdError(f"{path}: {what} has a header but no rows")
    for col in numeric:
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        if not np.all(np.isfinite(vals)):
            row = int(np.flatnonzero(~np.isfinite(vals))[0])
            v = df[col].iloc[row]
            shown = repr(v) if isinstance(v, str) else str(v)
            raise SolvmdError(f"{path}: {what}: column {col}, row {row + 1}: {shown} is not a finite number")
    return df


def read_thermo(path: str | Path):
    """``md/thermo.csv`` (written by solvmd md), validated."""
    return read_table(path, "MD thermo log", THERMO_REQUIRED, ("time_ps", "T_K", "density_g_cm3"))


def check_window_npz(path: str | Path) -> int:
    """A finished umbrella window ``window_<k>.npz``: readable, with the restraint and CV
    samples (finite). Returns the number of samples."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise SolvmdError(f"{path}: window file missing; run `solvmd pmf-window` for it first")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in WINDOW_KEYS if k not in z.files]
            if missing:
                raise SolvmdError(f"{path}: not a solvmd umbrella window (no {missing}); rerun that window")
            x = np.asarray(z["cv_nm"], dtype=float)
            scalars = {k: np.asarray(z[k]) for k in WINDOW_KEYS[1:]}
    except SolvmdError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, TypeError) as err:
        raise SolvmdError(f"{path}: window file is corrupt or not an .npz ({type(err).__name__}: {err}); "
                          "delete it and rerun that window") from None
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
        raise SolvmdError(f"{path}: cv_nm must hold >= 2 finite samples (got shape {x.shape}); rerun that window")
    for k, v in scalars.items():
        if v.shape != () or not np.isfinite(v.astype(float)) or (k != "r0_nm" and float(v) <= 0):
            raise SolvmdError(f"{path}: {k} must be one finite number{'' if k == 'r0_nm' else ' > 0'} (got {v!r})")
    return int(x.size)
