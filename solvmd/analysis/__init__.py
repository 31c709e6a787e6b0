"""Solvation-structure analysis of electrolyte trajectories (any format MDAnalysis reads).

Public API::

    spec = load_spec("analysis.yaml")            # or spec_from_manifest(build_dir, md_dir)
    tables = run_analysis(spec, "results/x/analysis")   # writes CSV/JSON/PNG, returns DataFrames
    tables = analyze(spec)                         # same tables, nothing written

One pass over the trajectory builds a tidy contact table (frame, cation, partner,
partner molecule, donor atom, distance; see :mod:`solvmd.analysis.contacts`); every
result is a pure function of it: :mod:`structure` (RDF, cutoffs, CN, shell census),
:mod:`speciation` (SSIP/CIP/AGG, clusters), :mod:`residence` (residence times),
:mod:`transport` (diffusion, conductivity). Column names (with units) live in :mod:`columns`.
Interfaces (electrolyte above a sheet): :mod:`interface` (density profiles, CN vs height,
site RDF, contact layer), run after the solvation analysis on the same contact table.
"""

from solvmd.analysis.contacts import AnalysisWarning, ContactTable
from solvmd.analysis.interface import (
    InterfaceSettings,
    analyze_interface,
    interface_settings_from_manifest,
    run_interface_analysis,
)
from solvmd.analysis.spec import AnalysisSpec, load_spec, spec_from_dict, spec_from_manifest
from solvmd.analysis.workflow import AnalysisResults, analyze, run_analysis

__all__ = [
    "AnalysisResults",
    "AnalysisSpec",
    "AnalysisWarning",
    "ContactTable",
    "InterfaceSettings",
    "analyze",
    "analyze_interface",
    "interface_settings_from_manifest",
    "load_spec",
    "run_analysis",
    "run_interface_analysis",
    "spec_from_dict",
    "spec_from_manifest",
]
