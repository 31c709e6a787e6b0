"""Solvation-structure validation: Li+ and Mg2+ electrolytes against docs/science.md §5.

    python benchmarks/validation.py                       # every system, 2 packings, defaults below
    python benchmarks/validation.py --systems li_fsi_dme_1M --max-runs 1   # one run per sitting

Per system and packing k (``--packings``, default 2; packmol seed = the recipe's seed + k,
velocity seed = 2024 + k): build (``systems/<recipe>.yaml`` at ``--atoms``) -> MD
(:func:`solvmd.md.engine.run_md`: minimize, NVT heat 5 ps, NVT anneal ``--anneal-K`` 450 K for
``--anneal-ps`` 200 ps, linear cool-down ``--cool-ps`` 100 ps, NPT equilibration 250 ps, NPT
production 250 ps, 4 fs with HMR) -> analysis (:func:`solvmd.analysis.run_analysis`) ->
``metrics.json`` in ``<workdir>/<system>/packing<k+1>_seed<packmol seed>/``.

The table (``benchmarks/results/validation.{csv,md}``) is rebuilt from the work folder after
every run: one row per check with the mean over the packings and the spread (max - min) between
them as the error bar, the per-packing values, seeds, run length, reference and source. Only
finished, analysed runs with the requested protocol give numbers; a check with any run still
missing says which and how far it got ("unfinished - ... MD in progress (120 of 805 ps)").

Resumable over several sittings: a finished build, MD or analysis is not redone, an
interrupted MD continues from its last checkpoint (``--checkpoint-ps``); rerun the same
command. ``--max-runs N`` starts or continues at most N unfinished runs per sitting,
``--systems`` limits the sitting to some systems, ``--table-only`` just rebuilds the table,
``--reanalyze`` redoes the analysis of finished MD runs. Not a test: CPU-days at full length,
hours on a GPU. Units: distances in angstrom, run lengths in ps, fractions 0-1 in
``metrics.json`` (percent in the table).

Checks (docs/science.md §5):

* Mg2+ in MgCl2-LiCl/THF (pre-assembled MgCl(THF)5+ and [Mg2(mu-Cl)3(THF)6]+): CN = 6,
  Mg-O(THF) first RDF peak 2.0-2.1 A; every dimer intact over the whole production run
  (all 6 Mg-(mu-Cl) and 6 Mg-O bonds of the start geometry kept: Mg-O < 2.6 A,
  Mg-Cl < 3.0 A in every frame), Mg...Mg 3.1-3.2 A; the same intactness for MgCl(THF)5+.
  Each of these five checks runs twice: on the free-ion complexes (``mgcl2_licl_thf_complexes``,
  rows ``mg_*``) and on the bonded Mg-Cl model (``mgcl2_licl_thf_complexes_bonded``, rows ``mgb_*``).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, Run, add_protocol_arguments, annealed_protocol, archived, make_runs,  # noqa: E402
                    read_archived, write_fresh_table,
                    protocol_text, run_status, runs_this_sitting, same_protocol)
from solvmd.analysis import columns as C  # noqa: E402
from solvmd.analysis.spec import spec_from_manifest  # noqa: E402
from solvmd.analysis.workflow import run_analysis  # noqa: E402
from solvmd.assembly.system import build_system  # noqa: E402
from solvmd.io import write_json_atomic  # noqa: E402
from solvmd.md.engine import run_md  # noqa: E402
from solvmd.recipe import load_recipe  # noqa: E402

SCI = "docs/science.md §5"
ARCHIVE = "validation"  # finished runs: benchmarks/results/validation_runs/<system>/<packing>.json
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
        "n_cations_analysed": n_cat, "frames": n_frames, "protocol": md_info["protocol"],
        "run": protocol_text(md_info["protocol"]),
        "seeds": {"packmol": manifest["seeds"]["packmol"], "velocities": md_info["protocol"]["seed"]},
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
    """One table row. ``evaluate(metrics by system, one packing) -> (detail text, value)``; the
    row reports the mean of the values over the packings, their spread (max - min) as the error
    bar, and ``passes(mean)``. A value None means the check does not apply (verdict n/a)."""

    id: str
    systems: tuple[str, ...]
    quantity: str
    unit: str
    reference: str
    source: str
    evaluate: Callable[[dict[str, dict]], tuple[str, float | None]]
    passes: Callable[[float], bool]


def _within(lo: float, hi: float) -> Callable[[float], bool]:
    return lambda x: lo <= x <= hi


def _mg_cn(s: str):
    def f(M):
        cn = M[s]["cn_donor_atoms_total"]
        el = ", ".join(f"{k} {v:.2f}" for k, v in sorted(M[s]["cn_by_element"].items()))
        return f"{cn:.2f} ({el})", cn
    return f


def _peak(s: str, partner: str):
    def f(M):
        r = M[s]["peaks_A"].get(partner)
        if r is None:
            return "no first-shell peak", float("nan")
        mean = M[s].get("mean_shell_r_A", {}).get(partner)
        extra = f" (RDF bin 0.05 A; mean first-shell distance {mean:.2f} A)" if mean is not None else ""
        return f"{r:.2f} A{extra}", r
    return f


def _intact(s: str, name: str, n_bonds: int):
    def f(M):
        cx = M[s].get("complexes", {}).get(name)
        if not cx:
            return f"no {name} in the system", None
        return (f"{100 * cx['fraction_intact']:.1f} % of (frame, complex) with all {n_bonds} start bonds; "
                f"{100 * cx['fraction_bonds_kept']:.1f} % of bonds kept ({cx['instances']} complex(es), "
                f"{cx['frames']} frames)"), 100.0 * cx["fraction_intact"]
    return f


def _mgmg(s: str, name: str = "Mg2Cl3_THF6"):
    def f(M):
        cx = M[s].get("complexes", {}).get(name)
        if not cx:
            return "no dimer in the system", None
        return f"{cx['mm_mean_A']:.2f} +- {cx['mm_std_A']:.2f} A (max {cx['mm_max_A']:.2f})", cx["mm_mean_A"]
    return f


def _li_cn_o(s: str):
    def f(M):
        cn = M[s]["cn_by_element"].get("O", 0.0)
        return f"{cn:.2f} O (all donors {M[s]['cn_donor_atoms_total']:.2f})", cn
    return f


def _diluent(s: str, dil: str):
    def f(M):
        cn = M[s]["cn_molecules"].get(dil, 0.0)
        el = ", ".join(f"{k} {v:.2f}" for k, v in sorted(M[s].get("diluent_donors_by_element", {}).items()))
        return (f"{cn:.2f} {dil} molecules per Li+ (any O/F within the Li+ shell radius "
                f"{M[s]['diluent_cutoff_A']:.2f} A; donor atoms per Li+: {el or 'n/a'})"), cn
    return f


def _cip_agg(s: str):
    def f(M):
        sp = M[s]["speciation"]
        x = sp["anion_CIP"] + sp["anion_AGG"]
        return (f"{100 * x:.0f} % (CIP {100 * sp['anion_CIP']:.0f}, AGG {100 * sp['anion_AGG']:.0f}; "
                f"cation-centric CIP+AGG {100 * (sp['cation_CIP'] + sp['cation_AGG']):.0f} %)"), 100.0 * x
    return f


def _agg_rises(lo: str, hi: str):
    def f(M):
        a, b = M[lo]["speciation"]["anion_AGG"], M[hi]["speciation"]["anion_AGG"]
        return f"AGG {100 * a:.0f} % (1 M) -> {100 * b:.0f} % (4 M)", 100.0 * (b - a)
    return f


def _dol_vs_dme(dol: str, dme: str):
    def f(M):
        x = M[dol]["speciation"]["anion_CIP"] + M[dol]["speciation"]["anion_AGG"]
        y = M[dme]["speciation"]["anion_CIP"] + M[dme]["speciation"]["anion_AGG"]
        return f"CIP+AGG DOL/TTE {100 * x:.0f} % vs DME/TTE {100 * y:.0f} %", 100.0 * (x - y)
    return f


def _check(id, systems, quantity, unit, reference, source, evaluate, passes) -> Check:
    return Check(id, tuple(systems), quantity, unit, reference, source, evaluate, passes)


MG = "mgcl2_licl_thf_complexes"
MGB = "mgcl2_licl_thf_complexes_bonded"  # same electrolyte, bonded Mg-Cl model (SOURCES.md: Complexes)
CN6 = lambda x: abs(x - 6.0) <= 0.25  # noqa: E731
INTACT = lambda x: x == 100.0  # noqa: E731 - every (frame, complex) intact
POSITIVE = lambda x: x > 0  # noqa: E731
SEED2 = SCI + "; seed 002"
CHECKS: list[Check] = [
    _check("mg_thf_cn", [MG], "Mg2+ CN (O + Cl donor atoms), MgCl2-LiCl/THF", "donor atoms", "6 (octahedral)", SCI,
           _mg_cn(MG), CN6),
    _check("mg_thf_o_peak", [MG], "Mg-O(THF) first RDF peak", "A", "2.0-2.1 A", SCI, _peak(MG, "THF"),
           _within(2.0, 2.1)),
    _check("mg_dimer_intact", [MG], "[Mg2(mu-Cl)3(THF)6]+ intact over the production run", "% intact",
           "intact (every frame)", SCI, _intact(MG, "Mg2Cl3_THF6", 12), INTACT),
    _check("mg_monomer_intact", [MG], "MgCl(THF)5+ intact over the production run", "% intact",
           "intact (every frame)", "docs/science.md §2 (species of seed 003)", _intact(MG, "MgCl_THF5", 6), INTACT),
    _check("mg_dimer_mgmg", [MG], "Mg...Mg in [Mg2(mu-Cl)3(THF)6]+", "A", "3.1-3.2 A", SCI, _mgmg(MG),
           _within(3.1, 3.2)),
    _check("mgb_thf_cn", [MGB], "Mg2+ CN (O + Cl), MgCl2-LiCl/THF, bonded Mg-Cl", "donor atoms", "6 (octahedral)",
           SCI, _mg_cn(MGB), CN6),
    _check("mgb_thf_o_peak", [MGB], "Mg-O(THF) first RDF peak, bonded Mg-Cl", "A", "2.0-2.1 A", SCI,
           _peak(MGB, "THF"), _within(2.0, 2.1)),
    _check("mgb_dimer_intact", [MGB], "[Mg2(mu-Cl)3(THF)6]+ intact, bonded Mg-Cl", "% intact",
           "intact (every frame)", SCI, _intact(MGB, "Mg2Cl3_THF6_bonded", 12), INTACT),
    _check("mgb_monomer_intact", [MGB], "MgCl(THF)5+ intact, bonded Mg-Cl", "% intact", "intact (every frame)",
           "docs/science.md §2 (species of seed 003)", _intact(MGB, "MgCl_THF5_bonded", 6), INTACT),
    _check("mgb_dimer_mgmg", [MGB], "Mg...Mg in [Mg2(mu-Cl)3(THF)6]+, bonded Mg-Cl", "A", "3.1-3.2 A", SCI,
           _mgmg(MGB, "Mg2Cl3_THF6_bonded"), _within(3.1, 3.2)),
    _check("mg_dme_cn", ["mg_tfsi_dme"], "Mg2+ CN (donor atoms), 0.5 M Mg(TFSI)2/DME", "donor atoms",
           "6 (octahedral)", SCI, _mg_cn("mg_tfsi_dme"), CN6),
    _check("mg_dme_o_peak", ["mg_tfsi_dme"], "Mg-O(DME) first RDF peak", "A", "2.0-2.1 A", SCI,
           _peak("mg_tfsi_dme", "DME"), _within(2.0, 2.1)),
    _check("li_dme_o_peak", ["li_fsi_dme_1M"], "Li-O(DME) first RDF peak, 1 M LiFSI/DME", "A", "1.9-2.1 A", SCI,
           _peak("li_fsi_dme_1M", "DME"), _within(1.9, 2.1)),
    _check("li_dme_cn", ["li_fsi_dme_1M"], "Li+ total CN (O atoms), 1 M LiFSI/DME", "O atoms", "4-5", SCI,
           _li_cn_o("li_fsi_dme_1M"), _within(4.0, 5.0)),
    _check("lhce_tte_diluent", ["lhce_fsi_dme_tte"], "TTE in Li+ first shell, LiFSI:DME:TTE 1:1.2:3",
           "molecules per Li+", "< 0.2 per Li+", SEED2, _diluent("lhce_fsi_dme_tte", "TTE"), lambda x: x < 0.2),
    _check("lhce_tte_cip_agg", ["lhce_fsi_dme_tte"], "CIP + AGG (anion-centric), LiFSI:DME:TTE", "%", ">= 80 %",
           SEED2, _cip_agg("lhce_fsi_dme_tte"), lambda x: x >= 80.0),
    _check("lhce_btfe_diluent", ["lhce_fsi_dme_btfe"], "BTFE in Li+ first shell, LiFSI:DME:BTFE 1:1.2:3",
           "molecules per Li+", "< 0.2 per Li+", SEED2, _diluent("lhce_fsi_dme_btfe", "BTFE"), lambda x: x < 0.2),
    _check("lhce_btfe_cip_agg", ["lhce_fsi_dme_btfe"], "CIP + AGG (anion-centric), LiFSI:DME:BTFE", "%", ">= 80 %",
           SEED2, _cip_agg("lhce_fsi_dme_btfe"), lambda x: x >= 80.0),
    _check("lhce_dol_diluent", ["lhce_fsi_dol_tte"], "TTE in Li+ first shell, LiFSI:DOL:TTE 1:1.2:3",
           "molecules per Li+", "< 0.2 per Li+", SEED2, _diluent("lhce_fsi_dol_tte", "TTE"), lambda x: x < 0.2),
    _check("lhce_dol_cip_agg", ["lhce_fsi_dol_tte"], "CIP + AGG (anion-centric), LiFSI:DOL:TTE", "%", ">= 80 %",
           SEED2, _cip_agg("lhce_fsi_dol_tte"), lambda x: x >= 80.0),
    _check("agg_1M_to_4M", ["li_fsi_dme_1M", "li_fsi_dme_4M"], "AGG fraction, 1 M -> 4 M LiFSI/DME",
           "percentage points (4 M - 1 M)", "rises", "seed 002 (HCE: more AGG)",
           _agg_rises("li_fsi_dme_1M", "li_fsi_dme_4M"), POSITIVE),
    _check("dol_vs_dme_lhce", ["lhce_fsi_dol_tte", "lhce_fsi_dme_tte"], "CIP + AGG, DOL vs DME in the TTE LHCE",
           "percentage points (DOL - DME)", "DOL > DME", "seed 002",
           _dol_vs_dme("lhce_fsi_dol_tte", "lhce_fsi_dme_tte"), POSITIVE),
]


# --------------------------------------------------------------------------- table


Key = tuple[str, int]  # (system, packing index)


def _seeds(s: str, n: int, metrics: dict[Key, dict]) -> str:
    seeds = [metrics[(s, k)]["seeds"] for k in range(n)]
    return (f"{s}: packmol " + "/".join(str(x["packmol"]) for x in seeds)
            + ", velocities " + "/".join(str(x["velocities"]) for x in seeds))


def check_row(c: Check, n_packings: int, metrics: dict[Key, dict], status: dict[Key, str]) -> dict:
    """One table row from the finished runs only: mean over the packings with the spread
    (max - min) as error bar; while any of its runs is unfinished, its status and no number."""
    row = {"check": c.id, "quantity": c.quantity, "unit": c.unit, "reference": c.reference, "source": c.source,
           "systems": " + ".join(c.systems)}
    keys = [(s, k) for s in c.systems for k in range(n_packings)]
    waiting = [f"{s} packing {k + 1}: {status[(s, k)]}" for s, k in keys if (s, k) not in metrics]
    if waiting:
        return {**row, "model": "unfinished - " + "; ".join(waiting), "verdict": "unfinished"}
    per = [c.evaluate({s: metrics[(s, k)] for s in c.systems}) for k in range(n_packings)]
    values = [v for _, v in per]
    first = [metrics[(c.systems[0], k)] for k in range(n_packings)]
    row.update(
        packings=n_packings,
        seeds="; ".join(_seeds(s, n_packings, metrics) for s in c.systems),
        run_ps=first[0]["run"], atoms=" / ".join(str(metrics[key]["n_atoms"]) for key in keys),
        frames=" / ".join(str(m["frames"]) for m in first),
        detail=" | ".join(f"packing {k + 1}: {text}" for k, (text, _) in enumerate(per)))
    if any(v is None for v in values):
        return {**row, "model": per[0][0], "verdict": "n/a"}
    mean, spread = float(np.mean(values)), float(np.max(values) - np.min(values))
    agree = len({bool(c.passes(v)) for v in values}) == 1
    row.update(value=round(mean, 4), spread=round(spread, 4), values=" / ".join(f"{v:.4g}" for v in values),
               model=f"{mean:.2f} {c.unit} (spread {spread:.2f} over {n_packings} packings)",
               verdict=("pass" if c.passes(mean) else "MISS") + ("" if agree else " (packings disagree)"))
    return row


COLUMNS = ["check", "quantity", "model", "value", "spread", "values", "unit", "reference", "source", "verdict",
           "systems", "packings", "seeds", "run_ps", "atoms", "frames", "detail"]


def write_tables(rows: list[dict], out: Path) -> pd.DataFrame:
    """``out/validation.csv`` and ``validation.md``: every check, in CHECKS order (rebuilt, not merged)."""
    return write_fresh_table(rows, out, "validation", COLUMNS)


# --------------------------------------------------------------------------- runs


def sized_recipe(path: Path, atoms: int | None, packmol_seed: int | None = None):
    """The recipe at ``atoms`` target atoms (None: its own size), packed with ``packmol_seed``."""
    recipe = load_recipe(path)
    update = {}
    if atoms is not None:
        update["size"] = recipe.size.model_copy(update={"salt_units": None, "target_atoms": atoms})
    if packmol_seed is not None:
        update["packing"] = recipe.packing.model_copy(update={"seed": packmol_seed})
    return recipe.model_copy(update=update)


def finished_metrics(run: Run, workdir: Path, protocol, out: Path) -> dict | None:
    """The metrics of a finished, analysed run with this protocol (None otherwise).

    Read from the work folder when it has them (and then archived in git, see
    :func:`common.archived`), else from the archive of an earlier session.
    """
    path = run.folder(workdir) / "metrics.json"
    m = json.loads(path.read_text()) if path.exists() else None
    if m is None or not same_protocol(m["protocol"], protocol):
        return read_archived(out, run, ARCHIVE, protocol)
    write_json_atomic(archived(out, run, ARCHIVE), m)
    return m


def run_one(run: Run, args, protocol) -> dict:
    """build -> MD (resumed from its checkpoint) -> analysis -> metrics.json for one packing."""
    sysdef, work = SYSTEMS[run.system], run.folder(args.workdir)
    if not (work / "build" / "manifest.json").exists():
        atoms = None if args.atoms is None else int(round(args.atoms * sysdef.atoms_factor))
        build_system(sized_recipe(ROOT / sysdef.recipe, atoms, run.packmol_seed), work / "build")
    run_md(work / "build", work / "md", run.protocol(protocol))
    m = system_metrics(run.system, sysdef, work)
    write_json_atomic(work / "metrics.json", m)
    return m


def all_runs(systems: list[str], n_packings: int, protocol) -> list[Run]:
    seeds = {s: load_recipe(ROOT / SYSTEMS[s].recipe).packing.seed for s in systems}
    return make_runs(seeds, n_packings, protocol.seed)


def table_from_workdir(args, protocol) -> pd.DataFrame:
    """The validation table from whatever has finished under ``--workdir`` (all systems)."""
    metrics, status = {}, {}
    for run in all_runs(list(SYSTEMS), args.packings, protocol):
        m = finished_metrics(run, Path(args.workdir), protocol, Path(args.out))
        if m is not None:
            metrics[(run.system, run.k)] = m
        else:
            status[(run.system, run.k)] = run_status(run.folder(args.workdir), protocol)
    return write_tables([check_row(c, args.packings, metrics, status) for c in CHECKS], Path(args.out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    ap.add_argument("--atoms", type=int, default=3000, help="target atoms per system (recipe size replaced)")
    add_protocol_arguments(ap, equilibrate_ps=250.0, production_ps=250.0, frame_ps=0.5, checkpoint_ps=10.0,
                           packings=2)
    ap.add_argument("--reanalyze", action="store_true", help="redo the analysis of finished MD runs")
    ap.add_argument("--workdir", default=str(ROOT / "results" / "benchmarks" / "validation"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    protocol = annealed_protocol(args)
    runs = all_runs(args.systems, args.packings, protocol)
    todo = [r for r in runs if args.reanalyze or finished_metrics(r, Path(args.workdir), protocol, Path(args.out)) is None]
    if args.reanalyze:  # analysis only: finished MD runs, no new MD
        todo = [r for r in todo if (r.folder(args.workdir) / "md" / "md.json").exists()]
    for run in [] if args.table_only else runs_this_sitting(todo, args.max_runs):
        print(f"[validation] {run.system} packing {run.k + 1} (packmol seed {run.packmol_seed})", file=sys.stderr)
        run_one(run, args, protocol)
        table_from_workdir(args, protocol)  # after every run: a partial sitting still reports
    table = table_from_workdir(args, protocol)
    print(table[["check", "model", "reference", "verdict"]].to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
