"""The field reference (``docs/reference.md``), generated from the pydantic models.

Every field of a recipe (bulk and interface), an MD protocol, an analysis spec and a ``pmf:``
block, with its type, unit, default, allowed range and meaning; the workflow config's keys
come from ``config/schema.yaml``. ``tests/test_docs.py`` fails when the page and the models
drift apart. Regenerate with::

    python -m solvmd.reference --write     # or: python -m solvmd.reference > docs/reference.md

A field's meaning is its ``Field(description=...)``; for models whose fields have none yet,
:data:`SUPPLEMENT` says it (a description in the model wins). Units come from the field-name
suffix (``_nm``, ``_ps``, ``_kJ_mol_nm2``, ...), the way solvmd names every quantity.
"""

from __future__ import annotations

import argparse
import re
import sys
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_MD = ROOT / "docs" / "reference.md"
SCHEMA_YAML = ROOT / "config" / "schema.yaml"

# unit of a field from its name's suffix; longest suffix first
UNITS = [
    ("_kJ_mol_nm2", "kJ/mol/nm²"), ("_kJ_mol_per_atom", "kJ/mol per atom"), ("_kJ_mol", "kJ/mol"),
    ("_nm_per_ns", "nm/ns"), ("_per_ps", "1/ps"), ("_g_cm3", "g/cm³"), ("g_cm3", "g/cm³"), ("_amu", "amu"),
    ("_nm", "nm"), ("_ps", "ps"), ("_fs", "fs"), ("_K", "K"), ("_bar", "bar"), ("_A", "Å"), ("_M", "mol/L"),
    ("_steps", "MD steps"), ("_sigma", "restraint widths √(kT/k)"), ("_frac", "fraction"),
]

# Meanings of fields whose model has no description yet, keyed "Model.field".
SUPPLEMENT: dict[str, str] = {
    # analysis spec (solvmd/analysis/spec.py)
    "AnalysisSpec.topology": "topology file MDAnalysis reads (PDB, GRO, PSF, data file, ...)",
    "AnalysisSpec.trajectory": "trajectory file, or a list of files read as one",
    "AnalysisSpec.topology_format": "MDAnalysis format name when the extension does not say it",
    "AnalysisSpec.trajectory_format": "MDAnalysis format name when the extension does not say it",
    "AnalysisSpec.anions": "partner names that are anions (for SSIP/CIP/AGG and clusters)",
    "AnalysisSpec.cutoffs_A": "first-shell cutoff per partner; missing ones are found from g(r)",
    "AnalysisSpec.frames": "which frames to analyse",
    "AnalysisSpec.timestep_ps": "time between frames when the trajectory does not carry it",
    "AnalysisSpec.charges": "formal charge per species, for conductivity",
    "AnalysisSpec.temperature_K": "temperature, for conductivity",
    "AnalysisSpec.rdf": "RDF and cutoff settings",
    "AnalysisSpec.residence": "residence times",
    "AnalysisSpec.transport": "diffusion and conductivity",
    "FrameRange.start": "first frame (0-based)",
    "FrameRange.stop": "stop before this frame (None: the end)",
    "FrameRange.step": "use every step-th frame",
    "RDFSettings.bin_A": "histogram bin width",
    "ResidenceSettings.enabled": "compute residence times",
    "TransportSettings.enabled": "compute diffusion, conductivity and the Onsager matrix",
    "TransportSettings.remove_com_drift": "remove the system's centre-of-mass drift before the MSDs",
    # pmf block (solvmd/pmf_spec.py)
    "PMFSpec.name": "PMF name: the folder results/<system>/pmf/<name>/",
    "PMFSpec.cv": "the collective variable; its kind selects one of the cv tables below",
    "PMFSpec.range_nm": "low and high end of the coordinate",
    "PMFSpec.spacing_nm": "window spacing (the fewest evenly spaced windows at most this far apart)",
    "PMFSpec.n_windows": "or the number of evenly spaced windows",
    "PMFSpec.centers_nm": "or explicit window centres",
    "PMFSpec.equil_ps": "equilibration per window before sampling",
    "PMFSpec.sample_ps": "sampled time per window",
    "PMFSpec.sample_interval_steps": "MD steps between CV samples",
    "PMFSpec.timestep_fs": "window MD time step",
    "PMFSpec.temperature_K": "window temperature",
    "PMFSpec.friction_per_ps": "Langevin friction",
    "PMFSpec.seed": "velocity seed of the windows",
    "PMFSpec.init": "window starts: pull (steered MD) or place (move the ion and minimise)",
    "PMFSpec.pull_nm_per_ns": "pulling speed (init: pull)",
    "PMFSpec.checkpoint_ps": "checkpoint interval of a window",
    "PMFSpec.keep_barostat": "keep the MD barostat in the windows (default: NVT at the MD volume)",
    "PMFSpec.bin_width_nm": "bin width of the reported PMF (None: from the restraint widths)",
    "PMFSpec.n_bootstrap": "bootstrap resamples for the errors",
    "PMFSpec.min_overlap": "smallest MBAR overlap across a cut between windows before the estimate stops",
    "PMFSpec.min_predicted_overlap": "smallest neighbour overlap predicted from spacing and force constant",
    "PMFSpec.barrier_volume_term": "distance CVs: whether the 2kT ln r volume term stays in the barrier",
    "PMFSpec.bound_side": "which end of the range is the bound state",
    "Hold.k_kJ_mol_nm2": "force constant of the height restraint",
    "DistanceCV.kind": "distance: cation - partner distance",
    "DistanceCV.partner_site": "donor: the partner's donor atom nearest the cation; com: its centre of mass",
    "DistanceCV.cation_atoms": "explicit cation atom (0-based index) instead of automatic selection",
    "DistanceCV.partner_atoms": "explicit partner atoms (0-based) instead of automatic selection",
    "HeightCV.kind": "height: the cation's height above a surface plane",
    "HeightCV.cation": "cation residue name (LI, MG); None: the first cation residue",
    "HeightCV.surface_atoms": "or explicit plane atoms (0-based)",
    "HeightCV.shell_cutoff_nm": "first-shell cation-donor cutoff (tagged-ion choice, profile)",
    "HeightCV.donors": "donor elements; None: from the species registry",
    "HeightCV.cation_atoms": "explicit cation atom (0-based) instead of automatic selection",
    "SiteDistanceCV.kind": "site_distance: cation - metal site distance",
    "SiteDistanceCV.cation": "cation residue name (LI, MG); None: the first cation residue",
    "SiteDistanceCV.site_atoms": "or explicit site atoms (0-based)",
    "SiteDistanceCV.shell_cutoff_nm": "first-shell cation-donor cutoff (tagged-ion choice, profile)",
    "SiteDistanceCV.donors": "donor elements; None: from the species registry",
    "SiteDistanceCV.cation_atoms": "explicit cation atom (0-based) instead of automatic selection",
}


def unit_of(name: str) -> str:
    for suffix, unit in UNITS:
        if name.endswith(suffix) or name == suffix.lstrip("_"):
            return unit
    return ""


def _fmt_value(v: Any) -> str:
    if isinstance(v, BaseModel):
        return "see below"
    if isinstance(v, str) and not v:
        return '""'
    if isinstance(v, bool) or v is None:
        return {True: "true", False: "false", None: "null"}[v]
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]" if v else "[]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt_value(x)}" for k, x in v.items()) + "}" if v else "{}"
    return str(v)


def _strip(tp):
    """(type without Annotated/Optional wrappers, metadata found on the way, optional?)."""
    meta, optional = [], False
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            args = get_args(tp)
            tp = args[0]
            for m in args[1:]:
                meta += list(getattr(m, "metadata", [])) if isinstance(m, FieldInfo) else [m]
        elif origin in (Union, getattr(__import__("types"), "UnionType", Union)):
            args = [a for a in get_args(tp) if a is not type(None)]
            optional = optional or len(args) < len(get_args(tp))
            if len(args) == 1:
                tp = args[0]
                continue
            return tp, meta, optional
        else:
            return tp, meta, optional


def models_in(tp) -> list[type[BaseModel]]:
    """Pydantic models inside an annotation (list[Salt], Recipe | str, Union of CVs ...)."""
    tp, _, _ = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    out = []
    for a in get_args(tp):
        if isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
        elif get_args(a) or get_origin(a) is typing.Annotated:
            out += models_in(a)
    return out


def type_name(tp, links: dict[type, str]) -> str:
    tp, _, optional = _strip(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        text = " \\| ".join(str(a) for a in args)
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        text = f"[{tp.__name__}](#{links[tp]})" if tp in links else tp.__name__
    elif origin in (list, tuple):
        inner = [a for a in args if a is not Ellipsis]
        if origin is tuple and len(inner) > 1 and Ellipsis not in args:
            text = "(" + ", ".join(type_name(a, links) for a in inner) + ")"
        else:
            text = "list of " + type_name(inner[0], links) if inner else "list"
    elif origin is dict:
        text = f"mapping {type_name(args[0], links)} → {type_name(args[1], links)}"
    elif origin in (Union, getattr(__import__("types"), "UnionType", Union)):
        text = " or ".join(type_name(a, links) for a in args if a is not type(None))
    elif tp is Any:
        text = "any"
    elif isinstance(tp, type):
        text = {"str": "text", "int": "integer", "float": "number", "bool": "true/false",
                "Path": "path", "PosixPath": "path"}.get(tp.__name__, tp.__name__)
    else:
        text = str(tp).replace("typing.", "")
    return text + " or null" if optional else text


def allowed(field: FieldInfo) -> str:
    _, meta, _ = _strip(field.annotation)
    parts = []
    for m in list(field.metadata) + meta:
        for attr, sym in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if isinstance(m, getattr(at, attr.title())):
                parts.append(f"{sym} {_fmt_value(getattr(m, attr))}")
        if isinstance(m, at.MinLen):
            parts.append(f"at least {m.min_length} item(s)")
        if getattr(m, "pattern", None):
            parts.append(f"pattern `{m.pattern}`")
    return ", ".join(dict.fromkeys(parts))


def default_of(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _fmt_value(field.default_factory())
    if field.default is PydanticUndefined:
        return "**required**"
    return _fmt_value(field.default)


def describe(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    text = field.description or SUPPLEMENT.get(f"{model.__name__}.{name}", "")
    return " ".join(text.split()).replace("|", "\\|")


def table(model: type[BaseModel], links: dict[type, str]) -> list[str]:
    rows = ["| field | type | unit | default | allowed | meaning |", "|---|---|---|---|---|---|"]
    for name, f in model.model_fields.items():
        key = f.alias or name
        rows.append(f"| `{key}` | {type_name(f.annotation, links)} | {unit_of(name)} | {default_of(f)} | "
                    f"{allowed(f)} | {describe(model, name, f)} |")
    return rows


def _anchor(title: str) -> str:
    """GitHub's heading anchor."""
    a = re.sub(r"[^\w\- ]", "", title.lower().replace("`", "")).strip()
    return a.replace(" ", "-")


def sections() -> list[tuple[str, str, type[BaseModel]]]:
    """(part, block path or "" for the part's own model, model) for every model documented, in order."""
    from solvmd.analysis.spec import AnalysisSpec
    from solvmd.md.protocol import MDProtocol
    from solvmd.pmf_spec import PMFSpec
    from solvmd.recipe import InterfaceRecipe, Recipe

    out: list[tuple[str, str, type[BaseModel]]] = []
    seen: set[type] = set()

    def walk(part: str, path: str, model: type[BaseModel], title: str) -> None:
        if model in seen:
            return
        seen.add(model)
        out.append((part, title, model))
        for name, f in model.model_fields.items():
            if name == "pmf" and model in (Recipe, InterfaceRecipe):
                continue  # documented once, in its own part
            for sub in models_in(f.annotation):
                if sub is Recipe and model is InterfaceRecipe:
                    continue
                many = get_origin(_strip(f.annotation)[0]) in (list, tuple)
                sub_path = f"{path}.{name}{'[]' if many else ''}".lstrip(".")
                kind = sub.model_fields.get("kind")
                suffix = f" (kind: {kind.default})" if kind is not None and isinstance(kind.default, str) else ""
                walk(part, sub_path, sub, sub_path + suffix)

    walk("Recipe", "", Recipe, "")
    walk("Interface recipe", "", InterfaceRecipe, "")
    walk("MD protocol", "md", MDProtocol, "")
    walk("Analysis spec", "", AnalysisSpec, "")
    walk("PMF block", "", PMFSpec, "")
    return out


INTRO = {
    "Recipe": "A bulk electrolyte, `systems/<name>.yaml` (`solvmd build`). Example: "
              "`systems/li_tfsi_dol_dme.yaml`; how molarity becomes molecule counts: [recipes](recipes.md).",
    "Interface recipe": "An electrolyte above a sheet: a recipe with a `surface:` block (`systems/iface_*.yaml`). "
                        "Temperature, pressure, charge scaling, force field and packing come from the electrolyte.",
    "MD protocol": "The `md:` block of a workflow config, or a file given to `solvmd md -p` (the block or the top "
                   "level). Lengths must be whole numbers of time steps.",
    "Analysis spec": "The file `solvmd analyze SPEC.yaml` reads, for any trajectory MDAnalysis can read; for a "
                     "solvmd run, `--build/--md` writes it from the manifest.",
    "PMF block": "One entry of a recipe's `pmf:` block (a mapping or a list), or a spec file given to the "
                 "`solvmd pmf-*` verbs. How the sampling, errors and verdict work: [pmf](pmf.md).",
}


def config_table() -> list[str]:
    import yaml

    schema = yaml.safe_load(SCHEMA_YAML.read_text())
    rows = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]

    def add(prefix: str, props: dict, required: set) -> None:
        for key, p in props.items():
            t = p.get("type", "one of " + ", ".join(map(str, p["enum"])) if "enum" in p else "")
            t = " or ".join(t) if isinstance(t, list) else t
            rng = ", ".join(f"{sym} {p[k]}" for k, sym in (("exclusiveMinimum", ">"), ("minimum", "≥"),
                                                           ("exclusiveMaximum", "<"), ("maximum", "≤")) if k in p)
            if "pattern" in p.get("items", {}):
                rng = f"items match `{p['items']['pattern']}`"
            default = "**required**" if key in required else _fmt_value(p["default"]) if "default" in p else ""
            desc = " ".join(str(p.get("description", "")).split()).replace("|", "\\|")
            if key == "md":
                desc += " (every field: [MD protocol](#md-protocol))"
                rows.append(f"| `{prefix}{key}` | {t} | {default} | {rng} | {desc} |")
                continue
            rows.append(f"| `{prefix}{key}` | {t} | {default} | {rng} | {desc} |")
            if p.get("type") == "object" and "properties" in p:
                add(f"{prefix}{key}.", p["properties"], set(p.get("required", [])))

    add("", schema["properties"], set(schema.get("required", [])))
    return rows


def render() -> str:
    secs = sections()
    links = {model: _anchor(f"{part}: {title}" if title else part) for part, title, model in secs}
    lines = ["# Field reference", "",
             "Generated from the pydantic models by `python -m solvmd.reference --write`; do not edit by hand "
             "(`tests/test_docs.py` fails when this page and the models differ). Units follow from the field "
             "names (`_nm`, `_ps`, `_K`, ...). A block that is present must be a mapping: an empty one "
             "(`md:` with nothing under it, or `md: null`) is an error naming the block; leave the block out "
             "to get its defaults.", "",
             "Contents: " + ", ".join(f"[{p}](#{_anchor(p)})" for p in dict.fromkeys(s[0] for s in secs))
             + ", [Workflow config](#workflow-config).", ""]
    for part, title, model in secs:
        if not title:
            lines += [f"## {part}", "", INTRO[part], ""]
        else:
            lines += [f"### {part}: {title}", ""]
            doc = re.sub(r":\w+:`", "`", " ".join((model.__doc__ or "").split())).replace("``", "`")
            if doc:
                lines += [doc, ""]
        lines += table(model, links) + [""]
    lines += ["## Workflow config", "",
              "A Snakemake config (`config/*.yaml`), validated against `config/schema.yaml` before any job runs.", ""]
    lines += config_table()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solvmd.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {REFERENCE_MD.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        REFERENCE_MD.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
