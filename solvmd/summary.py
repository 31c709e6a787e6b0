"""Results across systems: load one system's outputs, and one summary row per system.

Reads only the files the other steps write (``results/<system>/{build,md,analysis,pmf}``),
so it works on any finished (or partly finished) results folder::

    from solvmd.summary import load_system, summarize
    res = load_system("results", "li_tfsi_dol_dme")      # manifest, md.json, tables, PMFs
    res.tables["rdf"]                                      # the analysis CSVs as DataFrames
    table = summarize("results")                           # one row per system

Summary columns (units in the names; fractions and coordination numbers are unitless):

- ``system``, ``n_atoms``, ``temperature_K``, ``platform``, ``production_ps``, ``n_frames``;
- ``density_g_cm3`` (mean over NPT production), ``density_std_g_cm3`` (standard
  deviation of the production samples), ``density_estimate_g_cm3`` (build estimate);
- ``cn_molecules_<partner>`` and ``cn_donor_atoms_<partner>`` for every partner in
  ``coordination.csv`` (``total`` = all partners);
- ``{ssip,cip,agg}_fraction_anion_centric`` (all anions together, or the only anion
  species) and ``{ssip,cip,agg}_fraction_cation_centric`` from ``speciation.csv``;
- ``pmf_<cv>_dG_barrier_kJ_mol`` and ``pmf_<cv>_dG_barrier_err_kJ_mol`` (the within-run error
  barrier.json states in ``error_kind``) and ``pmf_<cv>_converged`` (its verdict) for every
  ``pmf/<cv>/barrier.json``.

A value that does not exist (no PMF, analysis not run) is left empty (NaN).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from solvmd.analysis import columns as C
from solvmd.errors import SolvmdError
from solvmd import records
from solvmd.io import atomic_path, read_json

ANALYSIS_TABLES = ("rdf", "coordination", "coordination_distribution", "shells", "speciation", "clusters",
                   "residence", "transport", "msd")
CLASSES = (C.SSIP, C.CIP, C.AGG)


@dataclass
class SystemResults:
    """Everything the workflow wrote for one system (missing parts are empty)."""

    name: str
    path: Path
    manifest: dict = field(default_factory=dict)
    md: dict = field(default_factory=dict)
    thermo: pd.DataFrame | None = None
    analysis: dict = field(default_factory=dict)  # analysis.json
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # analysis CSVs by name
    barriers: dict[str, dict] = field(default_factory=dict)  # cv name -> barrier.json
    pmfs: dict[str, pd.DataFrame] = field(default_factory=dict)  # cv name -> pmf.csv


def _record(path: Path, model, what: str) -> dict:
    """A record's fields (validated where present); {} when the file does not exist."""
    if not path.is_file():
        return {}
    return records.validate_present(read_json(path, what), model, str(path), what)


def _table(path: Path, what: str) -> pd.DataFrame | None:
    return records.read_table(path, what) if path.is_file() else None


def load_system(results_dir: str | Path, system: str) -> SystemResults:
    """Read ``results_dir/<system>/``: manifest, md.json, thermo.csv, analysis tables, PMFs."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", system) or set(system) == {"."}:
        raise SolvmdError(f"system {system!r}: a system name is letters, digits and _.- (a recipe name)")
    base = Path(results_dir) / system
    if not base.is_dir():
        raise SolvmdError(f"no results for system {system!r} in {results_dir} (expected the folder {base})")
    res = SystemResults(name=system, path=base)
    build, md, analysis = (records.step_dir(results_dir, system, s) for s in (records.BUILD, records.MD,
                                                                             records.ANALYSIS))
    res.manifest = _record(build / records.MANIFEST, records.Manifest, "build manifest")
    res.md = _record(md / records.MD_JSON, records.MDRecord, "MD record")
    if (md / records.THERMO_CSV).is_file():
        res.thermo = records.read_thermo(md / records.THERMO_CSV)
    res.analysis = _record(analysis / records.ANALYSIS_JSON, records.AnalysisRecord, "analysis record")
    if (analysis / records.ANALYSIS_JSON).is_file():  # written last: the tables are complete
        for name in ANALYSIS_TABLES:
            table = _table(analysis / f"{name}.csv", f"analysis table {name}.csv")
            if table is not None:
                res.tables[name] = table
    for barrier in sorted((base / records.PMF).glob(f"*/{records.BARRIER_JSON}")):
        cv = barrier.parent.name
        res.barriers[cv] = _record(barrier, records.BarrierRecord, "barrier record")
        table = _table(barrier.parent / records.PMF_CSV, "PMF table")
        if table is not None:
            res.pmfs[cv] = table
    if not res.manifest and not res.md:
        raise SolvmdError(f"{base}: no {records.BUILD}/{records.MANIFEST} and no {records.MD}/{records.MD_JSON}: "
                          f"system {system!r} was never built or run; run the workflow first")
    return res


def list_systems(results_dir: str | Path) -> list[str]:
    """Systems with a finished MD run (``<system>/md/md.json``) in ``results_dir``, sorted."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise SolvmdError(f"results folder {results_dir} does not exist (or is not a folder)")
    return sorted(p.parent.parent.name for p in results_dir.glob(f"*/{records.MD}/{records.MD_JSON}"))


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def _speciation(spec: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    anion = spec[spec[C.DEFINITION] == C.ANION_CENTRIC]
    species = list(dict.fromkeys(anion[C.SPECIES]))
    pick = C.ALL_ANIONS if C.ALL_ANIONS in species else (species[0] if len(species) == 1 else None)
    for definition, name, label in ((C.ANION_CENTRIC, pick, "anion_centric"),
                                    (C.CATION_CENTRIC, C.CATIONS, "cation_centric")):
        rows = spec[(spec[C.DEFINITION] == definition) & (spec[C.SPECIES] == name)].set_index(C.CLASS)
        for cls in CLASSES:
            out[f"{cls.lower()}_fraction_{label}"] = _num(rows[C.FRACTION].get(cls)) if len(rows) else math.nan
    return out


def _columns(res: SystemResults, name: str, need: tuple[str, ...]) -> None:
    table = res.tables.get(name)
    if table is not None and (missing := [c for c in need if c not in table.columns]):
        raise SolvmdError(f"{res.path / records.ANALYSIS / (name + '.csv')}: no column(s) {missing}; "
                          "rerun `solvmd analyze`")


def summary_row(res: SystemResults) -> dict:
    """One summary row (see the module docstring for the columns)."""
    md, man = res.md, res.manifest
    stages = md.get("stages", {})
    prod = stages.get("production", {})
    row: dict = {
        "system": res.name,
        "n_atoms": man.get("n_atoms"),
        "temperature_K": md.get("temperature_K", man.get("temperature_K")),
        "platform": md.get("platform"),
        "production_ps": (prod["steps"] * md["timestep_fs"] / 1000.0) if "steps" in prod and "timestep_fs" in md
        else math.nan,
        "n_frames": md.get("n_frames"),
        "density_g_cm3": _num(md.get("density_production_mean_g_cm3")),
        "density_std_g_cm3": _num(md.get("density_production_std_g_cm3")),
        "density_estimate_g_cm3": _num(md.get("density_estimate_g_cm3", man.get("density_estimate_g_cm3"))),
    }
    coord = res.tables.get("coordination")
    _columns(res, "coordination", (C.PARTNER, C.CN_MOL, C.CN_DON))
    _columns(res, "speciation", (C.DEFINITION, C.SPECIES, C.CLASS, C.FRACTION))
    if coord is not None:
        for _, r in coord.iterrows():
            row[f"cn_molecules_{r[C.PARTNER]}"] = _num(r[C.CN_MOL])
            row[f"cn_donor_atoms_{r[C.PARTNER]}"] = _num(r[C.CN_DON])
    spec = res.tables.get("speciation")
    row.update(_speciation(spec) if spec is not None else {f"{c.lower()}_fraction_{d}": math.nan
                                                            for d in ("anion_centric", "cation_centric")
                                                            for c in CLASSES})
    for cv, b in res.barriers.items():
        row[f"pmf_{cv}_dG_barrier_kJ_mol"] = _num(b.get("dG_barrier_kJ_mol"))
        row[f"pmf_{cv}_dG_barrier_err_kJ_mol"] = _num(b.get("dG_barrier_err_kJ_mol"))
        row[f"pmf_{cv}_converged"] = b.get("converged")  # the verdict (None: estimated before verdicts existed)
    return records.validate_present(row, records.SummaryRow, str(res.path), "summary row")


def summarize(results_dir: str | Path, systems: list[str] | None = None) -> pd.DataFrame:
    """One row per system (default: every system with a finished MD run), columns as documented."""
    systems = list(systems) if systems else list_systems(results_dir)
    if not systems:
        raise SolvmdError(f"{results_dir}: no finished systems (no <system>/md/md.json); run the workflow first")
    rows = [summary_row(load_system(results_dir, s)) for s in systems]
    df = pd.DataFrame(rows)
    fixed = [c for c in rows[0] if not c.startswith(("cn_", "pmf_"))]
    cn = list(dict.fromkeys(c for r in rows for c in r if c.startswith("cn_")))  # partner order of the tables
    pmf = list(dict.fromkeys(c for r in rows for c in r if c.startswith("pmf_")))
    return df[fixed + cn + pmf]


def write_summary(table: pd.DataFrame, csv_path: str | Path, html_path: str | Path | None = None) -> None:
    """``summary.csv`` (and an HTML rendering for the Snakemake report), written atomically."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    if html_path is not None:
        html = table.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="", border=0)
        with atomic_path(html_path) as tmp:
            tmp.write_text(
                "<!DOCTYPE html><html><head><meta charset='utf-8'><title>solvmd summary</title>"
                "<style>table{border-collapse:collapse;font:12px sans-serif}td,th{padding:2px 6px;"
                "border-bottom:1px solid #ccc;text-align:right}</style></head><body>"
                f"<h3>solvmd summary: one row per system</h3>{html}</body></html>\n")
