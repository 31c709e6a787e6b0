"""Benchmark (not a test): what each custom nonbonded force costs per MD step of a built system.

    python benchmarks/force_costs.py results/demo_sac_li_fen4/build/system.xml \
        results/demo_sac_li_fen4/md/final.xml --threads 1 --steps 100

For the full System and for the System with each CustomNonbondedForce removed (and with all of
them removed), a fresh CPU Context on the same coordinates takes ``--steps`` Verlet steps of
0.1 fs (tiny, so a System missing its sheet repulsion cannot blow up in the timed steps); the
table gives ms per step, and the cost of a force as the full step minus the step without it.
Rows are timed in ``--blocks`` alternating rounds (median kept), so load from other jobs hits
every row alike. Writes ``benchmarks/results/force_costs_<name>.csv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import openmm as mm
import pandas as pd

from common import RESULTS


def _ms_per_step(xml: str, state: mm.State, drop: list[int], threads: int, steps: int) -> float:
    system = mm.XmlSerializer.deserialize(xml)
    for i in sorted(drop, reverse=True):
        system.removeForce(i)
    integ = mm.VerletIntegrator(1e-4)
    ctx = mm.Context(system, integ, mm.Platform.getPlatformByName("CPU"), {"Threads": str(threads)})
    ctx.setState(state)
    integ.step(5)
    t0 = time.perf_counter()
    integ.step(steps)
    return 1000.0 * (time.perf_counter() - t0) / steps


def _label(force: mm.Force) -> str:
    groups = force.getNumInteractionGroups()
    cut = force.getCutoffDistance()._value
    return f"{type(force).__name__} {cut:g} nm" + (f", {groups} interaction group(s)" if groups else "")


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("system_xml", type=Path)
    ap.add_argument("state_xml", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--name", help="result file suffix (default: the system folder's name)")
    args = ap.parse_args(argv)
    xml = args.system_xml.read_text()
    state = mm.XmlSerializer.deserialize(args.state_xml.read_text())
    system = mm.XmlSerializer.deserialize(xml)
    custom = [i for i, f in enumerate(system.getForces()) if isinstance(f, mm.CustomNonbondedForce)]
    rows = [("full System", [])] + [(f"without force {i} ({_label(system.getForce(i))})", [i]) for i in custom]
    rows.append(("without every CustomNonbondedForce", custom))
    times = {name: [] for name, _ in rows}
    for _ in range(args.blocks):
        for name, drop in rows:
            times[name].append(_ms_per_step(xml, state, drop, args.threads, args.steps))
    full = float(np.median(times["full System"]))
    table = pd.DataFrame([{"variant": name, "ms_per_step": round(float(np.median(times[name])), 2),
                           "saved_ms_per_step": round(full - float(np.median(times[name])), 2),
                           "n_atoms": system.getNumParticles(), "threads": args.threads} for name, _ in rows])
    name = args.name or args.system_xml.resolve().parent.parent.name
    out = RESULTS / f"force_costs_{name}.csv"
    table.to_csv(out, index=False)
    print(table.to_string(index=False))
    print(f"wrote {out}")
    return table


if __name__ == "__main__":
    main()
