"""Interface figures (rho(z), CN vs height, cation - metal site g(r)) from a hand-built
configuration with exactly known answers, and the report items the Snakefile declares for
interface systems (config/demo_sac.yaml with analyze on)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from solvmd import records
from solvmd.analysis import plots, spec_from_dict
from solvmd.analysis.interface import InterfaceSettings, run_interface_analysis
from synthetic import Molecule, build_universe

BOX = [20.0, 20.0, 30.0, 90.0, 90.0, 90.0]  # A; the sheet at z = 0, its image at z = 30
SHEET = Molecule("GRA", ["C1", "C2", "C3", "C4", "ZN"], ["C", "C", "C", "C", "Zn"], np.zeros((5, 3)))
SHEET_XYZ = [[2, 2, 0], [18, 2, 0], [2, 18, 0], [18, 18, 0], [10, 10, 0]]  # Zn site at (10, 10, 0)
LI = Molecule("LI", ["Li1"], ["Li"], np.zeros((1, 3)))
SOL = Molecule("SOL", ["O1"], ["O"], np.zeros((1, 3)))
# Li a: on top of the Zn site, 2.5 A up, one solvent 2 A away (CN 1); Li b: mid-slab (height
# Lz/2 = 15 A exactly), three solvents 2 A away (CN 3); two more solvents far from both ions
LIQUID = [(LI, [10, 10, 2.5]), (SOL, [10, 12, 2.5]),
          (LI, [5, 5, 15]), (SOL, [7, 5, 15]), (SOL, [3, 5, 15]), (SOL, [5, 7, 15]),
          (SOL, [15, 15, 8]), (SOL, [15, 5, 22])]
N_FRAMES = 3
COUNTS = {"LI": 2, "SOL": 6}


@pytest.fixture(scope="module")
def interface(tmp_path_factory):
    xyz = np.array(SHEET_XYZ + [p for _, p in LIQUID], dtype=float)
    u = build_universe([SHEET] + [m for m, _ in LIQUID], np.repeat(xyz[None], N_FRAMES, 0), BOX)
    spec = spec_from_dict({"topology": "mem.pdb", "trajectory": "mem.dcd", "cation": "resname LI",
                           "partners": {"SOL": "resname SOL and element O"}, "cutoffs_A": {"SOL": 2.5},
                           "rdf": {"r_max_A": 8.0}, "residence": {"enabled": False},
                           "transport": {"enabled": False}})
    settings = InterfaceSettings(sheet="resname GRA", sites="resname GRA and element Zn",
                                 species={"LI": "resname LI", "SOL": "resname SOL"}, bin_A=0.5)
    out = tmp_path_factory.mktemp("iface_fig")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no anion, a toy slab: the analysis warns, rightly
        res = run_interface_analysis(spec, settings, out, universe=u)
    return res, out


def _png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0  # something is drawn
    return img


def test_interface_analysis_writes_exactly_the_declared_figures(interface):
    _, out = interface
    declared = records.analysis_outputs(interface=True, site_rdf=True)
    pngs = sorted(p.name for p in out.glob("interface*.png"))
    assert pngs == sorted(n for n in declared if n.startswith("interface") and n.endswith(".png"))
    assert pngs == ["interface_coordination.png", "interface_density.png", "interface_site_rdf.png"]
    for name in pngs:
        _png(out / name)


def test_density_profile_integrates_to_the_molecule_counts(interface):
    res, _ = interface
    dens = res["interface_density"]
    area_nm2, bin_nm = BOX[0] * BOX[1] / 100.0, 0.05
    for name, n in COUNTS.items():
        sub = dens[dens["species"] == name]
        assert (sub["n_per_nm3"] * bin_nm * area_nm2).sum() == pytest.approx(n, rel=1e-9)
    # the molecule sits in the bin of its height: Li a at 2.5 A -> bin [2.5, 3.0)
    li = dens[dens["species"] == "LI"].set_index("z_A")["n_per_nm3"]
    assert li[2.75] == pytest.approx(1 / (area_nm2 * bin_nm)) and li[2.25] == 0.0
    # what the figure plots is the table: one line per species (top), total mass density (bottom)
    fig = plots.plot_interface_density(dens)
    top, bottom = fig.axes[0], fig.axes[1]
    assert [ln.get_label() for ln in top.lines] == ["LI", "SOL"]
    np.testing.assert_allclose(top.lines[1].get_ydata(), dens[dens["species"] == "SOL"]["n_per_nm3"])
    total = dens[dens["species"] == "all"]
    np.testing.assert_allclose(bottom.lines[0].get_ydata(), total["mass_g_cm3"])
    mass_amu = 2 * 6.94 + 6 * 15.999  # g/cm^3 x volume -> grams -> amu: the liquid mass
    grams = (total["mass_g_cm3"] * BOX[0] * BOX[1] * 0.5 * 1e-24).sum()
    assert grams * 6.02214076e23 == pytest.approx(mass_amu, rel=1e-9)


def test_cn_vs_height_bins_every_cation_with_its_shell(interface, tmp_path):
    res, _ = interface
    coord = res["interface_coordination"]
    total = coord[coord["partner"] == "total"].set_index("height_A")
    assert total["n_samples"].sum() == N_FRAMES * COUNTS["LI"]  # every cation in one bin, the midplane too
    assert total.loc[2.5, "cn_molecules"] == 1.0  # Li a: height 2.5 A, one solvent
    assert total.index.max() == pytest.approx(14.5) and total.loc[14.5, "cn_molecules"] == 3.0  # Li b at Lz/2
    fig = plots.plot_interface_coordination(coord, res["meta"]["contact_layer_A"])
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines if not ln.get_label().startswith("_")}
    np.testing.assert_allclose(lines["total"].get_xdata(), [2.5, 14.5])
    np.testing.assert_allclose(lines["total"].get_ydata(), [1.0, 3.0])
    # no cation sampled: the figure is still drawn (the workflow declares it for every interface)
    _png(plots.save(plots.plot_interface_coordination(coord.iloc[:0], 5.0), tmp_path / "empty.png"))


def test_site_rdf_counts_the_ion_on_top_of_the_metal(interface):
    res, _ = interface
    site = res["interface_site_rdf"]
    n_site = site.set_index("r_A")["n_site"]
    assert n_site[n_site.index < 2.5].max() == 0.0 and n_site[n_site.index > 2.5].min() == 1.0
    # g in the bin [2.5, 2.6): one ion per frame in the shell, over the mid-slab cation density
    # (Li b, 10 A or more from both faces: 1 / (20 x 20 x 10 A^3))
    shell = 4 / 3 * np.pi * (2.6**3 - 2.5**3)
    g = site.set_index("r_A")["g_site"]
    assert g[g > 0].index[0] == pytest.approx(2.55)
    assert g[g > 0].iloc[0] == pytest.approx(4000.0 / shell, rel=1e-6)
    fig = plots.plot_site_rdf(site)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), site["g_site"])
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), site["n_site"])


# ------------------------------------------------------------------ the Snakefile's report items

FLAGS = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.io import get_flag_value, is_flagged
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

snakefile, workdir, configfile = sys.argv[1:4]
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path(snakefile), workdir=Path(workdir),
                      config_settings=ConfigSettings(configfiles=[Path(configfile)], config={"analyze": True}))
    items = {}
    for rule in wf._workflow.rules:  # report(...) outputs of every rule, with their caption file
        for f in rule.output:
            if is_flagged(f, "report"):
                items[Path(str(f)).name] = str(get_flag_value(f, "report").caption.get_path_or_uri(secret_free=True))
print("ITEMS" + json.dumps(items))
"""


def _snakemake_env(root: Path) -> dict:
    return {"PYTHONPATH": str(root), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp"}


def test_demo_sac_dry_run_declares_the_interface_analysis_and_its_report_items(root, tmp_path):
    """`snakemake -n` with config/demo_sac.yaml and analyze on: each interface system's analyze
    job declares the interface tables and figures; the figures are report items with a caption."""
    import json

    cfg = root / "config" / "demo_sac.yaml"
    snakemake = str(Path(sys.executable).parent / "snakemake")
    proc = subprocess.run([snakemake, "-s", str(root / "Snakefile"), "-d", str(tmp_path), "--configfile", str(cfg),
                           "--config", "analyze=True", "-n", "--cores", "1"],
                          capture_output=True, text=True, env=_snakemake_env(root), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    declared = {}
    for block in proc.stdout.split("rule ")[1:]:
        if block.startswith("analyze") and "output:" in block:
            outs = [Path(o.strip()) for o in block.split("output:")[1].splitlines()[0].split(",")]
            declared[outs[0].parts[1]] = sorted(o.name for o in outs)
    config = yaml.safe_load(cfg.read_text())
    systems = config["systems"]
    assert sorted(declared) == sorted(systems)
    for system in systems:
        recipe = yaml.safe_load((root / "systems" / f"{system}.yaml").read_text())
        switches = records.analysis_switches_for_recipe(recipe, config.get("analysis"))
        assert declared[system] == sorted(records.analysis_outputs(**switches))
    assert "interface_site_rdf.png" in declared["demo_sac_li_znn4"]  # M-N4: the site g(r)
    assert "interface_site_rdf.png" not in declared["demo_sac_li_graphene"]
    assert {"interface_density.png", "interface_coordination.png"} <= set(declared["demo_sac_mg_ngraphene"])
    assert not any(n.startswith("interface") for n in declared["demo_sac_li_bulk"])

    script = tmp_path / "flags.py"
    script.write_text(FLAGS)
    proc = subprocess.run([sys.executable, str(script), str(root / "Snakefile"), str(tmp_path), str(cfg)],
                          capture_output=True, text=True, env=_snakemake_env(root), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    items = json.loads(proc.stdout.split("ITEMS", 1)[1])
    for name in ("interface_density.png", "interface_coordination.png", "interface_site_rdf.png", "interface.csv",
                 "sac_comparison.csv", "sac_comparison.png"):
        caption = Path(items[name])
        assert caption.parent == root / "report" and caption.read_text().strip(), name
