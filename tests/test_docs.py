"""The front door (issue 26): a README that leads, docs that live in the repository and point
only at what is in it, and a field reference that cannot drift from the models.

* the README is at most 250 lines, its first two commands are the demo and the tests, and
  ``.ci/run`` runs the same test command;
* nothing in the repository points at a file outside it (the names are assembled below so this
  file does not match itself);
* every Markdown link of the README and ``docs/`` reaches a file of the repository, and its
  ``#anchor`` a heading there; every ``docs/<file>.md §N`` / ``section N`` reference anywhere
  reaches a numbered section; every backticked repository path in the docs exists;
* ``docs/reference.md`` is what ``python -m solvmd.reference`` writes from the models now, and
  every field in it has a meaning;
* LICENSE is MIT (as pyproject says) and CITATION.cff carries the package version.

Each checker is also run on a planted dangling reference (negative controls).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".csv", ".rst", ".txt", ".toml", ".cff", ".ipynb", ".json", ".sh",
                 ".cfg", ""}
TOP = ("solvmd/", "docs/", "tests/", "benchmarks/", "systems/", "config/", "forcefields/", "profiles/", "envs/",
       "notebooks/", "report/", ".ci/")
OUTSIDE = ["SCIENCE" + ".md", "DESIGN" + ".md", "../" + "shared", "/work/" + "shared"]


def tracked_files() -> list[Path]:
    """Files of the repository (git's list; a plain walk where git is missing)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
        files = [ROOT / f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        files = [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts]
    untracked_docs = [p for p in [README, *DOCS] if p not in files]
    return [p for p in files + untracked_docs if p.is_file()]


def text_files() -> list[Path]:
    """Text files of the repository, this file left out (its negative controls plant bad references)."""
    out = []
    for p in tracked_files():
        if p.resolve() == Path(__file__).resolve():
            continue
        if p.suffix.lower() in TEXT_SUFFIXES and p.stat().st_size < 5_000_000:
            try:
                p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            out.append(p)
    return out


# --------------------------------------------------------------------------- headings and references


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def headings(md: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
    return [m.group(2) for m in re.finditer(r"^(#{1,6})\s+(.*?)\s*$", text, flags=re.M)]


def numbered_sections(md: Path) -> set[str]:
    """Section numbers of ``## N. Title`` headings."""
    return {m.group(1) for h in headings(md) if (m := re.match(r"(\d+)\.", h))}


def dangling_links(md: Path) -> list[str]:
    """Markdown links of ``md`` whose file is missing or whose #anchor is not a heading there."""
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, frag = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            bad.append(f"{md.relative_to(ROOT)}: link to {target}: no such file")
        elif frag and dest.suffix == ".md" and frag not in {anchor(h) for h in headings(dest)}:
            bad.append(f"{md.relative_to(ROOT)}: link to {target}: no heading #{frag} in {dest.name}")
    return bad


SECTION_REF = re.compile(r"docs/([\w.-]+\.md)((?:,? ?(?:and )?(?:§ ?|section )\d+(?:[-–]\d+)?)+)")


def dangling_sections(path: Path, text: str) -> list[str]:
    """``docs/<file>.md §N`` (also ``§N-M``, ``§N, §M``, ``section N``) references to a missing
    file or section."""
    bad = []
    for m in SECTION_REF.finditer(text):
        doc = ROOT / "docs" / m.group(1)
        if not doc.is_file():
            bad.append(f"{path}: {m.group(0)}: no file docs/{m.group(1)}")
            continue
        have = numbered_sections(doc)
        for a, b in re.findall(r"(\d+)(?:[-–](\d+))?", m.group(2)):
            for n in range(int(a), int(b or a) + 1):
                if str(n) not in have:
                    bad.append(f"{path}: {m.group(0)}: docs/{m.group(1)} has no section {n}")
    return bad


DOC_FILE_REF = re.compile(r"\bdocs/([\w.-]+\.md)\b")
PATH_IN_TICKS = re.compile(r"`((?:" + "|".join(re.escape(t) for t in TOP) + r")[\w./+-]*)`")


def dangling_paths(md: Path) -> list[str]:
    """Backticked repository paths in a Markdown file that do not exist (placeholders such as
    ``<name>``, globs and brace lists are not paths)."""
    bad = []
    for ref in PATH_IN_TICKS.findall(md.read_text()):
        if any(c in ref for c in "<>*{}"):
            continue
        if not (ROOT / ref.rstrip("/")).exists():
            bad.append(f"{md.relative_to(ROOT)}: `{ref}` does not exist")
    return bad


# --------------------------------------------------------------------------- the README


def _commands(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_leads_within_one_screen():
    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines (at most 250; the rest belongs in docs/)"
    demo, tests = _commands(text)[:2]
    assert demo.endswith("snakemake --cores 2 --configfile config/demo.yaml") and "pip install" in demo
    assert tests.endswith(".venv/bin/python -m pytest -q") and "pip install" in tests
    screen = "\n".join(lines[:60])
    assert demo in screen and tests in screen, "the two commands come first"
    for doc in ("docs/pmf.md", "docs/science.md", "docs/reference.md", "docs/validation.md", "docs/benchmarks.md",
                "docs/architecture.md", "docs/sac.md"):
        assert doc in screen, f"{doc} is not linked within the first screen"


def test_ci_runs_the_readme_test_command():
    tests = _commands(README.read_text())[1]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci.strip() == tests, ".ci/run must run the README's test command verbatim"


def test_readme_python_example_imports_what_exists():
    import importlib

    code = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert code, "the README has a Python example"
    compile(code[0], "README.md", "exec")
    for module, names in re.findall(r"^from ([\w.]+) import (.+)$", code[0], flags=re.M):
        mod = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert hasattr(mod, name), f"README: {module} has no {name}"


# --------------------------------------------------------------------------- references


def test_nothing_points_outside_the_repository():
    bad = [f"{p.relative_to(ROOT)}:{i}: {name}" for p in text_files()
           for i, line in enumerate(p.read_text().splitlines(), 1) for name in OUTSIDE if name in line]
    assert not bad, "references to files that are not in the repository:\n" + "\n".join(bad[:40])


def test_markdown_links_reach_files_and_headings():
    bad = [b for md in [README, *DOCS] for b in dangling_links(md)]
    assert not bad, "\n".join(bad)


def test_section_references_reach_numbered_sections():
    bad = [b for p in text_files() for b in dangling_sections(p.relative_to(ROOT), p.read_text())]
    assert not bad, "\n".join(bad[:40])


def test_docs_files_named_anywhere_exist():
    bad = [f"{p.relative_to(ROOT)}: docs/{name}" for p in text_files() if p.suffix != ".ipynb"
           for name in set(DOC_FILE_REF.findall(p.read_text())) if not (ROOT / "docs" / name).is_file()]
    assert not bad, "references to docs that do not exist:\n" + "\n".join(bad)


def test_repository_paths_in_the_docs_exist():
    bad = [b for md in [README, *DOCS] for b in dangling_paths(md)]
    assert not bad, "\n".join(bad)


def test_the_checkers_catch_dangling_references(tmp_path, monkeypatch):
    """Negative controls: a planted dangling link, anchor, section and path are each reported."""
    md = ROOT / "docs" / "science.md"
    assert {"1", "5", "9"} <= numbered_sections(md)
    assert dangling_sections(Path("x.py"), "see docs/science.md §5 and docs/science.md §1-2") == []
    assert dangling_sections(Path("x.py"), "docs/science.md §42")
    assert dangling_sections(Path("x.py"), "docs/science.md §3, §77")
    assert dangling_sections(Path("x.py"), "docs/nowhere.md section 1")
    fake = tmp_path / "fake.md"
    fake.write_text("# T\n\n[a](science.md#no-such-heading) [b](missing.md) [c](#t) `docs/missing.md` `solvmd/cli.py`\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "science.md").write_text("# S\n## 1. One\n")
    links = dangling_links(fake)
    assert any("no-such-heading" in b for b in links) and any("missing.md" in b for b in links)
    assert not any("#t" in b for b in links)
    assert any("docs/missing.md" in b for b in dangling_paths(fake))


# --------------------------------------------------------------------------- reference, licence, citation


def test_field_reference_matches_the_models():
    from solvmd.reference import REFERENCE_MD, render

    assert REFERENCE_MD.read_text() == render(), (
        "docs/reference.md differs from the pydantic models: run `python -m solvmd.reference --write`")


def test_every_field_in_the_reference_has_a_meaning():
    from solvmd.reference import render

    rows = [ln for ln in render().splitlines() if ln.startswith("| `")]
    assert len(rows) > 150
    empty = [r.split("|")[1].strip() for r in rows if not r.rstrip(" |").split("|")[-1].strip()]
    assert not empty, f"fields without a meaning (add Field(description=...)): {empty}"


@pytest.mark.parametrize("model_path, field", [
    ("solvmd.forcefield_settings.ForceFieldSettings", "hydrogen_mass_amu"),
    ("solvmd.md.protocol.MDProtocol", "production_ps"),
    ("solvmd.pmf_spec.PMFSpec", "k_kJ_mol_nm2"),
    ("solvmd.analysis.spec.RDFSettings", "bin_A"),
])
def test_reference_rows_carry_unit_default_and_range(model_path, field):
    import importlib

    from solvmd.reference import render

    module, name = model_path.rsplit(".", 1)
    model = getattr(importlib.import_module(module), name)
    row = next(ln for ln in render().splitlines() if ln.startswith(f"| `{field}` |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    f = model.model_fields[field]
    assert cells[2], f"{field}: no unit"
    assert cells[3] == ("**required**" if f.is_required() else cells[3]) and cells[3]


def test_licence_and_citation():
    import yaml

    from solvmd import __version__

    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib is Python >= 3.11)
    assert re.search(r'^license = \{text = "MIT"\}', pyproject, flags=re.M)
    version = re.search(r'^version = "([^"]+)"', pyproject, flags=re.M).group(1)
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"].startswith("1.2") and cff["license"] == "MIT"
    assert cff["version"] == __version__ == version
    assert cff["title"].startswith("solvmd") and cff["authors"]
