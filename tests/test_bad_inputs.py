"""Every CLI verb against missing, empty, corrupt and wrong-kind inputs (a corpus of > 90).

A real tiny system is built and run once (``solvmd build``, ``solvmd md``, ``solvmd
analyze``); each case copies that results tree, damages one input, runs the verb and
asserts: exit status 2, exactly one ``solvmd <verb>: error:`` line on stderr that names
the file or field (a regex per case), no traceback, and no finished-looking output
(manifest.json, md.json, final.xml, analysis.json, cv.json, window files, barrier/pmf/
estimate files, summary and compare tables, figures) left behind or changed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from solvmd import records
from solvmd.cli import main

RECIPE = {
    "name": "tiny",
    "salts": [{"cation": "Li", "anion": "FSI", "molarity_M": 1.0}],
    "solvents": [{"species": "DME", "volume_fraction": 1.0}],
    "size": {"salt_units": 4},
    "forcefield": {"cutoff_nm": 0.8},
    "pmf": {"name": "li_dme", "cv": {"kind": "distance", "cation": "LI", "partner": "DME", "partner_site": "donor"},
            "range_nm": [0.20, 0.23], "spacing_nm": 0.03, "k_kJ_mol_nm2": 10000, "equil_ps": 0.1,
            "sample_ps": 1.5, "sample_interval_steps": 5, "bin_width_nm": 0.01, "friction_per_ps": 5.0,
            "checkpoint_ps": 0.5, "n_bootstrap": 10},
}
MD = {"heat_ps": 0.2, "equilibrate_ps": 0.2, "production_ps": 1.0, "report_interval_ps": 0.2,
      "frame_interval_ps": 0.1, "checkpoint_interval_ps": 0.2, "friction_per_ps": 5.0}
N_FRAMES = 10
BARRIER = {"system": "tiny", "cv": "li_dme", "cv_kind": "distance", "volume_term": "removed",
           "dG_barrier_kJ_mol": 12.5, "dG_barrier_err_kJ_mol": 0.8, "dG_kJ_mol": 3.1, "dG_err_kJ_mol": 0.4,
           "bound_state": {"cv_nm": 0.205}, "transition_state": {"cv_nm": 0.225}, "temperature_K": 298.15}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A finished build, MD run and analysis of a 600-atom system, plus a PMF folder as
    pmf-prepare leaves it and two sampled windows (CV samples drawn from the restraint)."""
    d = tmp_path_factory.mktemp("bad_inputs_base")
    (d / "tiny.yaml").write_text(yaml.safe_dump(RECIPE))
    (d / "p.yaml").write_text(yaml.safe_dump({"md": MD}))
    R = d / "r" / "tiny"
    assert main(["build", str(d / "tiny.yaml"), "-o", str(R / "build")]) == 0
    assert main(["md", str(R / "build"), "-o", str(R / "md"), "-p", str(d / "p.yaml")]) == 0
    assert main(["analyze", "--build", str(R / "build"), "--md", str(R / "md"), "-o", str(R / "analysis")]) == 0
    assert json.loads((R / "md" / "md.json").read_text())["n_frames"] == N_FRAMES
    # the real analysis wrote exactly the files the library declares (and the Snakefile asks for)
    written = sorted(p.name for p in (R / "analysis").iterdir())
    assert written == sorted(records.analysis_outputs() + [records.IDENTITY])
    from solvmd import pmf

    spec = pmf.load_spec(str(d / "tiny.yaml"), name="li_dme")
    P = R / "pmf" / "li_dme"
    records.claim_folder(P, records.fingerprint(R / "build", spec, step=records.PMF))
    (P / records.CV_JSON).write_text(json.dumps({"kind": "distance", "groups": [[0], [12]],
                                                 "weights": [[1.0], [1.0]], "periodic": True}))
    (P / "init").mkdir()
    rng = np.random.default_rng(0)
    sigma = (spec.kT / spec.k_kJ_mol_nm2) ** 0.5
    for k, r0 in enumerate(spec.centers()):
        shutil.copy(R / "md" / records.FINAL_XML, P / records.window_init_xml(k))
        np.savez(P / records.window_npz(k), cv_nm=r0 + sigma * rng.standard_normal(200), r0_nm=r0,
                 k_kJ_mol_nm2=spec.k_kJ_mol_nm2, temperature_K=298.15, timestep_fs=2.0, sample_interval_steps=5)
    (P / records.BARRIER_JSON).write_text(json.dumps(BARRIER))
    return d


# ------------------------------------------------------------------ damage


def argv_only(p: Path) -> None:
    """No file is damaged: the bad input is on the command line."""


def _state(p: Path):
    return p.read_bytes() if p.is_file() else ("folder", sorted(x.name for x in p.iterdir())) if p.is_dir() else None


def gone(p: Path) -> None:
    shutil.rmtree(p) if p.is_dir() else p.unlink()


def empty(p: Path) -> None:
    p.write_bytes(b"")


def binary(p: Path) -> None:
    p.write_bytes(bytes(range(256)) * 8)


def latin1(p: Path) -> None:
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))


def truncate(frac: float):
    def f(p: Path) -> None:
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * frac)])
    return f


def folder(p: Path) -> None:
    if p.exists():
        gone(p)
    p.mkdir()


def text(s: str):
    return lambda p: p.write_text(s)


def copy_of(rel: str):
    """Replace the file by another file of the tree (the wrong kind of file)."""
    return lambda p: shutil.copy(_root(p) / rel, p)


def _root(p: Path) -> Path:
    while not (p / "tiny.yaml").exists():
        p = p.parent
    return p


def yaml_edit(fn):
    def f(p: Path) -> None:
        p.write_text(yaml.safe_dump(fn(yaml.safe_load(p.read_text()))))
    return f


def json_edit(fn):
    def f(p: Path) -> None:
        p.write_text(json.dumps(fn(json.loads(p.read_text()))))
    return f


def json_raw(fn):
    def f(p: Path) -> None:
        old = p.read_text()
        new = fn(old)
        assert new != old, f"the damage did not change {p}"
        p.write_text(new)
    return f


def npz(**arrays):
    def f(p: Path) -> None:
        with np.load(p) as z:
            data = {k: z[k] for k in z.files}
        data.update(arrays)
        for k in [k for k, v in arrays.items() if v is None]:
            data.pop(k)
        with open(p, "wb") as fh:
            np.savez(fh, **data)
    return f


def salt_twice(r):
    r["salts"] = r["salts"] * 2
    return r


def bomb(p: Path) -> None:
    s = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for prev, cur in zip("abcdefg", "bcdefgh"):
        s += f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    p.write_text(s + "name: tiny\n")


def other_identity(step, **change):
    def f(p: Path) -> None:
        p.mkdir(parents=True, exist_ok=True)
        fp = {"recipe": "other_system", "n_atoms": 999, "system_xml_sha256": "0" * 64, "protocol_sha256": "1" * 64,
              "step": step, **change}
        (p / records.IDENTITY).write_text(json.dumps(fp))
        (p / records.MD_JSON if step == "md" else p / records.ANALYSIS_JSON if step == "analysis"
         else p / records.CV_JSON).write_text("{}")
    return f


def same_system_other_protocol(p: Path) -> None:
    from solvmd.md.protocol import load_protocol

    root = _root(p)
    fp = records.fingerprint(root / "r/tiny/build", load_protocol(None, {**MD, "production_ps": 2.0}), step="md")
    records.claim_folder(p, fp)
    (p / records.PROTOCOL_JSON).write_text("{}")
    (p / "heat.chk").write_bytes(b"\x00" * 64)


def unclaimed_run(p: Path) -> None:
    p.mkdir(parents=True, exist_ok=True)
    (p / records.MD_JSON).write_text(json.dumps({"platform": "CPU"}))


def state_with_fewer_atoms(p: Path) -> None:
    import xml.etree.ElementTree as ET

    tree = ET.parse(p)
    pos = tree.getroot().find("Positions")
    for el in list(pos)[300:]:
        pos.remove(el)
    tree.write(p)


def write_spec(**change):
    """An analysis spec (SPEC.yaml mode) for the tree, with ``change`` applied."""
    def f(p: Path) -> None:
        spec = {"topology": "r/tiny/build/system.pdb", "trajectory": "r/tiny/md/traj.xtc", "cation": "resname LI",
                "partners": {"DME": "resname DME and element O"}, "timestep_ps": 0.1}
        spec.update(change)
        p.write_text(yaml.safe_dump(spec))
    return f


def run_trajectory(name: str, damage=None, box: bool = True, nan_frame: int | None = None):
    """spec.yaml analysing ``name`` (t.dcd or t.xtc beside it): the run's trajectory rewritten in
    that format (optionally without a box, or with one frame of NaN coordinates), then ``damage``
    applied to its bytes."""
    def f(p: Path) -> None:
        import warnings

        import MDAnalysis as mda

        root = _root(p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u = mda.Universe(str(root / B / records.SYSTEM_PDB), str(root / M / "traj.xtc"))
            with mda.Writer(str(root / name), u.atoms.n_atoms) as w:
                for ts in u.trajectory:
                    if not box:
                        ts.dimensions = None
                    if ts.frame == nan_frame:
                        u.atoms.positions = np.full((u.atoms.n_atoms, 3), np.nan, dtype=np.float32)
                    w.write(u.atoms)
        if damage is not None:
            (root / name).write_bytes(bytes(damage(bytearray((root / name).read_bytes()))))
        write_spec(trajectory=name)(p)
    return f


def poke(offset: int, data: bytes):
    """Overwrite bytes at ``offset`` (negative: from the end)."""
    def f(b: bytearray) -> bytearray:
        i = offset if offset >= 0 else len(b) + offset
        b[i:i + len(data)] = data
        return b
    return f


def cut(frac: float):
    return lambda b: b[: int(len(b) * frac)]


def _xtc_frame_start(b: bytearray, frame: int) -> int:
    pos = 0
    for _ in range(frame):
        pos += 92 + 4 * ((int.from_bytes(b[pos + 88:pos + 92], "big") + 3) // 4)
    return pos


def xtc_cut_inside(frame: int):
    """Cut the XTC file 100 bytes into frame ``frame``."""
    return lambda b: b[: _xtc_frame_start(b, frame) + 100]


def xtc_field(frame: int, offset: int, value: int):
    """Set the big-endian int at ``offset`` of the compression header (after the 56-byte frame
    header) of XTC frame ``frame``: 28 is the size index, 32 the compressed byte count."""
    def f(b: bytearray) -> bytearray:
        pos = _xtc_frame_start(b, frame)
        b[pos + 56 + offset:pos + 60 + offset] = value.to_bytes(4, "big")
        return b
    return f


def recipe_pmf(**change):
    """The recipe's pmf block with ``change`` (None deletes the value: an empty key)."""
    return yaml_edit(lambda r: {**r, "pmf": {**r["pmf"], **change}})


def dcd_atom_count(n: int):
    """Set the atom count in a DCD header (after the 92-byte header record and the title record)."""
    def f(b: bytearray) -> bytearray:
        title = int.from_bytes(b[92:96], "little")
        at = 92 + 4 + title + 4 + 4
        b[at:at + 4] = n.to_bytes(4, "little")
        return b
    return f


# ------------------------------------------------------------------ the corpus
# (id, verb, file damaged (relative to the case folder), damage, regex the message must match)

B, M, A, P = "r/tiny/build", "r/tiny/md", "r/tiny/analysis", "r/tiny/pmf/li_dme"
CASES = [
    # --- build: the recipe
    ("build-missing", "build", "tiny.yaml", gone, "recipe file .*tiny.yaml does not exist"),
    ("build-empty", "build", "tiny.yaml", empty, "tiny.yaml is empty"),
    ("build-whitespace", "build", "tiny.yaml", text("  \n\t\n"), "empty"),
    ("build-binary", "build", "tiny.yaml", binary, "binary"),
    ("build-latin1", "build", "tiny.yaml", latin1, "not UTF-8"),
    ("build-folder", "build", "tiny.yaml", folder, "is a folder"),
    ("build-oversized", "build", "tiny.yaml", text("name: tiny\n#" + "x" * (1 << 21)), "the limit is"),
    ("build-truncated", "build", "tiny.yaml", truncate(0.13), "malformed YAML|invalid recipe"),
    ("build-list", "build", "tiny.yaml", text("- a\n- b\n"), "must be a YAML mapping"),
    ("build-dup-key", "build", "tiny.yaml", json_raw(lambda s: s + "name: other\n"), "key 'name' is given twice"),
    ("build-nan", "build", "tiny.yaml", yaml_edit(lambda r: {**r, "temperature_K": float("nan")}),
     "temperature_K: nan is not allowed"),
    ("build-inf-molarity", "build", "tiny.yaml",
     json_raw(lambda s: s.replace("molarity_M: 1.0", "molarity_M: .inf")), r"salts\.0\.molarity_M: inf is not allowed"),
    ("build-dup-salt", "build", "tiny.yaml", yaml_edit(salt_twice), r"salts\.1: salt LiFSI is listed twice"),
    ("build-dup-solvent", "build", "tiny.yaml",
     yaml_edit(lambda r: {**r, "solvents": [{"species": "DME", "volume_fraction": 0.5}] * 2}), "listed twice"),
    ("build-fractions-0.7", "build", "tiny.yaml",
     yaml_edit(lambda r: {**r, "solvents": [{"species": "DME", "volume_fraction": 0.7}]}), "sum to 0.7, not 1"),
    ("build-fractions-1.3", "build", "tiny.yaml",
     yaml_edit(lambda r: {**r, "solvents": [{"species": "DME", "volume_fraction": 0.6},
                                            {"species": "DOL", "volume_fraction": 0.7}]}), "sum to 1.3, not 1"),
    ("build-alias-bomb", "build", "tiny.yaml", bomb, "expands to more than"),
    ("build-recursive-alias", "build", "tiny.yaml", text("name: &a [*a]\n"), "expands to more than|malformed"),
    ("build-unknown-field", "build", "tiny.yaml", yaml_edit(lambda r: {**r, "temprature_K": 300}),
     "temprature_K: unknown field"),
    ("build-negative-molarity", "build", "tiny.yaml",
     yaml_edit(lambda r: {**r, "salts": [{**r["salts"][0], "molarity_M": -1}]}), r"salts\.0\.molarity_M"),
    ("build-unknown-species", "build", "tiny.yaml",
     yaml_edit(lambda r: {**r, "solvents": [{"species": "XYZ", "volume_fraction": 1.0}]}), "XYZ"),
    ("build-string-number", "build", "tiny.yaml", yaml_edit(lambda r: {**r, "temperature_K": "hot"}), "temperature_K"),
    ("build-wrong-kind-json", "build", "tiny.yaml", copy_of(f"{B}/manifest.json"), "unknown field"),
    ("build-wrong-kind-png", "build", "tiny.yaml", copy_of(f"{A}/rdf.png"), "binary|not UTF-8"),
    ("build-weak-pmf", "build", "tiny.yaml",
     yaml_edit(lambda r: {**r, "pmf": {**r["pmf"], "k_kJ_mol_nm2": 1}}), "k_kJ_mol_nm2: 1 kJ/mol/nm.2 is too weak"),
    ("build-python-tag", "build", "tiny.yaml", text("name: !!python/object/apply:os.system ['true']\n"),
     "malformed YAML"),
    ("build-deep-nesting", "build", "tiny.yaml", text("name: " + "[" * 20000 + "]" * 20000 + "\n"),
     "nested too deeply|malformed YAML"),
    ("build-huge-size", "build", "tiny.yaml", yaml_edit(lambda r: {**r, "size": {"salt_units": 10 ** 12}}),
     r"size\.salt_units: Input should be less than or equal to 1000000"),
    ("build-absurd-temperature", "build", "tiny.yaml", yaml_edit(lambda r: {**r, "temperature_K": 29815}),
     "temperature_K: Input should be less than or equal to 1000"),
    ("build-iface-no-electrolyte", "build", "tiny.yaml", text(
        "name: iface\nelectrolyte: no_such_recipe\nsurface: {kind: graphene, size_nm: [2.2, 2.2]}\n"
        "slab: {liquid_thickness_nm: 2.0}\n"), "electrolyte"),
    ("build-iface-density-binary", "build", "tiny.yaml", lambda p: (
        binary(p.parent / "r/tiny/md/md.json"),
        p.write_text("name: iface\nelectrolyte: {name: el, salts: [{cation: Li, anion: FSI, molarity_M: 1.0}], "
                     "solvents: [{species: DME, volume_fraction: 1.0}], size: {salt_units: 4}}\n"
                     "surface: {kind: graphene, size_nm: [2.2, 2.2]}\nslab: {liquid_thickness_nm: 2.0}\n"
                     "density: {source: md, path: r/tiny/md}\n")), "md.json is binary"),
    # --- gpu-slot
    ("gpu-devices", "gpu-slot:--devices=abc", "tiny.yaml", argv_only, "--devices: 'abc'"),
    ("gpu-lock-dir-file", "gpu-slot:--lock-dir=tiny.yaml", "tiny.yaml", argv_only,
     "--lock-dir: .* is not a folder"),
    ("gpu-no-command", "gpu-slot:nocmd", "tiny.yaml", argv_only, "give the command to run"),
    # --- md: the build folder and the protocol
    ("md-build-missing", "md", B, gone, "build folder .* does not exist"),
    ("md-build-is-file", "md", B, lambda p: (gone(p), p.write_text("x")), "does not exist|no manifest"),
    ("md-manifest-missing", "md", f"{B}/manifest.json", gone, "no manifest.json"),
    ("md-manifest-empty", "md", f"{B}/manifest.json", empty, "manifest.json is empty"),
    ("md-manifest-binary", "md", f"{B}/manifest.json", binary, "binary"),
    ("md-manifest-truncated", "md", f"{B}/manifest.json", truncate(0.5), "not valid JSON"),
    ("md-manifest-nan", "md", f"{B}/manifest.json",
     json_raw(lambda s: re.sub(r'"temperature_K": [0-9.]+', '"temperature_K": NaN', s)), "NaN is not allowed"),
    ("md-manifest-dup-key", "md", f"{B}/manifest.json", json_raw(lambda s: s[:-2] + ', "n_atoms": 5}'),
     "given twice"),
    ("md-manifest-wrong-kind", "md", f"{B}/manifest.json", copy_of(f"{M}/md.json"), r"species: Field required"),
    ("md-manifest-n-atoms", "md", f"{B}/manifest.json", json_edit(lambda m: {**m, "n_atoms": 601}),
     "600 particles but manifest.json says n_atoms = 601"),
    ("md-manifest-bad-role", "md", f"{B}/manifest.json",
     json_edit(lambda m: {**m, "species": [{**m["species"][0], "role": "catalyst"}] + m["species"][1:]}),
     r"species\.0\.role"),
    ("md-xml-missing", "md", f"{B}/system.xml", gone, "system.xml"),
    ("md-xml-empty", "md", f"{B}/system.xml", empty, "system.xml is empty"),
    ("md-xml-truncated", "md", f"{B}/system.xml", truncate(0.5), "not well-formed XML"),
    ("md-xml-wrong-kind", "md", f"{B}/system.xml", copy_of(f"{M}/final.xml"), "found an XML <State>"),
    ("md-xml-garbage-forces", "md", f"{B}/system.xml",
     json_raw(lambda s: s.replace("<Forces>", "<Forces><Force type=\"NoSuchForce\" version=\"1\"/>", 1)),
     "OpenMM cannot read this serialized OpenMM System"),
    ("md-pdb-missing", "md", f"{B}/system.pdb", gone, "system.pdb"),
    ("md-protocol-missing", "md", "p.yaml", gone, "MD protocol file .* does not exist"),
    ("md-protocol-empty", "md", "p.yaml", empty, "is empty"),
    ("md-protocol-list", "md", "p.yaml", text("- 1\n- 2\n"), "must be a YAML mapping"),
    ("md-protocol-binary", "md", "p.yaml", binary, "binary"),
    ("md-protocol-dup-key", "md", "p.yaml", text("md:\n  heat_ps: 1\n  heat_ps: 2\n"), "heat_ps' is given twice"),
    ("md-protocol-nan", "md", "p.yaml", text("md:\n  timestep_fs: .nan\n"), r"md\.timestep_fs: nan is not allowed"),
    ("md-protocol-unknown", "md", "p.yaml", text("md:\n  timestep: 2\n"), "unknown field"),
    ("md-protocol-wrong-kind", "md", "p.yaml", copy_of("tiny.yaml"), "unknown field"),
    ("md-out-other-system", "md", "out", other_identity("md"), "holds a run of another system"),
    ("md-out-other-protocol", "md", "out", same_system_other_protocol, "holds a run of another protocol"),
    ("md-out-unclaimed-run", "md", "out", unclaimed_run, "no recorded identity"),
    ("md-out-is-file", "md", "out", text("x"), "exists and is not a folder"),
    # --- analyze --build/--md
    ("an-md-json-missing", "analyze", f"{M}/md.json", gone, "the MD run is not finished"),
    ("an-md-json-empty", "analyze", f"{M}/md.json", empty, "md.json is empty"),
    ("an-md-json-corrupt", "analyze", f"{M}/md.json", truncate(0.4), "not valid JSON"),
    ("an-md-json-wrong-kind", "analyze", f"{M}/md.json", copy_of(f"{B}/manifest.json"), "invalid MD record"),
    ("an-md-json-nan", "analyze", f"{M}/md.json",
     json_raw(lambda s: re.sub(r'"timestep_fs": [0-9.]+', '"timestep_fs": Infinity', s)), "Infinity is not allowed"),
    ("an-md-json-bad-frames", "analyze", f"{M}/md.json", json_edit(lambda m: {**m, "n_frames": -3}), "n_frames"),
    ("an-md-json-more-frames", "analyze", f"{M}/md.json", json_edit(lambda m: {**m, "n_frames": 50}),
     f"holds {N_FRAMES} readable frames but .*md.json says 50"),
    ("an-traj-truncated", "analyze", f"{M}/traj.xtc", truncate(0.93),
     f"readable frames.* {N_FRAMES} expected|holds \\d+ readable frames but .*says {N_FRAMES}"),
    ("an-traj-empty", "analyze", f"{M}/traj.xtc", empty, "trajectory"),
    ("an-traj-garbage", "analyze", f"{M}/traj.xtc", binary, "trajectory"),
    ("an-traj-missing", "analyze", f"{M}/traj.xtc", gone, "trajectory: file .* not found"),
    ("an-manifest-corrupt", "analyze", f"{B}/manifest.json", truncate(0.3), "not valid JSON"),
    ("an-manifest-no-cation", "analyze", f"{B}/manifest.json",
     json_edit(lambda m: {**m, "species": [s for s in m["species"] if s["role"] != "cation"]}), "cation"),
    ("an-pdb-wrong-kind", "analyze", f"{B}/system.pdb", copy_of(f"{M}/thermo.csv"),
     "system.pdb: 0 ATOM/HETATM records but manifest.json says n_atoms = 600"),
    ("an-out-other-system", "analyze", "out", other_identity("analysis"), "holds a run of another system"),
    ("an-md-of-other-build", "analyze", f"{M}/identity.json", json_edit(lambda f: {**f, "system_xml_sha256": "3" * 64}),
     "md holds a run of another system.*differs in system_xml_sha256"),
    ("an-md-identity-corrupt", "analyze", f"{M}/identity.json", truncate(0.5), "identity.json: run identity is not valid"),
    # --- analyze SPEC.yaml
    ("an-spec-missing", "analyze-spec", "spec.yaml", gone, "analysis spec file .* does not exist"),
    ("an-spec-empty", "analyze-spec", "spec.yaml", empty, "is empty"),
    ("an-spec-binary", "analyze-spec", "spec.yaml", binary, "binary"),
    ("an-spec-list", "analyze-spec", "spec.yaml", text("- a\n"), "expected a mapping"),
    ("an-spec-kwargs", "analyze-spec", "spec.yaml", write_spec(universe_kwargs={"guess_bond": True}),
     "universe_kwargs: guess_bond: not a keyword"),
    ("an-spec-stop-beyond", "analyze-spec", "spec.yaml", write_spec(frames={"stop": 99}),
     f"frames.stop: 99 is beyond the trajectory \\({N_FRAMES} frames"),
    ("an-spec-start-beyond", "analyze-spec", "spec.yaml", write_spec(frames={"start": 40}),
     f"frames.start: 40 is beyond the trajectory \\({N_FRAMES} frames"),
    ("an-spec-nan", "analyze-spec", "spec.yaml", write_spec(temperature_K=float("inf")), "temperature_K: inf"),
    ("an-spec-bad-selection", "analyze-spec", "spec.yaml", write_spec(cation="resname XX"), "cation"),
    ("an-spec-topology-missing", "analyze-spec", "spec.yaml", write_spec(topology="nope.pdb"),
     "topology: file .* not found"),
    ("an-spec-dup-key", "analyze-spec", "spec.yaml", json_raw(lambda s: s + "cation: resname LI\n"),
     "key 'cation' is given twice"),
    ("an-spec-wrong-kind", "analyze-spec", "spec.yaml", copy_of("tiny.yaml"), "unknown field"),
    # --- pmf-prepare
    ("prep-final-missing", "pmf-prepare", f"{M}/final.xml", gone, "final.xml"),
    ("prep-final-truncated", "pmf-prepare", f"{M}/final.xml", truncate(0.5), "not well-formed XML"),
    ("prep-final-wrong-kind", "pmf-prepare", f"{M}/final.xml", copy_of(f"{B}/system.xml"), "found an XML <System>"),
    ("prep-final-other-system", "pmf-prepare", f"{M}/final.xml", state_with_fewer_atoms,
     "has 300 atoms but the build has 600"),
    ("prep-md-unfinished", "pmf-prepare", f"{M}/md.json", gone, "the MD run is not finished"),
    ("prep-recipe-no-pmf", "pmf-prepare", "tiny.yaml", yaml_edit(lambda r: {k: v for k, v in r.items() if k != "pmf"}),
     "pmf"),
    ("prep-recipe-binary", "pmf-prepare", "tiny.yaml", binary, "binary"),
    ("prep-weak-k", "pmf-prepare", "tiny.yaml", yaml_edit(lambda r: {**r, "pmf": {**r["pmf"], "k_kJ_mol_nm2": 2}}),
     "too weak"),
    ("prep-out-other-system", "pmf-prepare", "out", other_identity("pmf"), "holds a run of another system"),
    ("prep-md-of-other-build", "pmf-prepare", f"{M}/identity.json", json_edit(lambda f: {**f, "n_atoms": 700}),
     "holds a run of another system"),
    ("prep-manifest-empty", "pmf-prepare", f"{B}/manifest.json", empty, "is empty"),
    # --- pmf-window
    ("win-cv-missing", "pmf-window", f"{P}/cv.json", gone, "run `solvmd pmf-prepare` first"),
    ("win-cv-corrupt", "pmf-window", f"{P}/cv.json", truncate(0.5), "not valid JSON"),
    ("win-cv-wrong-kind", "pmf-window", f"{P}/cv.json", copy_of(f"{M}/md.json"), "invalid resolved CV"),
    ("win-cv-bad-atoms", "pmf-window", f"{P}/cv.json", json_edit(lambda c: {**c, "groups": [[0], [9999]]}),
     "atom index beyond the build's 600 atoms"),
    ("win-cv-bad-kind", "pmf-window", f"{P}/cv.json", json_edit(lambda c: {**c, "kind": "angle"}), "kind"),
    ("win-init-missing", "pmf-window", f"{P}/init/window_0.xml", gone, "window_0.xml"),
    ("win-init-truncated", "pmf-window", f"{P}/init/window_0.xml", truncate(0.6), "not well-formed XML"),
    ("win-init-bad-content", "pmf-window", f"{P}/init/window_0.xml",
     json_raw(lambda s: s.replace("<Positions>", "<Positions><Position x=\"a\" y=\"0\" z=\"0\"/>", 1)),
     "has 601 atoms|OpenMM cannot read"),
    ("win-init-other-system", "pmf-window", f"{P}/init/window_0.xml", state_with_fewer_atoms, "has 300 atoms"),
    ("win-identity-other", "pmf-window", f"{P}/identity.json",
     json_edit(lambda f: {**f, "recipe": "other", "n_atoms": 5}), "holds a run of another system"),
    ("win-identity-corrupt", "pmf-window", f"{P}/identity.json", binary, "binary"),
    ("win-index-range", "pmf-window:7", f"{P}/cv.json", argv_only, r"--window: 7 is not a window .*\(0\.\.1\)"),
    ("win-index-negative", "pmf-window:-1", f"{P}/cv.json", argv_only, "--window: -1 is not a window"),
    # --- pmf-estimate
    ("est-folder-missing", "pmf-estimate", P, gone, "PMF folder .* does not exist"),
    ("est-window-missing", "pmf-estimate", f"{P}/window_1.npz", gone, "window_1.npz: window file missing"),
    ("est-window-empty", "pmf-estimate", f"{P}/window_0.npz", empty, "corrupt or not an .npz"),
    ("est-window-truncated", "pmf-estimate", f"{P}/window_0.npz", truncate(0.5), "corrupt or not an .npz"),
    ("est-window-text", "pmf-estimate", f"{P}/window_0.npz", text("cv_nm: [1, 2]\n"), "corrupt or not an .npz"),
    ("est-window-keys", "pmf-estimate", f"{P}/window_0.npz", npz(k_kJ_mol_nm2=None), r"no \['k_kJ_mol_nm2'\]"),
    ("est-window-nan", "pmf-estimate", f"{P}/window_1.npz", npz(cv_nm=np.array([0.2, np.nan, 0.21])),
     "cv_nm must hold >= 2 finite samples"),
    ("est-window-bad-k", "pmf-estimate", f"{P}/window_1.npz", npz(k_kJ_mol_nm2=np.array(-5.0)), "k_kJ_mol_nm2 must be"),
    ("est-identity-other-spec", "pmf-estimate", f"{P}/identity.json",
     json_edit(lambda f: {**f, "protocol_sha256": "2" * 64}), "holds a run of another protocol"),
    ("est-recipe-missing", "pmf-estimate", "tiny.yaml", gone, "does not exist"),
    # --- trajectory readers: header, body, index, missing box (issue 26): one error naming the file
    ("an-dcd-header-corrupt", "analyze-spec", "spec.yaml", run_trajectory("t.dcd", poke(4, b"XXXX")),
     r"t\.dcd is not a readable DCD file: header"),
    ("an-dcd-header-zeroed", "analyze-spec", "spec.yaml", run_trajectory("t.dcd", poke(0, bytes(120))),
     r"t\.dcd is not a readable DCD file: header"),
    ("an-dcd-atom-count", "analyze-spec", "spec.yaml", run_trajectory("t.dcd", dcd_atom_count(601)),
     r"t\.dcd .*record markers .*atom count \(601\)"),
    ("an-dcd-markers", "analyze-spec", "spec.yaml", run_trajectory("t.dcd", poke(-2414, b"\x7f" * 12)),
     r"t\.dcd is not a readable DCD file: frame 9: record markers"),  # the last frame's Y/Z markers
    ("an-dcd-absurd-coordinates", "analyze-spec", "spec.yaml", run_trajectory("t.dcd", poke(-3000, b"\x7f" * 64)),
     r"t\.dcd: frame 9 holds non-finite or absurd coordinates"),
    ("an-dcd-cut-frame", "analyze-spec", "spec.yaml", run_trajectory("t.dcd", cut(0.77)),
     r"t\.dcd holds \d readable frames but its DCD header says 10"),
    ("an-dcd-nan-frame", "analyze-spec", "spec.yaml", run_trajectory("t.dcd", nan_frame=3),
     r"t\.dcd: frame 3 holds non-finite or absurd coordinates"),
    ("an-dcd-no-box", "analyze-spec", "spec.yaml", run_trajectory("t.dcd", box=False), r"t\.dcd: frame 0 has no periodic box"),
    ("an-xtc-compression-header", "analyze-spec", "spec.yaml", run_trajectory("t.xtc", xtc_field(1, 28, 500)),
     r"t\.xtc is not a readable XTC file: frame 1 .*compression header is garbage"),
    ("an-xtc-size-field", "analyze-spec", "spec.yaml", run_trajectory("t.xtc", xtc_field(2, 32, 10 ** 8)),
     r"t\.xtc is not a readable XTC file: frame 2 .*compressed size 100000000 bytes is impossible"),
    ("an-xtc-bad-magic", "analyze-spec", "spec.yaml", run_trajectory("t.xtc", poke(0, bytes(8))),
     r"t\.xtc is not a readable XTC file: frame 0 .*magic number"),
    ("an-xtc-cut", "analyze-spec", "spec.yaml", run_trajectory("t.xtc", xtc_cut_inside(6)),
     r"t\.xtc (ends inside frame 6 .*truncated.*truncate -s \d+ FILE|is truncated or corrupt: 6 readable frames)"),
    ("an-xtc-cut-in-header", "analyze-spec", "spec.yaml", run_trajectory("t.xtc", lambda b: b[: _xtc_frame_start(b, 4) + 30]),
     r"t\.xtc (ends inside frame 4 .*truncated|is truncated or corrupt: 4 readable frames)"),
    ("an-xtc-empty", "analyze-spec", "spec.yaml", run_trajectory("t.xtc", cut(0.0)), r"t\.xtc is empty"),
    # --- blocks present but empty or null (issue 26): one error naming the block, never a TypeError
    ("md-protocol-md-empty", "md", "p.yaml", text("md:\n"), r"md: the block is empty"),
    ("md-protocol-md-null", "md", "p.yaml", text("md: null\n"), r"md: the block is empty"),
    ("md-protocol-md-list", "md", "p.yaml", text("md: [1, 2]\n"), r"md: must be a mapping"),
    ("md-protocol-md-value-empty", "md", "p.yaml", text("md:\n  production_ps:\n"),
     r"md\.production_ps: no value given; give one, or leave the line out to use the default \(1000\.0\)"),
    ("build-empty-forcefield", "build", "tiny.yaml", yaml_edit(lambda r: {**r, "forcefield": None}),
     r"forcefield: the block is empty; give its fields, or leave the line out"),
    ("build-empty-size", "build", "tiny.yaml", yaml_edit(lambda r: {**r, "size": None}),
     r"size: the block is empty; it is required"),
    ("build-empty-packing-seed", "build", "tiny.yaml", yaml_edit(lambda r: {**r, "packing": {"seed": None}}),
     r"packing\.seed: no value given"),
    ("build-empty-pmf-cv", "build", "tiny.yaml", recipe_pmf(cv=None), r"pmf\.cv: the block is empty; it is required"),
    ("build-iface-empty-slab", "build", "tiny.yaml", text(
        "name: iface\nelectrolyte: tiny\nsurface: {kind: graphene, size_nm: [2.2, 2.2]}\nslab:\n"),
     r"slab: the block is empty; it is required"),
    ("an-spec-empty-rdf", "analyze-spec", "spec.yaml", write_spec(rdf=None), r"rdf: the block is empty"),
    ("an-spec-empty-partners", "analyze-spec", "spec.yaml", write_spec(partners=None),
     r"partners: the block is empty; it is required"),
    ("prep-empty-pmf-block", "pmf-prepare", "tiny.yaml", yaml_edit(lambda r: {**r, "pmf": None}),
     r"pmf: the block is empty; the pmf-\* verbs need at least one PMF entry"),
    ("est-empty-pmf-hold", "pmf-estimate", "tiny.yaml", recipe_pmf(cv={**RECIPE["pmf"]["cv"], "hold": None}),
     r"pmf\.cv\.hold: the block is empty"),
    # --- stale windows (issue 26): named as stale, with what they were made for and how to start over
    ("est-stale-centre", "pmf-estimate", f"{P}/window_1.npz", npz(r0_nm=np.array(0.26)),
     r"stale window files.*window 1: r0=0\.26 nm, k=10000.*asks for window 1: r0=0\.23 nm.*To start over, delete"),
    ("est-stale-k", "pmf-estimate", f"{P}/window_0.npz", npz(k_kJ_mol_nm2=np.array(2500.0)),
     r"stale window files.*window 0: r0=0\.2 nm, k=2500.*To start over"),
    ("est-stale-spec-changed", "pmf-estimate", "tiny.yaml", recipe_pmf(range_nm=[0.25, 0.28], k_kJ_mol_nm2=8000),
     r"stale window files.*window 0: r0=0\.2 nm, k=10000; window 1: r0=0\.23 nm, k=10000.*asks for window 0: "
     r"r0=0\.25 nm, k=8000"),
    ("est-stale-extra-window", "pmf-estimate", f"{P}/window_5.npz", copy_of(f"{P}/window_0.npz"),
     r"stale window files.*window 5: .*the spec has 2 windows"),
    # --- compare
    ("cmp-missing", "compare", f"{P}/barrier.json", gone, "barrier.json does not exist"),
    ("cmp-empty", "compare", f"{P}/barrier.json", empty, "is empty"),
    ("cmp-corrupt", "compare", f"{P}/barrier.json", truncate(0.5), "not valid JSON"),
    ("cmp-wrong-kind", "compare", f"{P}/barrier.json", copy_of(f"{B}/manifest.json"), "invalid barrier record"),
    ("cmp-nan", "compare", f"{P}/barrier.json",
     json_raw(lambda s: s.replace('"dG_barrier_kJ_mol": 12.5', '"dG_barrier_kJ_mol": NaN')), "NaN is not allowed"),
    ("cmp-string", "compare", f"{P}/barrier.json", json_edit(lambda b: {**b, "dG_barrier_kJ_mol": "high"}),
     "dG_barrier_kJ_mol"),
    ("cmp-no-state", "compare", f"{P}/barrier.json", json_edit(lambda b: {k: v for k, v in b.items()
                                                                         if k != "bound_state"}), "bound_state"),
    ("cmp-labels", "compare:labels", f"{P}/barrier.json", argv_only, "--labels: 2 labels for 1 barrier"),
    ("cmp-csv-folder", "compare", "cmp.csv", folder, "--csv: .* is a folder"),
    ("cmp-folder-as-barrier", "compare", f"{P}/barrier.json", folder, "barrier.json does not exist"),
    # --- sac-compare
    ("sac-folder-missing", "sac-compare", P, gone, "PMF folder .* does not exist"),
    ("sac-barrier-corrupt", "sac-compare", f"{P}/barrier.json", truncate(0.5), "not valid JSON"),
    ("sac-cv-wrong-kind", "sac-compare", f"{P}/cv.json", copy_of(f"{M}/md.json"), "invalid resolved CV"),
    # --- summarize
    ("sum-results-missing", "summarize", "r", gone, "results folder .* does not exist"),
    ("sum-results-file", "summarize", "r", lambda p: (gone(p), p.write_text("x")), "does not exist|not a folder"),
    ("sum-no-systems", "summarize", "r/tiny", gone, "no finished systems"),
    ("sum-unknown-system", "summarize:nope", "r", argv_only, "no results for system 'nope'"),
    ("sum-path-system", "summarize:../tiny", "r", argv_only, "a system name is letters"),
    ("sum-md-json-corrupt", "summarize", f"{M}/md.json", binary, "binary"),
    ("sum-md-json-wrong", "summarize", f"{M}/md.json", json_edit(lambda m: {**m, "n_frames": "many"}), "n_frames"),
    ("sum-table-binary", "summarize", f"{A}/coordination.csv", binary, "coordination.csv"),
    ("sum-table-columns", "summarize", f"{A}/coordination.csv", text("a,b\n1,2\n"), "coordination.csv: no column"),
    ("sum-table-empty", "summarize", f"{A}/speciation.csv", empty, "speciation.csv is empty"),
    ("sum-barrier-corrupt", "summarize", f"{P}/barrier.json", truncate(0.3), "not valid JSON"),
    ("sum-thermo-corrupt", "summarize", f"{M}/thermo.csv", text("stage,time_ps\n"), "thermo"),
    ("sum-csv-suffix", "summarize", "sum.csv", argv_only, None),  # positive control (see below)
    # --- plot-thermo
    ("thermo-missing", "plot-thermo", f"{M}/thermo.csv", gone, "thermo.csv does not exist"),
    ("thermo-empty", "plot-thermo", f"{M}/thermo.csv", empty, "is empty"),
    ("thermo-binary", "plot-thermo", f"{M}/thermo.csv", binary, "binary"),
    ("thermo-header-only", "plot-thermo", f"{M}/thermo.csv", truncate(0.02), "no rows|no column"),
    ("thermo-columns", "plot-thermo", f"{M}/thermo.csv", text("a,b\n1,2\n"), r"no column\(s\) \['stage'"),
    ("thermo-nan", "plot-thermo", f"{M}/thermo.csv",
     text("stage,time_ps,T_K,density_g_cm3\nheat,0.2,nan,1.0\n"), "column T_K, row 1: nan is not a finite number"),
    ("thermo-text", "plot-thermo", f"{M}/thermo.csv", text("stage,time_ps,T_K,density_g_cm3\nheat,0.2,hot,1.0\n"),
     "column T_K, row 1: 'hot'"),
    ("thermo-wrong-kind", "plot-thermo", f"{M}/thermo.csv", copy_of(f"{M}/md.json"), "no column|not a readable CSV"),
    ("thermo-out-folder", "plot-thermo", "thermo.png", folder, "--out: .* is a folder"),
]
CASES = [c for c in CASES if c[4] is not None]


def _argv(verb: str, d: Path) -> tuple[list[str], list[Path]]:
    """The command line and the finished-looking outputs it must not leave behind."""
    R, s = d / "r" / "tiny", str
    verb, _, extra = verb.partition(":")
    if verb == "build":
        out = d / "out"
        return ["build", s(d / "tiny.yaml"), "-o", s(out)], [out / records.MANIFEST, out / records.SYSTEM_XML]
    if verb == "md":
        out = d / "out"
        return ["md", s(R / "build"), "-o", s(out), "-p", s(d / "p.yaml")], [out / records.MD_JSON,
                                                                            out / records.FINAL_XML]
    if verb == "analyze":
        out = d / "out"
        return ["analyze", "--build", s(R / "build"), "--md", s(R / "md"), "-o", s(out)], [out / records.ANALYSIS_JSON]
    if verb == "analyze-spec":
        out = d / "out"
        return ["analyze", s(d / "spec.yaml"), "-o", s(out)], [out / records.ANALYSIS_JSON]
    if verb == "pmf-prepare":
        out = d / "out"
        return (["pmf-prepare", s(d / "tiny.yaml"), "--build", s(R / "build"), "--md", s(R / "md"), "-o", s(out)],
                [out / records.CV_JSON, out / records.window_init_xml(0)])
    P = R / "pmf" / "li_dme"
    if verb == "pmf-window":
        return (["pmf-window", s(d / "tiny.yaml"), "--build", s(R / "build"), "--window", extra or "0", "-o", s(P)],
                [P / records.window_npz(0), P / records.window_npz(1)])
    if verb == "pmf-estimate":
        return ["pmf-estimate", s(d / "tiny.yaml"), "-o", s(P)], [P / n for n in (records.PMF_CSV, "estimate.json",
                                                                                  "pmf.png")]
    if verb == "compare":
        labels = ["--labels", "a", "b"] if extra == "labels" else []
        return (["compare", s(P / records.BARRIER_JSON), "--csv", s(d / "cmp.csv"), "--png", s(d / "cmp.png"), *labels],
                [d / "cmp.csv", d / "cmp.png"])
    if verb == "sac-compare":
        return ["sac-compare", s(P), "--csv", s(d / "sac.csv"), "--png", s(d / "sac.png")], [d / "sac.csv",
                                                                                         d / "sac.png"]
    if verb == "summarize":
        systems = ["--systems", extra] if extra else []
        return (["summarize", s(d / "r"), *systems, "--csv", s(d / "sum.csv"), "--html", s(d / "sum.html")],
                [d / "sum.csv", d / "sum.html"])
    if verb == "plot-thermo":
        return ["plot-thermo", s(R / "md" / records.THERMO_CSV), "-o", s(d / "thermo.png")], [d / "thermo.png"]
    if verb == "gpu-slot":
        opts = [] if extra == "nocmd" else extra.split("=", 1)
        return ["gpu-slot", "--need", "1", *opts, "--", *([] if extra == "nocmd" else ["true"])], []
    raise AssertionError(verb)


def _case_dir(base: Path, tmp_path: Path, verb: str) -> Path:
    d = tmp_path / "case"
    shutil.copytree(base, d)
    if verb.startswith("pmf-window"):  # a window that passed validation would run: none may exist yet
        for k in (0, 1):
            (d / P / records.window_npz(k)).unlink()
    if verb == "analyze-spec":
        write_spec()(d / "spec.yaml")
    return d


def _snapshot(paths: list[Path]) -> dict[Path, bytes | None]:
    return {p: (p.read_bytes() if p.is_file() else None) for p in paths}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(base, tmp_path, capsys, monkeypatch, case):
    name, verb, target, damage, match = case
    d = _case_dir(base, tmp_path, verb)
    monkeypatch.chdir(d)
    undamaged = _state(d / target)
    damage(d / target)
    assert damage is argv_only or _state(d / target) != undamaged, f"{name}: the damage changed nothing"
    argv, outputs = _argv(verb, d)
    before = _snapshot(outputs)
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    command = argv[0]
    heads = [ln for ln in err.splitlines() if ln.startswith(f"solvmd {command}: ")]
    assert rc == 2, f"{name}: exit {rc}, stderr:\n{err[-2000:]}"
    assert len(heads) == 1 and heads[0].startswith(f"solvmd {command}: error: "), err[-2000:]
    assert "Traceback" not in err
    assert re.search(match, err), f"{name}: message does not match {match!r}:\n{err[-2000:]}"
    assert _snapshot(outputs) == before, f"{name}: a finished-looking output was written or changed"


def test_corpus_size_and_every_verb_covered():
    verbs = {c[1].partition(":")[0] for c in CASES}
    assert len(CASES) > 90
    assert verbs == {"build", "md", "analyze", "analyze-spec", "pmf-prepare", "pmf-window", "pmf-estimate",
                     "compare", "sac-compare", "summarize", "plot-thermo", "gpu-slot"}


def test_the_undamaged_tree_is_accepted(base, tmp_path, monkeypatch):
    """Positive control: the same inputs, undamaged, pass (so every refusal above is the damage)."""
    d = _case_dir(base, tmp_path, "compare")
    monkeypatch.chdir(d)
    for verb in ("compare", "summarize", "plot-thermo", "pmf-estimate"):
        argv, outputs = _argv(verb, d)
        assert main(argv) == 0, verb
        assert all(p.is_file() for p in outputs), verb
    table = json.loads((d / P / records.BARRIER_JSON).read_text())
    assert table["cv"] == "li_dme" and (d / "sum.csv").read_text().startswith("system,")


def test_real_process_prints_no_traceback(base, tmp_path):
    """The same through a real ``python -m solvmd.cli`` process (the console script path)."""
    d = _case_dir(base, tmp_path, "analyze")
    binary(d / M / records.MD_JSON)
    argv, _ = _argv("analyze", d)
    proc = subprocess.run([sys.executable, "-m", "solvmd.cli", *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "solvmd analyze: error: " in proc.stderr and "md.json is binary" in proc.stderr


def test_a_window_added_by_an_estimate_runs_from_the_cli(base, tmp_path, monkeypatch):
    """Positive control for `--window` range: a window listed in added_windows.json (index = spec
    windows + j, no start structure of its own) is accepted, started from its nearest neighbour and
    sampled at its own centre and force constant."""
    from solvmd.pmf.windows import write_added_windows

    d = _case_dir(base, tmp_path, "pmf-window")
    monkeypatch.chdir(d)
    P = d / "r" / "tiny" / "pmf" / "li_dme"
    from openmm import app

    atoms = list(app.PDBFile(str(d / "r" / "tiny" / "build" / records.SYSTEM_PDB)).topology.atoms())
    cv = json.loads((P / records.CV_JSON).read_text())  # as pmf-prepare writes it: the molecule that moves
    cv["meta"] = {**cv.get("meta", {}), "moving_atoms": [a.index for a in atoms if a.residue == atoms[12].residue]}
    (P / records.CV_JSON).write_text(json.dumps(cv))
    write_added_windows(P, [{"r0_nm": 0.215, "k_kJ_mol_nm2": 12000.0}], "test")
    argv, _ = _argv("pmf-window:2", d)
    assert main(argv) == 0
    with np.load(P / records.window_npz(2)) as z:
        assert float(z["r0_nm"]) == pytest.approx(0.215) and float(z["k_kJ_mol_nm2"]) == pytest.approx(12000.0)
        assert abs(float(np.mean(z["cv_nm"])) - 0.215) < 0.05  # sampled near its own centre (the Li-O wall pushes it out)
    assert main(_argv("pmf-window:3", d)[0]) == 2  # one past the added window: refused


def test_corrupt_frame_index_of_a_run_is_one_error(tmp_path):
    """The index solvmd md keeps beside its trajectory (used to resume): garbage in it is one
    error naming it, not a ValueError from int()."""
    from solvmd.errors import SolvmdError
    from solvmd.md.trajectory import TrajectoryWriter

    traj = tmp_path / "traj.xtc"
    traj.write_bytes(b"")
    for garbage in ("10 400\n20 x\n", "10\n", "\xff\xfe binary", "10 -5\n"):
        (tmp_path / "traj.xtc.frames").write_text(garbage, errors="surrogateescape")
        with pytest.raises(SolvmdError, match=r"traj\.xtc\.frames: the frame index of .*traj\.xtc is corrupt"):
            TrajectoryWriter.indexed_frames(traj)
    (tmp_path / "traj.xtc.frames").write_text("10 400\n20 800\n")
    assert TrajectoryWriter.indexed_frames(traj) == [(10, 400), (20, 800)]


@pytest.mark.parametrize("config, message", [
    ("systems: [tiny]\nmd:\n", "md: the block is empty; it is required: give its fields"),
    ("systems: [tiny]\nmd: null\nresources:\n", "resources: the block is empty; give its fields, or leave the line out"),
    ("systems: [tiny]\nmd: {}\nanalysis:\n", "analysis: the block is empty"),
    ("systems: [tiny]\nmd: {}\nanalysis: {residence: }\n", "analysis.residence: the key is empty"),
    ("systems:\nmd: {}\n", "systems: the block is empty; it is required"),
])
def test_empty_blocks_of_a_workflow_config_are_named(root, config, message):
    """The Snakefile names an empty config block before Snakemake's schema validation (which
    prints 'None is not of type object' and the whole schema)."""
    from solvmd.errors import empty_schema_blocks

    schema = yaml.safe_load((root / "config" / "schema.yaml").read_text())
    problems = empty_schema_blocks(yaml.safe_load(config), schema)
    assert any(message in p for p in problems), problems
    assert empty_schema_blocks(yaml.safe_load((root / "config" / "demo.yaml").read_text()), schema) == []
    assert "empty_schema_blocks(config" in (root / "Snakefile").read_text()


def test_a_crashing_xtc_decoder_is_one_error(tmp_path, monkeypatch):
    """Garbage inside compressed XTC coordinates can make the C decoder abort the process: the frames
    are decoded in a child first, and its crash (here a stand-in that aborts after frame 0) is one
    error naming the file and the frame."""
    from solvmd.analysis import trajectory_files
    from solvmd.errors import SolvmdError

    path = tmp_path / "t.xtc"
    path.write_bytes(b"")
    monkeypatch.setattr(trajectory_files, "_XTC_PROBE", "import os; print(0, flush=True); os.abort()")
    with pytest.raises(SolvmdError, match=r"t\.xtc is not a readable XTC file: frame 1 \(or frame 0, whose garbage "
                                          r"it decoded\) cannot be decoded: the XTC decoder crashed \(signal 6\)"):
        trajectory_files.probe_xtc_frames(path)
    monkeypatch.setattr(trajectory_files, "_XTC_PROBE", "import sys; print(0); sys.exit('cut-off frame')")
    trajectory_files.probe_xtc_frames(path)  # a Python error is safe in-process: the frame checks report it
