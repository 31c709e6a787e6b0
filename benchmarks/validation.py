"""Solvation-structure validation: Li+ and Mg2+ electrolytes against SCIENCE.md §5.

    python benchmarks/validation.py --atoms 1000 --equilibrate-ps 15 --production-ps 40

For each system: build (``systems/<recipe>.yaml`` at the requested size) -> MD
(:func:`solvmd.md.engine.run_md`, minimize / NVT heat / NPT equilibrate / NPT production)
-> analysis (:func:`solvmd.analysis.run_analysis`) -> a few numbers (``metrics.json``) ->
one table row per check: model value, reference value, source, pass/MISS.
Writes ``benchmarks/results/validation.{csv,md}``; rows are merged by check id, so a run
over some systems updates only their rows.

Resumable: a finished build (``manifest.json``), MD (``md.json``) or analysis
(``metrics.json``) is not redone, and an interrupted MD continues from its checkpoint.
Rerun the same command after a crash; ``--reanalyze`` redoes only the analysis of finished
runs. Not a test: CPU-hours at full length, minutes on a GPU. Units: distances in angstrom,
run lengths in ps, fractions 0-1 in ``metrics.json`` (percent in the table).

Checks (SCIENCE.md §5):

* Mg2+ in MgCl2-LiCl/THF (pre-assembled MgCl(THF)5+ and [Mg2(mu-Cl)3(THF)6]+): CN = 6,
  Mg-O(THF) first RDF peak 2.0-2.1 A; every dimer intact over the whole production run
  (all 6 Mg-(mu-Cl) and 6 Mg-O bonds of the start geometry kept: Mg-O < 2.6 A,
  Mg-Cl < 3.0 A in every frame), Mg...Mg 3.1-3.2 A; the same intactness for MgCl(THF)5+.
* Mg2+ in 0.5 M Mg(TFSI)2/DME (free ions): CN = 6, Mg-O 2.0-2.1 A.
* 1 M LiFSI/DME: Li-O(DME) first peak 1.9-2.1 A, total Li CN (O atoms) 4-5.
* LHCEs (LiFSI:DME:TTE, LiFSI:DME:BTFE, LiFSI:DOL:TTE = 1:1.2:3): diluent molecules in the
  Li+ first shell < 0.2 per Li+ (a diluent molecule counts when any of its O/F atoms lies
  within the Li+ first-shell radius = the largest automatic cutoff of the ether and the
  anion), CIP + AGG (anion-centric) >= 80 %.
* AGG fraction rises from 1 M to 4 M LiFSI/DME; DOL gives more CIP + AGG than DME in TTE.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from solvmd.analysis import columns as C
from solvmd.analysis.spec import spec_from_manifest
from solvmd.analysis.workflow import run_analysis
from solvmd.build.system import build_system
from solvmd.md.engine import run_md
from solvmd.md.protocol import load_protocol
from solvmd.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
SCI = "SCIENCE.md §5"
BOND_CUTOFF_A = {"O": 2.6, "Cl": 3.0}  # a start-geometry Mg-donor bond counts as kept below this


@dataclass(frozen=True)
class System:
    """One validation system: recipe file, cation selection for the analysis, role labels."""

    recipe: str
    cation: str  # residue name of the cation analysed (LI or MG)
    ether: str | None = None  # the solvating ether (for the M-O peak)
    diluent: str | None = None  # fluorinated diluent partner (LHCE)
    atoms_factor: float = 1.0  # x --atoms (more atoms where the cation is dilute)


SYSTEMS: dict[str, System] = {
    "mgcl2_licl_thf_complexes": System("systems/mgcl2_licl_thf_complexes.yaml", "MG", ether="THF"),
    "mgcl2_licl_thf_complexes_bonded": System("systems/mgcl2_licl_thf_complexes_bonded.yaml", "MG", ether="THF"),
    "mg_tfsi_dme": System("systems/mg_tfsi_dme.yaml", "MG", ether="DME"),
    "li_fsi_dme_1M": System("systems/li_fsi_dme_1M.yaml", "LI", ether="DME"),
    "li_fsi_dme_4M": System("systems/li_fsi_dme_4M.yaml", "LI", ether="DME"),
    "lhce_fsi_dme_tte": System("systems/lhce_fsi_dme_tte.yaml", "LI", ether="DME", diluent="TTE"),
    "lhce_fsi_dol_tte": System("systems/lhce_fsi_dol_tte.yaml", "LI", ether="DOL", diluent="TTE"),
    "lhce_fsi_dme_btfe": System("systems/lhce_fsi_dme_btfe.yaml", "LI", ether="DME", diluent="BTFE"),
}


# --------------------------------------------------------------------------- metrics


def _universe(build: Path, md: Path):
    import MDAnalysis as mda

    traj = md / "traj.xtc" if (md / "traj.xtc").exists() else md / "traj.dcd"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(str(build / "system.pdb"), str(traj))


def donor_element_cn(contacts: pd.DataFrame, elements: np.ndarray, n_frames: int, n_cations: int) -> dict[str, float]:
    """Mean number of first-shell donor atoms per cation, split by element (O, N, F, Cl)."""
    el = elements[contacts[C.DONOR].to_numpy()]
    out = {}
    for e in np.unique(el):
        out[str(e)] = float((el == e).sum()) / max(n_frames * n_cations, 1)
    return out


def speciation_fractions(spec_df: pd.DataFrame) -> dict[str, float]:
    """SSIP/CIP/AGG fractions: anion-centric over all anions, and cation-centric."""
    out = {}
    an = spec_df[spec_df[C.DEFINITION] == C.ANION_CENTRIC]
    if len(an):
        species = C.ALL_ANIONS if (an[C.SPECIES] == C.ALL_ANIONS).any() else an[C.SPECIES].iloc[0]
        for cls in (C.SSIP, C.CIP, C.AGG):
            out[f"anion_{cls}"] = float(an[(an[C.SPECIES] == species) & (an[C.CLASS] == cls)][C.FRACTION].iloc[0])
    ca = spec_df[spec_df[C.DEFINITION] == C.CATION_CENTRIC]
    for cls in (C.SSIP, C.CIP, C.AGG):
        sel = ca[ca[C.CLASS] == cls]
        if len(sel):
            out[f"cation_{cls}"] = float(sel[C.FRACTION].iloc[0])
    return out


def complex_bonds(manifest: dict, u, frames_stride: int = 1) -> dict:
    """Start-geometry metal-ligand bonds of every pre-assembled complex, followed over the trajectory.

    Returns per complex kind: fraction of (frame, instance) with every bond kept
    (distance below ``BOND_CUTOFF_A`` of the donor element), and for two-metal complexes
    the mean and std of the M...M distance (angstrom) over frames and instances.
    """
    from MDAnalysis.lib.distances import calc_bonds

    out: dict[str, dict] = {}
    elements = u.atoms.elements
    for cx in manifest.get("complexes", []):
        inst = cx["instances"]
        if not inst:
            continue
        bonds = np.array([b for i in inst for b in i["bonds"]], dtype=np.int64)  # (n, 2) metal, donor
        owner = np.array([k for k, i in enumerate(inst) for _ in i["bonds"]])
        limit = np.array([BOND_CUTOFF_A.get(str(elements[d]), 2.6) for d in bonds[:, 1]])
        mm = np.array([i["metals"][:2] for i in inst if len(i["metals"]) >= 2], dtype=np.int64).reshape(-1, 2)
        intact, mm_d, min_kept = [], [], []
        for ts in u.trajectory[::frames_stride]:
            d = calc_bonds(u.atoms.positions[bonds[:, 0]], u.atoms.positions[bonds[:, 1]], box=ts.dimensions)
            ok = d < limit
            per_inst = np.array([ok[owner == k].all() for k in range(len(inst))])
            intact.append(per_inst)
            min_kept.append(ok.mean())
            if mm.size:
                mm_d.append(calc_bonds(u.atoms.positions[mm[:, 0]], u.atoms.positions[mm[:, 1]], box=ts.dimensions))
        intact = np.array(intact)
        row = {"label": cx.get("label", cx["name"]), "instances": len(inst), "frames": int(intact.shape[0]),
               "fraction_intact": float(intact.mean()), "all_intact_every_frame": bool(intact.all()),
               "fraction_bonds_kept": float(np.mean(min_kept))}
        if mm_d:
            arr = np.concatenate(mm_d)
            row.update(mm_mean_A=float(arr.mean()), mm_std_A=float(arr.std()), mm_max_A=float(arr.max()))
        out[cx["name"]] = row
    return out


def system_metrics(name: str, sysdef: System, work: Path) -> dict:
    """Run the analysis of one finished MD run and reduce it to the numbers the checks use."""
    build, md = work / "build", work / "md"
    manifest = json.loads((build / "manifest.json").read_text())
    md_info = json.loads((md / "md.json").read_text())
    overrides: dict = {"cation": f"resname {sysdef.cation}", "transport": {"enabled": False},
                       "residence": {"enabled": False}}
    u = _universe(build, md)
    res = run_analysis(spec_from_manifest(build, md, **overrides), work / "analysis", verbose=False, universe=u)
    shell_A = None
    if sysdef.diluent:
        # diluent molecules with any O/F atom inside the Li+ first shell: its radius is the
        # largest automatic first-shell cutoff of the coordinating partners (ether, anion)
        shell_A = max(info[C.CUTOFF] for p, info in res.cutoffs.items()
                      if p != sysdef.diluent and info[C.CUTOFF] is not None)
        overrides["cutoffs_A"] = {sysdef.diluent: shell_A}
        res = run_analysis(spec_from_manifest(build, md, **overrides), work / "analysis", verbose=False, universe=u)
    meta = res.meta if hasattr(res, "meta") else {}
    coord = res["coordination"].set_index(C.PARTNER)
    n_frames, n_cat = int(meta["n_frames_analysed"]), int(meta["n_cations"])
    m: dict = {
        "system": name, "n_atoms": int(manifest["n_atoms"]), "counts": {s["name"]: s["count"] for s in manifest["species"]},
        "n_cations_analysed": n_cat, "frames": n_frames, "production_ps": md_info["protocol"]["production_ps"],
        "equilibrate_ps": md_info["protocol"]["equilibrate_ps"], "heat_ps": md_info["protocol"]["heat_ps"],
        "platform": md_info.get("platform"), "ns_per_day": md_info.get("ns_per_day"),
        "density_g_cm3": md_info.get("density_production_mean_g_cm3"),
        "cn_donor_atoms_total": float(coord.loc[C.TOTAL, C.CN_DON]),
        "cn_molecules": {p: float(coord.loc[p, C.CN_MOL]) for p in coord.index},
        "cutoffs_A": {p: info[C.CUTOFF] for p, info in res.cutoffs.items()},
        "peaks_A": {p: info[C.PEAK_R] for p, info in res.cutoffs.items()},
        "cn_by_element": donor_element_cn(res["contacts"], np.asarray(u.atoms.elements), n_frames, n_cat),
        "speciation": speciation_fractions(res["speciation"]),
        "diluent_cutoff_A": shell_A,
    }
    ct = res["contacts"]
    m["mean_shell_r_A"] = {p: float(g[C.DIST].mean()) for p, g in ct.groupby(C.PARTNER)}
    if sysdef.diluent:
        m["diluent_donors_by_element"] = donor_element_cn(ct[ct[C.PARTNER] == sysdef.diluent],
                                                          np.asarray(u.atoms.elements), n_frames, n_cat)
    if manifest.get("complexes"):
        m["complexes"] = complex_bonds(manifest, u)
    return m


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    """One table row: ``evaluate(metrics by system) -> (model value text, passed or None)``."""

    id: str
    systems: tuple[str, ...]
    quantity: str
    reference: str
    source: str
    evaluate: Callable[[dict[str, dict]], tuple[str, bool | None]]


def _in(x: float, lo: float, hi: float) -> bool:
    return lo <= x <= hi


def _mg_cn(s: str):
    def f(M):
        cn = M[s]["cn_donor_atoms_total"]
        el = ", ".join(f"{k} {v:.2f}" for k, v in sorted(M[s]["cn_by_element"].items()))
        return f"{cn:.2f} ({el})", abs(cn - 6.0) <= 0.25
    return f


def _peak(s: str, partner: str, lo: float, hi: float):
    def f(M):
        r = M[s]["peaks_A"].get(partner)
        if r is None:
            return "no first-shell peak", False
        mean = M[s].get("mean_shell_r_A", {}).get(partner)
        extra = f" (RDF bin 0.05 A; mean first-shell distance {mean:.2f} A)" if mean is not None else ""
        return f"{r:.2f} A{extra}", _in(r, lo, hi)
    return f


def _intact(s: str, name: str, n_bonds: int):
    def f(M):
        cx = M[s].get("complexes", {}).get(name)
        if not cx:
            return f"no {name} in the system", None
        return (f"{100 * cx['fraction_intact']:.1f} % of (frame, complex) with all {n_bonds} start bonds; "
                f"{100 * cx['fraction_bonds_kept']:.1f} % of bonds kept ({cx['instances']} complex(es), "
                f"{cx['frames']} frames)"), cx["all_intact_every_frame"]
    return f


def _mgmg(s: str, name: str = "Mg2Cl3_THF6"):
    def f(M):
        cx = M[s].get("complexes", {}).get(name)
        if not cx:
            return "no dimer in the system", None
        return f"{cx['mm_mean_A']:.2f} +- {cx['mm_std_A']:.2f} A (max {cx['mm_max_A']:.2f})", _in(cx["mm_mean_A"], 3.1, 3.2)
    return f


def _li_cn_o(s: str):
    def f(M):
        cn = M[s]["cn_by_element"].get("O", 0.0)
        return f"{cn:.2f} O (all donors {M[s]['cn_donor_atoms_total']:.2f})", _in(cn, 4.0, 5.0)
    return f


def _diluent(s: str, dil: str):
    def f(M):
        cn = M[s]["cn_molecules"].get(dil, 0.0)
        el = ", ".join(f"{k} {v:.2f}" for k, v in sorted(M[s].get("diluent_donors_by_element", {}).items()))
        return (f"{cn:.2f} {dil} molecules per Li+ (any O/F within the Li+ shell radius "
                f"{M[s]['diluent_cutoff_A']:.2f} A; donor atoms per Li+: {el or 'n/a'})"), cn < 0.2
    return f


def _cip_agg(s: str):
    def f(M):
        sp = M[s]["speciation"]
        x = sp["anion_CIP"] + sp["anion_AGG"]
        return (f"{100 * x:.0f} % (CIP {100 * sp['anion_CIP']:.0f}, AGG {100 * sp['anion_AGG']:.0f}; "
                f"cation-centric CIP+AGG {100 * (sp['cation_CIP'] + sp['cation_AGG']):.0f} %)"), x >= 0.8
    return f


def _agg_rises(lo: str, hi: str):
    def f(M):
        a, b = M[lo]["speciation"]["anion_AGG"], M[hi]["speciation"]["anion_AGG"]
        return f"AGG {100 * a:.0f} % (1 M) -> {100 * b:.0f} % (4 M)", b > a
    return f


def _dol_vs_dme(dol: str, dme: str):
    def f(M):
        x = M[dol]["speciation"]["anion_CIP"] + M[dol]["speciation"]["anion_AGG"]
        y = M[dme]["speciation"]["anion_CIP"] + M[dme]["speciation"]["anion_AGG"]
        return f"CIP+AGG DOL/TTE {100 * x:.0f} % vs DME/TTE {100 * y:.0f} %", x > y
    return f


MG = "mgcl2_licl_thf_complexes"
MGB = "mgcl2_licl_thf_complexes_bonded"  # same electrolyte, bonded Mg-Cl model (SOURCES.md: Complexes)
CHECKS: list[Check] = [
    Check("mg_thf_cn", (MG,), "Mg2+ CN (O + Cl donor atoms), MgCl2-LiCl/THF", "6 (octahedral)", SCI, _mg_cn(MG)),
    Check("mg_thf_o_peak", (MG,), "Mg-O(THF) first RDF peak", "2.0-2.1 A", SCI, _peak(MG, "THF", 2.0, 2.1)),
    Check("mg_dimer_intact", (MG,), "[Mg2(mu-Cl)3(THF)6]+ intact over the production run",
          "intact (every frame)", SCI, _intact(MG, "Mg2Cl3_THF6", 12)),
    Check("mg_monomer_intact", (MG,), "MgCl(THF)5+ intact over the production run",
          "intact (every frame)", "SCIENCE.md §2 (species of seed 003)", _intact(MG, "MgCl_THF5", 6)),
    Check("mg_dimer_mgmg", (MG,), "Mg...Mg in [Mg2(mu-Cl)3(THF)6]+", "3.1-3.2 A", SCI, _mgmg(MG)),
    Check("mgb_thf_cn", (MGB,), "Mg2+ CN (O + Cl), MgCl2-LiCl/THF, bonded Mg-Cl", "6 (octahedral)", SCI, _mg_cn(MGB)),
    Check("mgb_thf_o_peak", (MGB,), "Mg-O(THF) first RDF peak, bonded Mg-Cl", "2.0-2.1 A", SCI,
          _peak(MGB, "THF", 2.0, 2.1)),
    Check("mgb_dimer_intact", (MGB,), "[Mg2(mu-Cl)3(THF)6]+ intact, bonded Mg-Cl", "intact (every frame)", SCI,
          _intact(MGB, "Mg2Cl3_THF6_bonded", 12)),
    Check("mgb_monomer_intact", (MGB,), "MgCl(THF)5+ intact, bonded Mg-Cl", "intact (every frame)",
          "SCIENCE.md §2 (species of seed 003)", _intact(MGB, "MgCl_THF5_bonded", 6)),
    Check("mgb_dimer_mgmg", (MGB,), "Mg...Mg in [Mg2(mu-Cl)3(THF)6]+, bonded Mg-Cl", "3.1-3.2 A", SCI,
          _mgmg(MGB, "Mg2Cl3_THF6_bonded")),
    Check("mg_dme_cn", ("mg_tfsi_dme",), "Mg2+ CN (donor atoms), 0.5 M Mg(TFSI)2/DME", "6 (octahedral)", SCI,
          _mg_cn("mg_tfsi_dme")),
    Check("mg_dme_o_peak", ("mg_tfsi_dme",), "Mg-O(DME) first RDF peak", "2.0-2.1 A", SCI,
          _peak("mg_tfsi_dme", "DME", 2.0, 2.1)),
    Check("li_dme_o_peak", ("li_fsi_dme_1M",), "Li-O(DME) first RDF peak, 1 M LiFSI/DME", "1.9-2.1 A", SCI,
          _peak("li_fsi_dme_1M", "DME", 1.9, 2.1)),
    Check("li_dme_cn", ("li_fsi_dme_1M",), "Li+ total CN (O atoms), 1 M LiFSI/DME", "4-5", SCI, _li_cn_o("li_fsi_dme_1M")),
    Check("lhce_tte_diluent", ("lhce_fsi_dme_tte",), "TTE in Li+ first shell, LiFSI:DME:TTE 1:1.2:3", "< 0.2 per Li+",
          SCI + "; seed 002", _diluent("lhce_fsi_dme_tte", "TTE")),
    Check("lhce_tte_cip_agg", ("lhce_fsi_dme_tte",), "CIP + AGG (anion-centric), LiFSI:DME:TTE", ">= 80 %",
          SCI + "; seed 002", _cip_agg("lhce_fsi_dme_tte")),
    Check("lhce_btfe_diluent", ("lhce_fsi_dme_btfe",), "BTFE in Li+ first shell, LiFSI:DME:BTFE 1:1.2:3",
          "< 0.2 per Li+", SCI + "; seed 002", _diluent("lhce_fsi_dme_btfe", "BTFE")),
    Check("lhce_btfe_cip_agg", ("lhce_fsi_dme_btfe",), "CIP + AGG (anion-centric), LiFSI:DME:BTFE", ">= 80 %",
          SCI + "; seed 002", _cip_agg("lhce_fsi_dme_btfe")),
    Check("lhce_dol_diluent", ("lhce_fsi_dol_tte",), "TTE in Li+ first shell, LiFSI:DOL:TTE 1:1.2:3", "< 0.2 per Li+",
          SCI + "; seed 002", _diluent("lhce_fsi_dol_tte", "TTE")),
    Check("lhce_dol_cip_agg", ("lhce_fsi_dol_tte",), "CIP + AGG (anion-centric), LiFSI:DOL:TTE", ">= 80 %",
          SCI + "; seed 002", _cip_agg("lhce_fsi_dol_tte")),
    Check("agg_1M_to_4M", ("li_fsi_dme_1M", "li_fsi_dme_4M"), "AGG fraction, 1 M -> 4 M LiFSI/DME", "rises",
          "seed 002 (HCE: more AGG)", _agg_rises("li_fsi_dme_1M", "li_fsi_dme_4M")),
    Check("dol_vs_dme_lhce", ("lhce_fsi_dol_tte", "lhce_fsi_dme_tte"), "CIP + AGG, DOL vs DME in the TTE LHCE",
          "DOL > DME", "seed 002", _dol_vs_dme("lhce_fsi_dol_tte", "lhce_fsi_dme_tte")),
]


def check_rows(metrics: dict[str, dict]) -> list[dict]:
    """One row per check whose systems all have metrics."""
    rows = []
    for c in CHECKS:
        if not all(s in metrics for s in c.systems):
            continue
        value, ok = c.evaluate(metrics)
        first = metrics[c.systems[0]]
        rows.append({"check": c.id, "systems": " + ".join(c.systems), "quantity": c.quantity, "model": value,
                     "reference": c.reference, "source": c.source,
                     "verdict": "n/a" if ok is None else ("pass" if ok else "MISS"),
                     "atoms": " / ".join(str(metrics[s]["n_atoms"]) for s in c.systems),
                     "run_ps": f"{first['heat_ps']:g}+{first['equilibrate_ps']:g}+{first['production_ps']:g}",
                     "frames": first["frames"]})
    return rows


def write_tables(rows: list[dict], out: Path) -> pd.DataFrame:
    """Merge ``rows`` into ``out/validation.csv`` (replacing rows with the same check id) and write a Markdown copy."""
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    csv = out / "validation.csv"
    if csv.exists() and len(table):
        old = pd.read_csv(csv)
        table = pd.concat([old[~old["check"].isin(table["check"])], table], ignore_index=True)
    elif csv.exists():
        table = pd.read_csv(csv)
    order = {c.id: k for k, c in enumerate(CHECKS)}
    table = table.sort_values("check", key=lambda s: s.map(order).fillna(len(order))).reset_index(drop=True)
    table.to_csv(csv, index=False)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    (out / "validation.md").write_text("\n".join(lines) + "\n")
    return table


def sized_recipe(path: Path, atoms: int | None):
    recipe = load_recipe(path)
    if atoms is None:
        return recipe
    return recipe.model_copy(update={"size": recipe.size.model_copy(update={"salt_units": None, "target_atoms": atoms})})


def run_system(name: str, args, protocol) -> dict:
    """build -> md -> analysis -> metrics for one system; each finished step is skipped."""
    sysdef = SYSTEMS[name]
    work = Path(args.workdir) / name
    metrics_path = work / "metrics.json"
    if metrics_path.exists() and not args.reanalyze:
        return json.loads(metrics_path.read_text())
    if not (work / "build" / "manifest.json").exists():
        atoms = None if args.atoms is None else int(round(args.atoms * sysdef.atoms_factor))
        build_system(sized_recipe(ROOT / sysdef.recipe, atoms), work / "build")
    run_md(work / "build", work / "md", protocol)
    m = system_metrics(name, sysdef, work)
    metrics_path.write_text(json.dumps(m, indent=2) + "\n")
    return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    ap.add_argument("--atoms", type=int, default=1000, help="target atoms per system (recipe size replaced)")
    ap.add_argument("--heat-ps", type=float, default=5.0)
    ap.add_argument("--equilibrate-ps", type=float, default=15.0)
    ap.add_argument("--production-ps", type=float, default=40.0)
    ap.add_argument("--frame-ps", type=float, default=0.5, help="trajectory frame interval")
    ap.add_argument("--platform", default="auto")
    ap.add_argument("--reanalyze", action="store_true", help="redo the analysis of finished runs")
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "validation"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    protocol = load_protocol(None, dict(heat_ps=args.heat_ps, equilibrate_ps=args.equilibrate_ps,
                                        production_ps=args.production_ps, report_interval_ps=1.0,
                                        frame_interval_ps=args.frame_ps, checkpoint_interval_ps=5.0,
                                        platform=args.platform))
    metrics: dict[str, dict] = {}
    for p in Path(args.workdir).glob("*/metrics.json"):  # finished systems of earlier invocations
        if p.parent.name in SYSTEMS:
            metrics[p.parent.name] = json.loads(p.read_text())
    table = None
    for name in args.systems:
        print(f"[validation] {name}", file=sys.stderr)
        metrics[name] = run_system(name, args, protocol)
        table = write_tables(check_rows(metrics), Path(args.out))  # after every system: partial runs report
    if table is not None:
        print(table[["check", "model", "reference", "verdict"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
