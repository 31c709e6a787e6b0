"""Imports point down the layers of docs/architecture.md; a test that fails when one points up.

Every ``import solvmd...`` / ``from solvmd... import`` in the package (module level or inside
a function) is read from the source with ``ast`` and checked: a module may import modules of
a LOWER layer, modules of its own package (``solvmd.analysis.*`` among themselves), and, on
the two lowest floors, its neighbours on the same floor. analysis and pmf are peers: neither
imports the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "solvmd"

# layer of each top-level module or subpackage of solvmd (higher = closer to the user)
LAYERS = {
    # ground floor: file names + typed schemas, geometry, exceptions, atomic writes, constants, logging
    "records": 0, "geometry": 0, "errors": 0, "io": 0, "units": 0, "log": 0,
    # what to build and with which parameters
    "recipe": 1, "species": 1, "species_add": 1, "complexes": 1, "forcefield": 1, "forcefield_settings": 1, "mixing": 1, "surface_recipe": 1, "pmf_spec": 1,
    "assembly": 2,
    "md": 3, "gpu_slots": 3,
    "analysis": 4, "pmf": 4,
    "summary": 5, "report": 5, "reference": 5,
    "cli": 6, "__main__": 6, "__init__": 6,
}
SHARED_FLOORS = (0, 1)  # modules on these floors may import each other (io -> errors, recipe -> species)

# Upward imports that are known and owned elsewhere; each names who removes it. Nothing else may be added.
KNOWN: dict[tuple[str, str], str] = {}


def _unit(module: str) -> str:
    """'solvmd.analysis.contacts' -> 'analysis'; 'solvmd.io' -> 'io'; 'solvmd' -> '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported solvmd module, line) for every import statement in ``path``."""
    rel = path.relative_to(PKG.parent).with_suffix("")
    here = ".".join(rel.parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "solvmd"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = here.split(".")[: -node.level] if path.name != "__init__.py" else here.split(".")[: 1 - node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "solvmd":
                continue
            if mod == "solvmd":  # `from solvmd import species` imports the submodule
                out += [(f"solvmd.{a.name}", node.lineno) for a in node.names]
            else:
                out.append((mod, node.lineno))
    return out


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PKG.parent).with_suffix("").parts)


def _allowed(src: str, dst: str) -> bool:
    """May a module of unit ``src`` import one of unit ``dst``?"""
    if src == dst or src in ("cli", "__main__", "__init__"):
        return True
    ls, ld = LAYERS[src], LAYERS[dst]
    return ld < ls or (ld == ls and ls in SHARED_FLOORS)


def _violations() -> list[str]:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        src_mod = _module_name(path)
        src = _unit(src_mod)
        for target, line in _imports(path):
            dst = _unit(target)
            if dst == "__version__" or dst == "__init__":
                continue  # `from solvmd import __version__`
            if _allowed(src, dst) or (".".join(src_mod.split(".")[1:]), dst) in KNOWN:
                continue
            bad.append(f"{path.relative_to(PKG.parent)}:{line}: {src} (layer {LAYERS[src]}) imports {target} "
                       f"(layer {LAYERS[dst]})")
    return bad


def test_every_module_has_a_layer():
    units = {_unit(_module_name(p)) for p in PKG.rglob("*.py")}
    missing = sorted(u for u in units if u not in LAYERS)
    assert not missing, f"add these modules to LAYERS (and to docs/architecture.md): {missing}"


def test_imports_point_down():
    bad = _violations()
    assert not bad, "imports that point up the layers (docs/architecture.md):\n" + "\n".join(bad)


@pytest.mark.parametrize("src, target, expect_ok", [
    ("solvmd/analysis/x.py", "solvmd.geometry", True),
    ("solvmd/geometry.py", "solvmd.analysis.contacts", False),
    ("solvmd/recipe.py", "solvmd.assembly.surfaces", False),
    ("solvmd/analysis/x.py", "solvmd.pmf.cv", False),
    ("solvmd/io.py", "solvmd.errors", True),
    ("solvmd/assembly/x.py", "solvmd.md.engine", False),
])
def test_the_rule_itself(src, target, expect_ok):
    """The checker flags an upward or sideways import and passes a downward one."""
    assert _allowed(_unit(_module_name(PKG.parent / src)), _unit(target)) == expect_ok
