"""Transport benchmark (issue 27): t+ and ionicity from the validation campaign, and the peer check.

    python benchmarks/transport.py                         # campaign runs in /work/campaign/validation
    python benchmarks/transport.py --include-running       # also the frames written so far of running ones
    python benchmarks/transport.py --peer DIR --peer-run li_fsi_dme_1M/packing1_seed20240601

Campaign: per system (1 M and 4 M LiFSI/DME, the LHCEs) and packing, ``solvmd analyze`` of the
production trajectory (transport only), its transport table archived in
``benchmarks/results/transport_runs/<system>/<packing>.csv``; packings combined with
:func:`solvmd.analysis.transport.combine_runs` (jackknife over packings) where >= 2 are done,
else the block errors of the one run. Writes ``benchmarks/results/transport.{csv,md}``: t+ in
both frames with its error, ideal t+, ionicity, sigma, the run length, the fit window and the
regime check (a run too short for the diffusive regime says so).

Peer check (``--peer DIR``): ``ConductivityEinstein`` of MDAnalysis transport-analysis, from a
checkout DIR of its pull-request branch (not on PyPI; DIR/transport_analysis/conductivity.py),
run on the same trajectory unwrapped with MDAnalysis' NoJump, next to solvmd on the wrapped
trajectory: L(t) curves point by point, the fitted L over the same frames, sigma and t+
(barycentric). Writes ``benchmarks/results/transport_peer.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, write_fresh_table  # noqa: E402

from solvmd.analysis import analyze, spec_from_manifest  # noqa: E402
from solvmd.analysis import columns as C  # noqa: E402
from solvmd.analysis.transport import N_A, combine_runs  # noqa: E402
from solvmd.units import BOLTZMANN_J_K, ELEMENTARY_CHARGE_C  # noqa: E402

N_BLOCKS = 5  # --n-blocks
SYSTEMS = {  # campaign system -> label
    "li_fsi_dme_1M": "1 M LiFSI/DME",
    "li_fsi_dme_4M": "4 M LiFSI/DME",
    "lhce_fsi_dme_tte": "LHCE LiFSI:DME:TTE 1:1.2:3",
    "lhce_fsi_dme_btfe": "LHCE LiFSI:DME:BTFE 1:1.2:3",
}
COLUMNS = ["system", "label", "packings", "status", "run_ps", "n_Li", "n_anion", "t_plus_solvent", "t_plus_solvent_err",
           "t_plus_barycentric", "t_plus_barycentric_err", "t_plus_ideal", "t_plus_ideal_err", "ionicity",
           "ionicity_err", "sigma_mS_cm", "sigma_err_mS_cm", "D_Li_m2_s", "fit_window_ps", "diffusive",
           "error_method", "note"]  # fmt: skip


def _spec(folder: Path, running: bool):
    build, md = folder / "build", folder / "md"
    kw = {"residence": {"enabled": False}, "transport": {"n_blocks": N_BLOCKS}}
    if running:
        proto = json.loads((md / "protocol.json").read_text())
        kw["timestep_ps"] = proto["frame_interval_ps"]
    return spec_from_manifest(build, md, **kw)


def analyse_packing(folder: Path, running: bool) -> tuple[pd.DataFrame, float]:
    """The transport table of one packing's production trajectory and its length (ps)."""
    spec = _spec(folder, running)
    if running:  # the last frame may be half written: leave it out
        import MDAnalysis as mda

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = mda.Universe(str(spec.topology), str(spec.trajectory)).trajectory.n_frames
        spec = spec.model_copy(update={"frames": spec.frames.model_copy(update={"stop": n - 1})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze(spec, verbose=False)
    return res["transport"], float(res.meta["analysed_time_ps"])


def _row(tb: pd.DataFrame, key: str, col: str, err: str, frame=None, species=None):
    sel = tb[C.METHOD] == key
    if frame is not None:
        sel &= tb[C.REF_FRAME] == frame
    if species is not None:
        sel &= tb[C.SPECIES] == species
    r = tb[sel]
    return (float(r[col].iloc[0]), float(r[err].iloc[0])) if len(r) else (np.nan, np.nan)


def summary_row(system: str, tb: pd.DataFrame, packings: int, status: str, run_ps: float) -> dict:
    cation = "LI"
    self_rows = tb[tb[C.METHOD] == C.MSD_SELF].set_index(C.SPECIES)
    anions = [s for s in self_rows.index if self_rows.loc[s, C.CHARGE] < 0]
    ts, tse = _row(tb, C.TRANSFERENCE_ROW, C.TRANSFERENCE, C.TRANSFERENCE_STD, C.SOLVENT_FIXED, cation)
    tb_, tbe = _row(tb, C.TRANSFERENCE_ROW, C.TRANSFERENCE, C.TRANSFERENCE_STD, C.BARYCENTRIC, cation)
    ti, tie = _row(tb, C.TRANSFERENCE_ROW, C.TRANSFERENCE_IDEAL, C.TRANSFERENCE_IDEAL_STD, C.BARYCENTRIC, cation)
    ion, ione = _row(tb, C.IONICITY_ROW, C.IONICITY, C.IONICITY_STD)
    sig, sige = _row(tb, C.EINSTEIN_HELFAND, C.SIGMA, C.SIGMA_STD)
    eh = tb[tb[C.METHOD] == C.EINSTEIN_HELFAND]
    diffusive = bool(eh[C.DIFFUSIVE].iloc[0]) if len(eh) else False
    warn = eh[C.WARNING].iloc[0] if len(eh) else ""
    r = lambda x, n=3: round(x, n) if np.isfinite(x) else np.nan  # noqa: E731
    return {"system": system, "label": SYSTEMS.get(system, system), "packings": packings, "status": status,
            "run_ps": r(run_ps, 1), "n_Li": int(self_rows.loc[cation, C.N_MOLECULES]),
            "n_anion": int(sum(self_rows.loc[a, C.N_MOLECULES] for a in anions)),
            "t_plus_solvent": r(ts), "t_plus_solvent_err": r(tse), "t_plus_barycentric": r(tb_),
            "t_plus_barycentric_err": r(tbe), "t_plus_ideal": r(ti), "t_plus_ideal_err": r(tie), "ionicity": r(ion),
            "ionicity_err": r(ione), "sigma_mS_cm": r(10 * sig), "sigma_err_mS_cm": r(10 * sige),
            "D_Li_m2_s": f"{self_rows.loc[cation, C.D]:.3g}",
            "fit_window_ps": f"{eh[C.FIT_START].iloc[0]:.3g}-{eh[C.FIT_STOP].iloc[0]:.3g}" if len(eh) else "",
            "diffusive": diffusive, "error_method": eh[C.ERROR_METHOD].iloc[0] if len(eh) else "",
            "note": warn.split(";")[0][:160] if warn else ""}  # fmt: skip


def campaign(args) -> None:
    rows = []
    archive = RESULTS / "transport_runs"
    for system in args.systems:
        folders = sorted((args.workdir / system).glob("packing*")) if (args.workdir / system).is_dir() else []
        tables, lengths, states = [], [], []
        for f in folders:
            done = (f / "md" / "md.json").is_file()
            if not done and not (args.include_running and (f / "md" / "traj.xtc").is_file()):
                states.append(f"{f.name}: running")
                continue
            t0 = time.time()
            try:
                tb, run_ps = analyse_packing(f, running=not done)
            except Exception as e:  # noqa: BLE001 - a run still being written may not read yet
                states.append(f"{f.name}: not readable ({type(e).__name__}: {str(e)[:80]})")
                continue
            (archive / system).mkdir(parents=True, exist_ok=True)
            tb.to_csv(archive / system / f"{f.name}{'' if done else '.partial'}.csv", index=False)
            tables.append(tb)
            lengths.append(run_ps)
            states.append(f"{f.name}: {'done' if done else f'running, first {run_ps:.0f} ps'}"
                          f" ({time.time() - t0:.0f} s analysis)")
        if not tables:
            rows.append({"system": system, "label": SYSTEMS.get(system, system), "packings": 0,
                         "status": "; ".join(states) or "no runs"})
            continue
        tb = combine_runs(tables) if len(tables) >= 2 else tables[0]
        rows.append(summary_row(system, tb, len(tables), "; ".join(states), float(np.mean(lengths))))
        print(rows[-1], flush=True)
    write_fresh_table(rows, RESULTS, "transport", COLUMNS)
    print((RESULTS / "transport.md").read_text())


# --------------------------------------------------------------------------- peer check


def peer(args) -> None:
    """transport-analysis ConductivityEinstein (PR branch) vs solvmd on one trajectory."""
    import MDAnalysis as mda
    from MDAnalysis.transformations.nojump import NoJump

    sys.path.insert(0, str(Path(args.peer)))
    from transport_analysis.conductivity import ConductivityEinstein as _CE

    class ConductivityEinstein(_CE):
        # the branch's _parse_dim_type returns the list of axes where _prepare needs their number
        # (np.zeros((n_frames, [0, 1, 2])) raises TypeError): give the number, for 'xyz' only
        _parse_dim_type = staticmethod(lambda dim_str: (3, 3))

    folder = args.workdir / args.peer_run
    spec = _spec(folder, running=not (folder / "md" / "md.json").is_file())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(spec.topology), str(spec.trajectory))
        n = u.trajectory.n_frames - (0 if (folder / "md" / "md.json").is_file() else 1)
        spec = spec.model_copy(update={"frames": spec.frames.model_copy(update={"stop": n})})
        dt = float(spec.timestep_ps)
        a, b = n // 10, n // 2 + 1  # frames a..b-1: lags 0.1..0.5 of the run
        tr = spec.transport.model_copy(update={"window": "fraction", "n_blocks": 1, "fit_start_frac": a / (n - 1),
                                               "fit_stop_frac": (b - 1) / (n - 1)})  # fmt: skip
        spec = spec.model_copy(update={"transport": tr})
        res = analyze(spec, verbose=False)
        # the peer needs unwrapped coordinates: NoJump, written out, read back
        tmp = Path(tempfile.mkdtemp())
        u.trajectory.add_transformations(NoJump())
        with mda.Writer(str(tmp / "unwrapped.xtc"), u.atoms.n_atoms) as w:
            for ts in u.trajectory[:n]:
                ts.time = ts.frame * dt
                w.write(u.atoms)
        uu = mda.Universe(str(spec.topology), str(tmp / "unwrapped.xtc"))
        cat, an = uu.select_atoms("resname LI"), uu.select_atoms("resname FSI")
        T = spec.temperature_K
        t0 = time.time()
        ce = ConductivityEinstein(uu.atoms, cat, an, temp_avg=T, linear_fit_window=(a, b)).run()
        t_peer = time.time() - t0
    F2 = (ELEMENTARY_CHARGE_C * N_A) ** 2
    tb, curves = res["transport"], res["msd"]
    V = float(tb[C.VOLUME].iloc[0])
    lines = ["| quantity | solvmd | transport-analysis PR | relative difference |", "|---|---|---|---|"]
    peer_series = {("LI", "LI"): ce._lij_cation_cation, ("LI", "FSI"): ce._lij_cation_anion,
                   ("FSI", "FSI"): ce._lij_anion_anion}  # S/m-scaled per time: sigma_ij(t) = e^2 MSD/(6 kB T V)
    peer_fit = {("LI", "LI"): ce.lij_cation_cation, ("LI", "FSI"): ce.lij_cation_anion,
                ("FSI", "FSI"): ce.lij_anion_anion}
    for (i, j), series in peer_series.items():
        c = curves[(curves[C.CURVE] == "collective") & (curves[C.REF_FRAME] == C.BARYCENTRIC)
                   & (curves[C.SPECIES] == i) & (curves[C.SPECIES_J] == j)][C.MSD].to_numpy()  # fmt: skip
        ours = ELEMENTARY_CHARGE_C**2 * c * 1e-20 / (6 * BOLTZMANN_J_K * T * V * 1e-30)  # same units: S ps/m... per lag
        k = np.arange(1, b)
        rel = np.max(np.abs(series[k] * 1e-12 - ours[k]) / np.max(np.abs(ours[k])))
        vcorr = series * ce._volumes / V  # undo its division of the lag-k value by the volume of frame k
        rel_v = np.max(np.abs(vcorr[k] * 1e-12 - ours[k]) / np.max(np.abs(ours[k])))
        tt = np.arange(n) * dt
        L_peer_v = np.polyfit(tt[a:b], vcorr[a:b], 1)[0] / F2
        L_ours = float(tb[(tb[C.METHOD] == C.ONSAGER) & (tb[C.REF_FRAME] == C.BARYCENTRIC) & (tb[C.SPECIES] == i)
                          & (tb[C.SPECIES_J] == j)][C.L].iloc[0])  # fmt: skip
        L_peer = peer_fit[(i, j)] / F2
        lines.append(f"| L_{i},{j} (mol² J⁻¹ m⁻¹ s⁻¹), frames {a}..{b - 1} | {L_ours:.4g} | {L_peer:.4g} | "
                     f"{(L_peer - L_ours) / abs(L_ours):+.1e} |")
        lines.append(f"| ⟨ΔR_{i}·ΔR_{j}⟩(t) curve, lags 1..{b - 1}, max deviation / max value | | | {rel:.1e} |")
        lines.append(f"| L_{i},{j} with the peer's per-frame volume replaced by the mean volume | {L_ours:.4g} | "
                     f"{L_peer_v:.4g} | {(L_peer_v - L_ours) / abs(L_ours):+.1e} (curve: {rel_v:.1e}) |")
    sig = float(tb[(tb[C.METHOD] == C.ONSAGER_SIGMA) & (tb[C.REF_FRAME] == C.BARYCENTRIC)][C.SIGMA].iloc[0])
    lines.append(f"| sigma (S/m) | {sig:.4g} | {ce.results.conductivity:.4g} | "
                 f"{(ce.results.conductivity - sig) / abs(sig):+.1e} |")
    tp = float(tb[(tb[C.METHOD] == C.TRANSFERENCE_ROW) & (tb[C.REF_FRAME] == C.BARYCENTRIC)
                  & (tb[C.SPECIES] == "LI")][C.TRANSFERENCE].iloc[0])  # fmt: skip
    lines.append(f"| t+ (barycentric) | {tp:.4g} | {ce.results.cation_transference:.4g} | "
                 f"{ce.results.cation_transference - tp:+.1e} (absolute) |")
    head = (f"# Peer check: solvmd vs transport-analysis ConductivityEinstein (PR branch)\n\n"
            f"Run `{args.peer_run}`: {n} frames every {dt:g} ps ({(n - 1) * dt:g} ps), the same fit over frames "
            f"{a}..{b - 1}; solvmd on the wrapped trajectory (its own unwrapping, mean volume), the peer on the "
            f"same trajectory unwrapped by MDAnalysis NoJump (per-frame volume). Peer run time {t_peer:.1f} s.\n\n")
    text = head + "\n".join(lines) + "\n"
    (RESULTS / "transport_peer.md").write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/work/campaign/validation"))
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    p.add_argument("--include-running", action="store_true", help="analyse the frames written so far of running MD")
    p.add_argument("--n-blocks", type=int, default=5, help="time blocks per run for the errors (default 5)")
    p.add_argument("--peer", help="checkout of the transport-analysis PR branch (has transport_analysis/conductivity.py)")
    p.add_argument("--peer-run", default="li_fsi_dme_1M/packing1_seed20240601", help="packing folder under --workdir")
    args = p.parse_args()
    global N_BLOCKS
    N_BLOCKS = args.n_blocks
    if args.peer:
        peer(args)
    else:
        campaign(args)


if __name__ == "__main__":
    main()
