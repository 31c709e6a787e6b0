"""The command line explains itself (issue 26): --version, a user-facing description, and for
every verb a description, what it reads and writes, and one example that names the verb."""

from __future__ import annotations

import re

import pytest

from solvmd import __version__
from solvmd.cli import build_parser, main


def _verbs() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"solvmd {__version__}"


def test_top_level_help_is_written_for_users():
    text = build_parser().format_help()
    assert "thin argument parsing" not in text and "``" not in text
    assert "from a YAML recipe to solvation structure" in text
    for verb in _verbs():
        assert re.search(rf"^\s+{re.escape(verb)}\b", text, re.M), f"{verb} missing from solvmd --help"


@pytest.mark.parametrize("verb", sorted(_verbs()))
def test_every_verb_has_description_inputs_outputs_and_an_example(verb):
    sub = _verbs()[verb]
    assert sub.description and len(sub.description.split()) >= 8, f"{verb}: no description"
    epilog = sub.epilog or ""
    for part in ("reads:\n", "writes:\n", "example:\n"):
        assert part in epilog, f"{verb}: --help lacks {part.strip()}"
    example = epilog.split("example:\n", 1)[1].strip().splitlines()[0].strip()
    assert example.startswith(f"solvmd {verb}"), f"{verb}: example {example!r}"
    for action in sub._actions:
        if action.dest not in ("help",) and action.option_strings:
            assert action.help, f"{verb} {action.option_strings}: no help"


def test_md_protocol_option_says_what_is_used_when_left_out():
    from solvmd.md.protocol import MDProtocol

    help_text = next(a.help for a in _verbs()["md"]._actions if "-p" in a.option_strings)
    d = MDProtocol()
    assert "left out" in help_text
    assert f"{d.timestep_fs:g} fs" in help_text and f"production {d.production_ps:g} ps" in help_text
