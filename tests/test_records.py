"""The records module and the safe readers: file names, typed records, run identity,
trajectory integrity, input semantics, and outputs equal to what a step writes."""

import json
import os
import warnings
from pathlib import Path

import pytest
import yaml

from solvmd import records
from solvmd.analysis import run_analysis, spec_from_dict
from synthetic import random_system, write_trajectory
from solvmd.errors import SolvmdError
from solvmd.io import MAX_YAML_BYTES, read_json, read_yaml, write_json_atomic
from solvmd.recipe import parse_recipe

RECIPE = {
    "name": "r",
    "salts": [{"cation": "Li", "anion": "TFSI", "molarity_M": 1.0}],
    "solvents": [{"species": "DOL", "volume_fraction": 0.5}, {"species": "DME", "volume_fraction": 0.5}],
    "size": {"salt_units": 10},
}
PARTNERS = {"FSI": "resname FSI and (element O or element N)", "DME": "resname DME and element O"}


# ------------------------------------------------------------------ safe YAML / JSON


def _write(tmp_path, text, name="f.yaml"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


@pytest.mark.parametrize("text, match", [
    ("a: 1\nb: 2\na: 3\n", r"key 'a' is given twice in one mapping \(lines 1 and 3\)"),
    ("x:\n  y: .nan\n", r"x\.y: nan is not allowed"),
    ("x: [1, .inf]\n", r"x\.1: inf is not allowed"),
    ("x: -.Inf\n", r"x: -inf is not allowed"),
    (b"a: 1\n\x00\x01\x02", "binary"),
    (b"name: caf\xe9\n", "not UTF-8 text"),
    ("", "is empty"),
    ("   \n\n", "empty"),
    ("# only a comment\n", "holds no data"),
    ("a: [1, 2\n", "malformed YAML"),
    ("a: &x [1]\nb: *y\n", "malformed YAML"),
])
def test_read_yaml_refuses(tmp_path, text, match):
    with pytest.raises(SolvmdError, match=match):
        read_yaml(_write(tmp_path, text), "recipe")


def test_read_yaml_alias_bomb_and_recursion(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for k, (prev, cur) in enumerate(zip("abcdefg", "bcdefgh")):
        bomb += f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    assert len(bomb) < 1000  # a tiny file ...
    with pytest.raises(SolvmdError, match="expands to more than 200000 values"):  # ... 10 * 9**7 values
        read_yaml(_write(tmp_path, bomb), "recipe")
    with pytest.raises(SolvmdError, match="expands to more than"):
        read_yaml(_write(tmp_path, "a: &a [*a]\n", "rec.yaml"), "recipe")
    # a merge key is not a duplicate; ordinary aliases stay allowed
    assert read_yaml(_write(tmp_path, "b: &b {x: 1}\nc: {<<: *b, x: 2}\n", "m.yaml"), "spec")["c"] == {"x": 2}


def test_read_yaml_size_folder_mapping(tmp_path):
    with pytest.raises(SolvmdError, match=f"the limit is {MAX_YAML_BYTES} bytes"):
        read_yaml(_write(tmp_path, "a: " + "x" * MAX_YAML_BYTES + "\n"), "recipe")
    with pytest.raises(SolvmdError, match="is a folder"):
        read_yaml(tmp_path, "recipe")
    with pytest.raises(SolvmdError, match="does not exist"):
        read_yaml(tmp_path / "nope.yaml", "recipe")
    with pytest.raises(SolvmdError, match="must be a YAML mapping"):
        read_yaml(_write(tmp_path, "- 1\n- 2\n"), "MD protocol", mapping=True)
    assert read_yaml(_write(tmp_path, "- 1\n- 2\n", "l.yaml"), "PMF spec") == [1, 2]


@pytest.mark.parametrize("text, match", [
    ('{"a": 1, "a": 2}', "given twice"),
    ('{"a": NaN}', "NaN is not allowed"),
    ('{"a": [Infinity]}', "Infinity is not allowed"),
    ('{"a": 1', "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
])
def test_read_json_is_strict(tmp_path, text, match):
    with pytest.raises(SolvmdError, match=match):
        read_json(_write(tmp_path, text, "x.json"), "MD record")


def test_write_json_atomic_writes_standard_json(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": float("nan"), "y": [1.5, float("inf")]})
    assert read_json(tmp_path / "a.json", "record") == {"x": None, "y": [1.5, None]}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


# ------------------------------------------------------------------ recipe semantics


@pytest.mark.parametrize("change, match", [
    ({"salts": [RECIPE["salts"][0], RECIPE["salts"][0]]}, r"salts\.1: salt LiTFSI is listed twice \(also salts\.0\)"),
    ({"solvents": [{"species": "DME", "volume_fraction": 0.5}, {"species": "DME", "volume_fraction": 0.5}]},
     r"solvents\.1: solvent DME listed twice"),
    ({"solvents": [{"species": "DOL", "volume_fraction": 0.35}, {"species": "DME", "volume_fraction": 0.35}]},
     "sum to 0.7, not 1"),
    ({"solvents": [{"species": "DOL", "volume_fraction": 0.65}, {"species": "DME", "volume_fraction": 0.65}]},
     "sum to 1.3, not 1"),
])
def test_recipe_semantics(change, match):
    with pytest.raises(SolvmdError, match=match):
        parse_recipe({**RECIPE, **change})


def test_normalize_true_rescales_fractions():
    from solvmd.assembly.composition import resolve as composition

    r = parse_recipe({**RECIPE, "normalize": True,
                      "solvents": [{"species": "DOL", "volume_fraction": 0.35}, {"species": "DME", "volume_fraction": 0.35}]})
    ref = parse_recipe(RECIPE)
    assert composition(r).counts == composition(ref).counts


def test_weak_pmf_force_constant_is_refused():
    from solvmd.pmf_spec import load_spec

    base = {"name": "p", "cv": {"kind": "distance", "cation": "LI", "partner": "DME"}, "range_nm": [0.2, 0.6],
            "spacing_nm": 0.02, "equil_ps": 1, "sample_ps": 1}
    load_spec({**base, "k_kJ_mol_nm2": 2000})  # sigma 0.035 nm, spacing 0.02: fine
    with pytest.raises(SolvmdError, match=r"k_kJ_mol_nm2: 5 kJ/mol/nm\^2 is too weak: window width sqrt\(kT/k\) = 0\.704"):
        load_spec({**base, "k_kJ_mol_nm2": 5})  # sigma 0.70 nm > 5 x 0.02 and > range: refused by the spec itself


# ------------------------------------------------------------------ records and identity


def _build(tmp_path, n_atoms=3, name="sysA"):
    b = tmp_path / name
    b.mkdir()
    parts = "".join('<Particle mass="1"/>' for _ in range(n_atoms))
    (b / records.SYSTEM_XML).write_text(f'<?xml version="1.0" ?>\n<System version="1"><Particles>{parts}</Particles></System>')
    (b / records.SYSTEM_PDB).write_text("".join(f"HETATM{i + 1:5d} LI    LI A{i + 1:4d}       0.000   0.000   0.000\n"
                                                for i in range(n_atoms)) + "END\n")
    man = {"name": name, "n_atoms": n_atoms, "box_nm": [2, 2, 2], "temperature_K": 298.15, "cutoff_nm": 0.8,
           "species": [{"name": "Li", "residue": "LI", "role": "cation", "count": n_atoms, "charge": 1}]}
    (b / records.MANIFEST).write_text(json.dumps(man))
    return b


def test_manifest_reader_names_file_and_field(tmp_path):
    b = _build(tmp_path)
    assert records.check_build(b).n_atoms == 3
    man = json.loads((b / records.MANIFEST).read_text())
    (b / records.MANIFEST).write_text(json.dumps({**man, "temperature_K": -5}))
    with pytest.raises(SolvmdError, match=r"manifest\.json: invalid build manifest\n  temperature_K: Input should be greater than 0"):
        records.read_manifest(b)
    (b / records.MANIFEST).write_text(json.dumps({**man, "n_atoms": 4}))
    with pytest.raises(SolvmdError, match="3 particles but manifest.json says n_atoms = 4"):
        records.check_build(b)


def test_fingerprint_and_claim_folder(tmp_path):
    a, b = _build(tmp_path, 3, "sysA"), _build(tmp_path, 4, "sysB")
    proto = {"timestep_fs": 2.0, "production_ps": 10.0}
    fa = records.fingerprint(a, proto, step="md")
    assert fa.n_atoms == 3 and fa.recipe == "sysA" and len(fa.system_xml_sha256) == 64
    out = tmp_path / "md"
    records.claim_folder(out, fa)
    records.claim_folder(out, records.fingerprint(a, dict(proto), step="md"))  # same inputs: resume
    with pytest.raises(SolvmdError, match=r"holds a run of another system: recorded recipe 'sysA', 3 atoms.*"
                                          r"this run: recipe 'sysB', 4 atoms.*Use another output folder"):
        records.claim_folder(out, records.fingerprint(b, proto, step="md"))
    with pytest.raises(SolvmdError, match=r"holds a run of another protocol.*differs in protocol_sha256"):
        records.claim_folder(out, records.fingerprint(a, {**proto, "production_ps": 20.0}, step="md"))
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / records.MD_JSON).write_text("{}")
    with pytest.raises(SolvmdError, match=r"holds a run \(md.json\) with no recorded identity"):
        records.claim_folder(legacy, fa)


def test_step_outputs_and_file_names():
    assert records.step_outputs("build") == ["system.pdb", "system.xml", "manifest.json"]
    assert records.step_outputs("md") == ["md.json"]
    off = records.analysis_outputs(residence=False, transport=False, speciation_figure=False)
    assert "residence.csv" not in off and "transport.csv" not in off and "speciation.png" not in off
    assert off[-1] == "analysis.json"
    assert records.analysis_switches_for_recipe({"salts": [], "solvents": []}, {"transport": False}) == {
        "residence": True, "transport": False, "speciation_figure": False, "interface": False, "site_rdf": False}
    assert records.analysis_switches_for_recipe({"surface": {}, "electrolyte": "x"})["interface"] is True
    zn = records.analysis_switches_for_recipe({"surface": {"kind": "MN4", "metal": "Zn"}, "electrolyte": "x"})
    assert zn["site_rdf"] and "interface_site_rdf.png" in records.analysis_outputs(**zn)
    graphene = records.analysis_switches_for_recipe({"surface": {"kind": "graphene"}, "electrolyte": "x"})
    assert "interface_site_rdf.png" not in records.analysis_outputs(**graphene)
    with pytest.raises(SolvmdError, match="step 'nope'"):
        records.step_outputs("nope")


# ------------------------------------------------------------------ analysis: outputs, trajectory integrity


@pytest.fixture(scope="module")
def traj(tmp_path_factory):
    d = tmp_path_factory.mktemp("traj")
    u = random_system(n_cat=4, n_an=4, n_sol=6, n_frames=12, box=13.0, seed=5, dt_ps=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_trajectory(u, d / "sys.pdb", d / "traj.xtc")
        write_trajectory(u, d / "sys.pdb", d / "traj.dcd")
    return d


def _spec(d, traj_name="traj.xtc", **kw):
    return spec_from_dict({"topology": str(d / "sys.pdb"), "trajectory": str(d / traj_name), "cation": "resname LI",
                           "partners": PARTNERS, "anions": ["FSI"], "timestep_ps": 2.0, **kw})


@pytest.mark.parametrize("residence, transport", [(True, True), (True, False), (False, True), (False, False)])
def test_analysis_writes_exactly_the_declared_outputs(traj, tmp_path, residence, transport):
    spec = _spec(traj, residence={"enabled": residence}, transport={"enabled": transport})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_analysis(spec, tmp_path, verbose=False)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(records.analysis_outputs(residence=residence, transport=transport))


def _truncate(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize("fmt", ["xtc", "dcd"])
def test_truncated_trajectory_reports_readable_and_expected_frames(traj, tmp_path, fmt):
    from solvmd.analysis.contacts import open_universe

    d = tmp_path / "run"
    d.mkdir()
    (d / "sys.pdb").write_bytes((traj / "sys.pdb").read_bytes())
    _truncate(traj / f"traj.{fmt}", d / f"traj.{fmt}", 0.95)
    (d / records.MD_JSON).write_text(json.dumps({"trajectory": f"traj.{fmt}", "n_frames": 12}))
    with pytest.raises(SolvmdError, match=rf"traj\.{fmt}.*(11|12)? ?.*readable frames.* 12"):
        open_universe(_spec(d, f"traj.{fmt}"))
    try:
        open_universe(_spec(d, f"traj.{fmt}"))
    except SolvmdError as err:
        assert "11 readable frames" in str(err) and "12" in str(err) and "md.json" in str(err)


def test_dcd_header_gives_the_expected_frames_without_md_json(traj, tmp_path):
    from solvmd.analysis.contacts import open_universe

    (tmp_path / "sys.pdb").write_bytes((traj / "sys.pdb").read_bytes())
    _truncate(traj / "traj.dcd", tmp_path / "traj.dcd", 0.6)
    with pytest.raises(SolvmdError, match=r"holds (\d+) readable frames but its DCD header says 12") as err:
        open_universe(_spec(tmp_path, "traj.dcd"))
    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        n_read = sum(1 for _ in mda.Universe(str(tmp_path / "sys.pdb"), str(tmp_path / "traj.dcd")).trajectory)
    assert 5 <= n_read <= 7 and f"holds {n_read} readable frames" in str(err.value)


def test_frame_range_beyond_the_trajectory_gives_the_real_count(traj, tmp_path):
    from solvmd.analysis import analyze

    with pytest.raises(SolvmdError, match=r"frames\.stop: 50 is beyond the trajectory \(12 frames, 0\.\.11\)"):
        analyze(_spec(traj, frames={"stop": 50}), verbose=False)


def test_unknown_mdanalysis_keyword_is_refused(traj):
    with pytest.raises(SolvmdError, match=r"universe_kwargs: guess_bond: not a keyword MDAnalysis.Universe takes"):
        _spec(traj, universe_kwargs={"guess_bond": True})
    assert _spec(traj, universe_kwargs={"guess_bonds": False}).universe_kwargs == {"guess_bonds": False}


# ------------------------------------------------------------------ CLI safety net


def test_internal_errors_are_one_line_unless_debugging(monkeypatch, capsys):
    from solvmd import cli

    def bug(args):
        raise ZeroDivisionError("division by zero in a solvmd bug")

    real = cli.build_parser

    def parser():
        p = real()
        p._subparsers._group_actions[0].choices["species"].set_defaults(func=bug)
        return p

    monkeypatch.setattr(cli, "build_parser", parser)
    monkeypatch.delenv("SOLVMD_DEBUG", raising=False)
    assert cli.main(["species"]) == 3
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: division by zero in a solvmd bug" in err
    assert "Traceback" not in err and "SOLVMD_DEBUG=1" in err
    monkeypatch.setenv("SOLVMD_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["species"])


def test_yaml_and_snakefile_agree_on_file_names():
    text = (Path(__file__).resolve().parent.parent / "Snakefile").read_text()
    for literal in ("/md.json", "/manifest.json", "/barrier.json", "/cv.json", "/analysis.json", "residence.csv\""):
        assert literal not in text, literal  # spelled through solvmd.records
    assert os.path.basename(records.SUMMARY_CSV) == "summary.csv" and yaml is not None


@pytest.mark.parametrize("options", [{}, {"residence": False}, {"transport": False},
                                     {"residence": False, "transport": False}])
def test_snakefile_declares_the_library_outputs(tmp_path, options):
    """Dry run of the real Snakefile: the analyze rule's outputs are records.analysis_outputs
    for the configured switches (a bulk recipe with a salt, and one without: no speciation.png)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "salty.yaml").write_text(yaml.safe_dump({**RECIPE, "name": "salty"}))
    (tmp_path / "recipes" / "neat.yaml").write_text(yaml.safe_dump(
        {"name": "neat", "solvents": [{"species": "DME", "volume_fraction": 1.0}], "size": {"target_atoms": 500}}))
    cfg = {"systems": ["salty", "neat"], "recipes_dir": str(tmp_path / "recipes"), "md": {"production_ps": 1.0},
           "analysis": options}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(root), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-s", str(root / "Snakefile"), "-d",
                           str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "-n", "--cores", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    declared: dict[str, list[str]] = {}
    blocks = proc.stdout.split("rule ")
    for block in blocks:
        if block.startswith("analyze") and "output:" in block:
            outs = block.split("output:")[1].splitlines()[0].split(",")
            system = outs[0].strip().split("/")[1]
            declared[system] = sorted(Path(o.strip()).name for o in outs)
    switches = {"residence": options.get("residence", True), "transport": options.get("transport", True)}
    assert declared["salty"] == sorted(records.analysis_outputs(**switches))
    assert declared["neat"] == sorted(records.analysis_outputs(**switches, speciation_figure=False))
