"""End to end: spec -> files, several trajectory formats, manifest specs, and bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pandas as pd
import pytest
import yaml

from solvmd.analysis import load_spec, run_analysis, spec_from_dict, spec_from_manifest
from solvmd.analysis import columns as C
from synthetic import random_system, write_trajectory
from solvmd.errors import SolvmdError

PARTNERS = {"FSI": "resname FSI and (element N or element O)", "DME": "resname DME and element O"}
CUTS = {"FSI": 3.0, "DME": 2.9}


def _quiet():
    w = warnings.catch_warnings()
    w.__enter__()
    warnings.simplefilter("ignore")
    return w


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipe")
    u = random_system(n_cat=6, n_an=8, n_sol=10, n_frames=8, box=14.0, seed=11, dt_ps=2.0)
    w = _quiet()
    write_trajectory(u, d / "sys.pdb", d / "traj.dcd")
    write_trajectory(u, d / "sys.gro", d / "traj.xtc")
    w.__exit__(None, None, None)
    return d, u


def _write_spec(path: Path, **fields) -> Path:
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    return path


def _base(d, **kw):
    f = dict(topology=str(d / "sys.pdb"), trajectory=str(d / "traj.dcd"), cation="resname LI", partners=PARTNERS,
             anions=["FSI"], cutoffs_A=CUTS, timestep_ps=2.0, charges={"LI": 1, "FSI": -1},
             rdf={"r_max_A": 6.5})  # fmt: skip
    f.update(kw)
    return f


def test_run_analysis_writes_every_file_with_consistent_numbers(files, tmp_path):
    d, _ = files
    spec = load_spec(_write_spec(tmp_path / "spec.yaml", **_base(d)))
    out = tmp_path / "analysis"
    w = _quiet()
    tables = run_analysis(spec, out, verbose=False)
    w.__exit__(None, None, None)
    names = {p.name for p in out.iterdir()}
    for f in ["rdf.csv", "coordination.csv", "shells.csv", "speciation.csv", "clusters.csv", "residence.csv",
              "transport.csv", "cutoffs.json", "analysis.json", "rdf.png", "coordination.png", "shells.png",
              "speciation.png"]:  # fmt: skip
        assert f in names
    assert not [n for n in names if n.endswith(".partial")]
    for png in out.glob("*.png"):
        head = png.read_bytes()[:8]
        assert head == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    # files hold the same numbers as the returned tables
    coord = pd.read_csv(out / "coordination.csv")
    np.testing.assert_allclose(coord[C.CN_MOL], tables["coordination"][C.CN_MOL])
    cut = json.loads((out / "cutoffs.json").read_text())
    assert cut["partners"]["FSI"][C.CUTOFF] == 3.0 and cut["partners"]["FSI"][C.CUTOFF_SOURCE] == "override"
    shells = pd.read_csv(out / "shells.csv")
    assert shells[C.FRACTION].sum() == pytest.approx(1.0)
    assert shells[C.COUNT].sum() == 6 * 8  # every cation in every frame has a shell (maybe empty)
    sp = pd.read_csv(out / "speciation.csv")
    for (_, _), grp in sp.groupby([C.DEFINITION, C.SPECIES]):
        assert grp[C.FRACTION].sum() == pytest.approx(1.0)
    rdf = pd.read_csv(out / "rdf.csv")
    assert {C.R, C.G, C.N_R, C.PARTNER, C.DONOR_TYPE} <= set(rdf.columns)
    assert set(rdf[rdf[C.PARTNER] == "FSI"][C.DONOR_TYPE]) == {"all", "N", "O"}
    meta = json.loads((out / "analysis.json").read_text())
    assert meta["n_frames_analysed"] == 8 and meta["dt_ps"] == 2.0
    tr = pd.read_csv(out / "transport.csv")
    assert {C.D, C.SIGMA, C.FIT_START, C.FIT_STOP} <= set(tr.columns)


def test_formats_agree_pdb_dcd_gro_xtc_lammps(files, tmp_path):
    d, u = files
    # LAMMPS data file (atom_style full: id mol type q x y z), molecules = residues, no names
    tmap = {"Li": 1, "N": 2, "O": 3, "C": 4}
    types = [tmap[e] for e in u.atoms.elements]
    # anion O and solvent O must be told apart by type in LAMMPS: solvent O gets type 5
    types = [5 if (t == 3 and rn == "DME") else t for t, rn in zip(types, u.atoms.resnames)]
    u.trajectory[0]
    lines = ["LAMMPS data (solvmd test)", "", f"{u.atoms.n_atoms} atoms", "5 atom types", "",
             "0 14.0 xlo xhi", "0 14.0 ylo yhi", "0 14.0 zlo zhi", "", "Masses", ""]  # fmt: skip
    lines += [f"{k} {m}" for k, m in zip(range(1, 6), [6.94, 14.0, 16.0, 12.0, 16.0])] + ["", "Atoms # full", ""]
    for a, t, x in zip(u.atoms, types, u.atoms.positions):
        lines.append(f"{a.ix + 1} {a.resindex + 1} {t} 0.0 {x[0]:.6f} {x[1]:.6f} {x[2]:.6f}")
    (tmp_path / "sys.data").write_text("\n".join(lines) + "\n")
    specs = {
        "pdb+dcd": _base(d),
        "gro+xtc": _base(d, topology=str(d / "sys.gro"), trajectory=str(d / "traj.xtc"),  # GRO: no elements
                         partners={"FSI": "resname FSI and name N1 O1 O2", "DME": "resname DME and name O*"}),
        "lammps data+dcd": _base(
            d, topology=str(tmp_path / "sys.data"), topology_format="DATA", universe_kwargs={"atom_style": "id resid type charge x y z"},
            cation="type 1", partners={"FSI": "type 2 3", "DME": "type 5"}, charges={"FSI": -1, "cation": 1},
        ),  # fmt: skip
    }
    w = _quiet()
    res = {k: run_analysis(spec_from_dict(v), tmp_path / k.replace(" ", "_"), verbose=False) for k, v in specs.items()}
    w.__exit__(None, None, None)
    ref = res["pdb+dcd"]["coordination"].set_index(C.PARTNER)
    assert ref.loc["FSI", C.CN_MOL] > 0.3  # non-trivial
    for k in ("lammps data+dcd",):
        got = res[k]["coordination"].set_index(C.PARTNER)
        np.testing.assert_allclose(got[C.CN_MOL], ref[C.CN_MOL], atol=1e-12)
        pd.testing.assert_frame_equal(res[k]["speciation"], res["pdb+dcd"]["speciation"])
    # XTC stores 0.01 A precision: a contact exactly at the cutoff could flip, numbers agree closely
    got = res["gro+xtc"]["coordination"].set_index(C.PARTNER)
    np.testing.assert_allclose(got[C.CN_MOL], ref[C.CN_MOL], atol=0.05)


def test_spec_from_manifest(tmp_path):
    build, md = tmp_path / "build", tmp_path / "md"
    build.mkdir()
    md.mkdir()
    u = random_system(n_cat=3, n_an=3, n_sol=4, n_frames=3, box=12.0, seed=2)
    w = _quiet()
    write_trajectory(u, build / "system.pdb", md / "traj.xtc")
    w.__exit__(None, None, None)
    manifest = {
        "species": [
            {"name": "Li", "residue": "LI", "role": "cation", "count": 3, "charge": 1, "donors": []},
            {"name": "FSI", "residue": "FSI", "role": "anion", "count": 3, "charge": -1, "donors": ["O", "N"]},
            {"name": "DME", "residue": "DME", "role": "solvent", "count": 4, "charge": 0, "donors": ["O"]},
            {"name": "TTE", "residue": "TTE", "role": "solvent", "count": 0, "charge": 0, "donors": ["O", "F"]},
        ],
        "charge_scale": 0.8,
        "temperature_K": 310.0,
    }
    (build / "manifest.json").write_text(json.dumps(manifest))
    (md / "md.json").write_text(json.dumps({"frame_interval_ps": 5.0}))
    spec = spec_from_manifest(build, md)
    assert spec.cation == "resname LI" and spec.anions == ["FSI"]
    assert set(spec.partners) == {"FSI", "DME"}  # TTE has count 0
    assert spec.charges == {"LI": 1.0, "FSI": -1.0, "DME": 0.0} and spec.charge_scale == 0.8
    assert spec.timestep_ps == 5.0 and spec.temperature_K == 310.0
    w = _quiet()
    uu = mda.Universe(str(build / "system.pdb"))
    w.__exit__(None, None, None)
    assert uu.select_atoms(spec.partners["FSI"]).n_atoms == 9  # N + 2 O per anion
    assert uu.select_atoms(spec.partners["DME"]).n_atoms == 8  # 2 O per solvent


# ------------------------------------------------------------------ bad input


def _error(spec_or_fields, tmp_path) -> str:
    with pytest.raises(SolvmdError) as err:
        w = _quiet()
        try:
            if isinstance(spec_or_fields, dict):
                spec = load_spec(_write_spec(tmp_path / "bad.yaml", **spec_or_fields))
            else:
                spec = spec_or_fields
            run_analysis(spec, tmp_path / "out", verbose=False)
        finally:
            w.__exit__(None, None, None)
    return str(err.value)


@pytest.mark.parametrize(
    "change,field,words",
    [
        ({"cutoffs_A": {"DME": 0.0}}, "cutoffs_A.DME", "greater than 0"),
        ({"cutoffs_A": {"DME": -2.0}}, "cutoffs_A.DME", "greater than 0"),
        ({"cutoffs_A": {"PF6": 2.5}}, "cutoffs_A.PF6", "not a partner"),
        ({"anions": ["NO3"]}, "anions", "not a partner"),
        ({"colour": "red"}, "colour", "unknown field (misspelled?)"),
        ({"partners": {}}, "partners", "at least one partner"),
        ({"frames": {"start": 5, "stop": 2}}, "frames", "larger than start"),
        ({"temperature_K": -5}, "temperature_K", "greater than 0"),
    ],
)
def test_invalid_spec_fields_are_named(files, tmp_path, change, field, words):
    d, _ = files
    msg = _error(_base(d, **change), tmp_path)
    assert field in msg and words in msg


@pytest.mark.parametrize(
    "change,words",
    [
        ({"partners": {"DME": "resname XYZ and element O", "FSI": PARTNERS["FSI"]}}, ["partners.DME", "matches no atoms"]),
        ({"cation": "resname NOPE"}, ["cation", "matches no atoms"]),
        ({"cation": "resname LI and ("}, ["cation", "invalid MDAnalysis selection"]),
        ({"partners": {"FSI": "resname FSI LI", "DME": PARTNERS["DME"]}}, ["partners.FSI", "overlaps the cation"]),
        ({"partners": {"FSI": "resname FSI and element O", "FSIN": "resname FSI and element N"}, "cutoffs_A": {}, "anions": []},
         ["partners.FSI and partners.FSIN", "share molecules"]),
        ({"rdf": {"r_max_A": 9.0}}, ["rdf.r_max_A", "half the box"]),
        ({"frames": {"start": 50}}, ["frames.start", "beyond the trajectory"]),
        ({"charges": {"XX": 1}}, ["charges.XX"]),
    ],
)  # fmt: skip
def test_bad_selections_and_ranges_name_the_field(files, tmp_path, change, words):
    d, _ = files
    msg = _error(_base(d, **change), tmp_path)
    for w in words:
        assert w in msg


def test_trajectory_without_box(files, tmp_path):
    d, u = files
    w = _quiet()
    with mda.Writer(str(tmp_path / "nobox.dcd"), u.atoms.n_atoms) as wr:
        for ts in u.trajectory[:2]:
            ts.dimensions = None
            wr.write(u.atoms)
    w.__exit__(None, None, None)
    msg = _error(_base(d, trajectory=str(tmp_path / "nobox.dcd")), tmp_path)
    assert "trajectory" in msg and "no periodic box" in msg


def test_atom_count_mismatch(files, tmp_path):
    d, _ = files
    small = random_system(n_cat=2, n_an=2, n_sol=2, n_frames=2, box=14.0)
    w = _quiet()
    write_trajectory(small, tmp_path / "small.pdb", tmp_path / "small.dcd")
    w.__exit__(None, None, None)
    msg = _error(_base(d, trajectory=str(tmp_path / "small.dcd")), tmp_path)
    assert "trajectory" in msg and "atom" in msg and "topology" in msg


def test_missing_files_and_relative_paths(files, tmp_path):
    d, _ = files
    msg = _error(_base(d, topology=str(tmp_path / "nothing.pdb")), tmp_path)
    assert msg.startswith("topology") and "not found" in msg
    # relative paths are found next to the spec file
    sub = tmp_path / "specdir"
    sub.mkdir()
    for f in ("sys.pdb", "traj.dcd"):
        (sub / f).write_bytes((d / f).read_bytes())
    spec = load_spec(_write_spec(sub / "s.yaml", **_base(d, topology="sys.pdb", trajectory="traj.dcd")))
    assert spec.topology == sub / "sys.pdb" and Path(spec.trajectory) == sub / "traj.dcd"
