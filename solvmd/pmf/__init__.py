"""PMF / desolvation barriers: umbrella sampling in OpenMM, MBAR (pymbar 4), barriers with errors.

Steps (each a plain function taking paths, one Snakemake rule each)::

    spec = load_spec("systems/x.yaml", name="li_dme")       # the recipe's pmf: block
    prepare_windows(build/system.xml, md/final.xml, spec, out, topology=build/system.pdb)
    for k in range(n_windows(spec, out)):                     # independent jobs (+ added windows)
        run_window(build/system.xml, out/init/window_<k>.xml, spec, k, out)
    estimate_pmf(out, spec)                                   # pmf.csv, barrier.json, *.png
    compare_barriers([.../barrier.json, ...], "barriers.csv", "barriers.png")

``out`` is ``results/<system>/pmf/<cv name>/``. See :mod:`solvmd.pmf_spec` for the spec,
:mod:`solvmd.pmf.estimate` for the volume-term conventions in ``pmf.csv``.
"""

from solvmd.pmf.barrier import find_barrier, read_barrier
from solvmd.pmf.compare import collect_barriers, compare_barriers
from solvmd.pmf.estimate import PMFCoverageError, PMFOverlapError, estimate_pmf, load_windows
from solvmd.pmf_spec import PMFSpec, PMFSpecError, load_spec, load_specs
from solvmd.pmf.select import CVSelectionError, resolve_cv
from solvmd.pmf.umbrella import prepare_windows, run_window, run_windows
from solvmd.pmf.windows import PMFWarning, check_windows, n_windows, predicted_overlap, window_centers, window_table

__all__ = [
    "PMFSpec", "PMFSpecError", "load_spec", "load_specs",
    "CVSelectionError", "PMFWarning", "check_windows", "predicted_overlap", "window_centers", "n_windows", "window_table",
    "resolve_cv", "prepare_windows", "run_window", "run_windows",
    "estimate_pmf", "load_windows", "PMFOverlapError", "PMFCoverageError",
    "find_barrier", "read_barrier", "compare_barriers", "collect_barriers",
]
