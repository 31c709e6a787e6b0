"""Speed of solvmd's speciation analysis vs the `solvation-analysis` package (not a test).

    python benchmarks/analysis_speed.py                    # synthetic 13,800-atom, 500-frame LiFSI/DME
    python benchmarks/analysis_speed.py --topology T --trajectory X   # any trajectory with LI/FSI/DME

Both tools get the same trajectory, the same donor selections, the same cutoffs (solvmd's
automatic ones, handed to solvation-analysis as `radii`) and the same RDF range and bins,
and compute the same quantities: cation-partner RDFs, coordination numbers (molecules),
pairing fractions, the shell census, ion networks/clusters, and the anion-centric
SSIP/CIP/AGG split (for solvation-analysis from its `solvation_data` table). Each tool is
timed once (wall clock, trajectory reading included, Universe construction excluded).
The numbers are compared and the maximum difference printed.

Needs `pip install solvation_analysis` (benchmark only; solvmd does not depend on it).
The synthetic trajectory is a lattice-based structure generator (tests/synthetic.py,
lattice_electrolyte), not MD: realistic amounts of first-shell structure, exchange and
aggregation for timing purposes, not physics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")

CATION = "resname LI"
PARTNERS = {"DME": "resname DME and element O", "FSI": "resname FSI and (element O or element N)"}


def make_data(workdir: Path, n_salt: int, n_frames: int) -> tuple[Path, Path, dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the synthetic generator is test data
    from synthetic import lattice_electrolyte, write_trajectory

    top, traj, info_path = workdir / "system.pdb", workdir / "traj.xtc", workdir / "system.json"
    if top.exists() and traj.exists() and info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("n_frames") == n_frames and info.get("residues", {}).get("LI") == n_salt:
            return top, traj, info
    workdir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    u, info = lattice_electrolyte(n_salt=n_salt, n_frames=n_frames, dt_ps=2.0, exchange_prob=0.01)
    write_trajectory(u, top, traj)
    info["generation_s"] = round(time.perf_counter() - t, 1)
    info_path.write_text(json.dumps(info, indent=2))
    return top, traj, info


def universe(top: Path, traj: Path):
    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(top), str(traj))
        u.trajectory[-1]  # build/load XTC offsets before timing
        u.trajectory[0]
    return u


def run_solvmd(top, traj, r_max, bin_A, residence: bool, u=None, cation=CATION, partners=PARTNERS, anion="FSI"):
    from solvmd.analysis import analyze, spec_from_dict

    spec = spec_from_dict(
        dict(topology=str(top), trajectory=str(traj), cation=cation, partners=partners, anions=[anion],
             rdf={"r_max_A": r_max, "bin_A": bin_A}, residence={"enabled": residence},
             transport={"enabled": False})  # fmt: skip
    )
    u = universe(top, traj) if u is None else u
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        res = analyze(spec, verbose=False, universe=u)
        wall = time.perf_counter() - t
    return res, wall


def run_solvation_analysis(top, traj, radii, r_max, bin_A, residence: bool, u=None, cation=CATION, partners=PARTNERS,
                           anion="FSI"):
    from solvation_analysis.solute import Solute

    u = universe(top, traj) if u is None else u
    li = u.select_atoms(cation)
    solvents = {n: u.select_atoms(s) for n, s in partners.items()}
    classes = ["pairing", "coordination", "speciation", "networking"] + (["residence"] if residence else [])
    nbins = int(round(r_max / bin_A))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        solute = Solute.from_atoms(
            li, solvents, radii=dict(radii), rdf_init_kwargs={"range": (0.0, r_max), "nbins": nbins, "norm": "rdf"},
            analysis_classes=classes, networking_solvents=anion,
        )  # fmt: skip
        solute.run()
        # anion-centric SSIP/CIP/AGG from its contact table (not a built-in of the package)
        sd = solute.solvation_data.reset_index()
        fsi = sd[sd["solvent"] == anion]
        n_touch = fsi.groupby(["frame", "solvent_ix"])["solute_ix"].nunique()
        n_an = solvents[anion].n_residues * solute.n_frames
        anion = {"SSIP": 1 - len(n_touch) / n_an, "CIP": (n_touch == 1).sum() / n_an, "AGG": (n_touch >= 2).sum() / n_an}
        wall = time.perf_counter() - t
    return solute, anion, wall


def compare(res, solute, anion_sa, partners=PARTNERS) -> list[tuple[str, float, float]]:
    from solvmd.analysis import columns as C

    rows = []
    cn = res["coordination"].set_index(C.PARTNER)
    for p in partners:
        rows.append((f"CN molecules {p}", cn.loc[p, C.CN_MOL], solute.coordination.coordination_numbers[p]))
        rows.append((f"pairing fraction {p}", cn.loc[p, C.FRAC_ANY], solute.pairing.solvent_pairing[p]))
    # shell census: top compositions
    sa = solute.speciation.speciation_fraction
    sa_map = {" ".join(f"{p}:{int(r[p])}" for p in partners if r[p]) or C.EMPTY_SHELL: r["fraction"] for _, r in sa.iterrows()}
    sa_map[C.EMPTY_SHELL] = 1.0 - sum(sa_map.values())  # solvation-analysis lists no empty shells
    sh = res["shells"]
    for comp, frac in list(zip(sh[C.COMPOSITION], sh[C.FRACTION]))[:6]:
        rows.append((f"shell '{comp}'", frac, sa_map.get(comp, 0.0)))
    rows.append(("shell census, max |diff| over all compositions", 0.0,
                 max(abs(f - sa_map.get(c, 0.0)) for c, f in zip(sh[C.COMPOSITION], sh[C.FRACTION]))))  # fmt: skip
    # anion-centric
    sp = res["speciation"]
    a = sp[sp[C.DEFINITION] == C.ANION_CENTRIC].set_index(C.CLASS)[C.FRACTION]
    for k in ("SSIP", "CIP", "AGG"):
        rows.append((f"anion-centric {k}", a[k], anion_sa[k]))
    # networks: solvation-analysis counts networks containing >= 1 cation and >= 1 anion
    cl = res["clusters"]
    both = cl[(cl[C.N_CATIONS] > 0) & (cl[C.N_ANIONS] > 0)]
    ours_sizes = both.groupby(C.CLUSTER_SIZE)[C.MEAN_CLUSTERS].sum()
    sa_sizes = solute.networking.network_sizes.mean()
    for size in sorted(set(ours_sizes.index) | set(int(s) for s in sa_sizes.index))[:5]:
        rows.append((f"networks of {size} ions per frame", ours_sizes.get(size, 0.0), float(sa_sizes.get(size, 0.0))))
    status = solute.networking.solute_status
    c = sp[sp[C.DEFINITION] == C.CATION_CENTRIC].set_index(C.CLASS)[C.FRACTION]
    rows.append(("cation-centric CIP (paired)", c["CIP"], status["paired"]))
    n_li = res.meta["n_cations"]
    networks_per_cation = both[both[C.CLUSTER_SIZE] > 2][C.MEAN_CLUSTERS].sum() / n_li
    rows.append(("networks (>2 ions) per cation [s-a 'networked']", networks_per_cation, status["networked"]))
    rows.append(("cation-centric SSIP [s-a 'isolated' = 1 - paired - networked]", 1 - c["CIP"] - networks_per_cation,
                 status["isolated"]))  # fmt: skip
    # RDF (same bins, norm='rdf')
    rdf = res["rdf"]
    for p in partners:
        bins, g_sa = solute.rdf_data[solute.solute_name][p]
        g = rdf[(rdf[C.PARTNER] == p) & (rdf[C.DONOR_TYPE] == C.ALL_DONORS)][C.G].to_numpy()
        rows.append((f"RDF {p}: max |g - g_sa| (peak g {g.max():.1f})", 0.0, float(np.abs(g - g_sa).max())))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "solvmd_bench")
    ap.add_argument("--topology", type=Path)
    ap.add_argument("--trajectory", type=Path)
    ap.add_argument("--salt", type=int, default=100)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--r-max", type=float, default=8.0)
    ap.add_argument("--bin", type=float, default=0.05)
    ap.add_argument("--residence", action="store_true", help="also time residence times in both tools")
    ap.add_argument("--skip-sa", action="store_true", help="time solvmd only")
    args = ap.parse_args(argv)

    if args.topology and args.trajectory:
        top, traj, info = args.topology, args.trajectory, {"source": "user trajectory"}
    else:
        top, traj, info = make_data(args.workdir, args.salt, args.frames)
    u = universe(top, traj)
    n_frames, n_atoms = u.trajectory.n_frames, u.atoms.n_atoms
    del u
    print(f"trajectory: {traj} ({n_atoms} atoms, {n_frames} frames); {info.get('note', '')}")

    res, t_ours = run_solvmd(top, traj, args.r_max, args.bin, args.residence)
    cutoffs = {p: res.cutoffs[p]["cutoff_A"] for p in PARTNERS}
    print(f"cutoffs (solvmd automatic, used by both): {cutoffs}")
    print(f"solvmd:             {t_ours:7.2f} s  = {n_frames / t_ours:7.1f} frames/s")
    out = {"n_atoms": n_atoms, "n_frames": n_frames, "cutoffs_A": cutoffs, "solvmd_s": t_ours,
           "solvmd_fps": n_frames / t_ours, "data": info, "host": platform.node(), "python": sys.version.split()[0],
           "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])}  # fmt: skip
    if not args.skip_sa:
        import solvation_analysis

        solute, anion_sa, t_sa = run_solvation_analysis(top, traj, cutoffs, args.r_max, args.bin, args.residence)
        print(f"solvation-analysis: {t_sa:7.2f} s  = {n_frames / t_sa:7.1f} frames/s  (v{solvation_analysis.__version__})")
        print(f"speed-up: {t_sa / t_ours:.1f}x")
        rows = compare(res, solute, anion_sa)
        print(f"\n{'quantity':58s} {'solvmd':>10s} {'solv-anal':>10s} {'|diff|':>8s}")
        for name, a, b in rows:
            print(f"{name:58s} {a:10.4f} {b:10.4f} {abs(a - b):8.4f}")
        if args.residence:
            r = res["residence"].set_index("partner")
            for p in PARTNERS:
                print(f"residence {p}: solvmd tau_1e {r.loc[p, 'tau_1e_ps']:.1f} ps (plateau-removed, interpolated); "
                      f"solvation-analysis {solute.residence.residence_times_cutoff[p]} frames (first frame below 1/e)")  # fmt: skip
        out.update({"solvation_analysis_s": t_sa, "solvation_analysis_fps": n_frames / t_sa, "speedup": t_sa / t_ours,
                    "max_abs_diff": max(abs(a - b) for _, a, b in rows),
                    "comparison": [{"quantity": n, "solvmd": a, "solvation_analysis": b} for n, a, b in rows]})  # fmt: skip
        print(f"max |diff| over all compared quantities: {out['max_abs_diff']:.2e}")
        sp = res["speciation"]
        c = sp[sp["definition"] == "cation-centric (network)"].set_index("class")["fraction"]
        print("note: solvation-analysis 'networked' = number of networks (>2 ions) per cation, not the fraction of "
              f"cations in them; solvmd cation-centric fractions: SSIP {c['SSIP']:.3f} CIP {c['CIP']:.3f} "
              f"AGG {c['AGG']:.3f} vs solvation-analysis isolated/paired/networked "
              f"{solute.networking.solute_status['isolated']:.3f}/{solute.networking.solute_status['paired']:.3f}/"
              f"{solute.networking.solute_status['networked']:.3f}")  # fmt: skip
    (args.workdir).mkdir(parents=True, exist_ok=True)
    (args.workdir / "benchmark_result.json").write_text(json.dumps(out, indent=2, default=float))
    print(f"written {args.workdir / 'benchmark_result.json'}")


if __name__ == "__main__":
    main()
