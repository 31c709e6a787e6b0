"""What every PMF simulation is made of: the window System, the platform, a bare topology.

Shared by the window starts (:mod:`solvmd.pmf.umbrella`), independent windows
(:mod:`solvmd.pmf.window_run`) and replica exchange (:mod:`solvmd.pmf.exchange`).
"""

from __future__ import annotations

import openmm as mm
from openmm import app

from solvmd.pmf import cv as cvmod
from solvmd.pmf.cv import ResolvedCV
from solvmd.pmf.io import read_system
from solvmd.pmf.select import CVSelectionError
from solvmd.pmf_spec import PMFSpec


def choose_platform(name: str | None = None, threads: int | None = None):
    """(Platform, properties): the named one, else CUDA > OpenCL > CPU (mixed precision on GPUs).

    Delegates to :func:`solvmd.md.platforms.choose_platform` (``SOLVMD_PLATFORM``,
    ``SOLVMD_CPU_THREADS``); ``threads`` sets the CPU thread count (parallel windows).
    """
    from solvmd.md.platforms import choose_platform as md_choose

    plat, props = md_choose(name or "auto")
    props = dict(props)
    if plat.getName() == "CPU" and threads:
        props["Threads"] = str(int(threads))
    return plat, props


def window_system(system_xml, spec: PMFSpec, rcv: ResolvedCV, k: float, r0: float) -> mm.System:
    """The MD System without its barostat (unless ``keep_barostat``), plus the umbrella bias."""
    system = read_system(system_xml)
    if not spec.keep_barostat:
        for i in reversed(range(system.getNumForces())):
            if "Barostat" in type(system.getForce(i)).__name__:
                system.removeForce(i)
    try:
        cvmod.add_bias(system, rcv, k, r0)
    except IndexError as e:
        raise CVSelectionError(f"pmf {spec.name}: {e}") from None
    return system


def bare_topology(n_atoms: int) -> app.Topology:
    """A topology of ``n_atoms`` unnamed atoms (the Simulation needs one; nothing reads it here)."""
    top = app.Topology()
    chain = top.addChain()
    for _ in range(n_atoms):
        top.addAtom("X", None, top.addResidue("X", chain))
    return top
