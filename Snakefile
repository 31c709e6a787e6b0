# solvmd workflow: thin rules calling `solvmd <verb>`; no science lives here.
#   snakemake --cores 2 --configfile config/demo.yaml
#   snakemake --profile profiles/workstation --configfile config/paper.yaml   # one MD job per GPU
#   snakemake --profile profiles/slurm --configfile config/paper.yaml         # SLURM cluster
#   snakemake --configfile config/paper.yaml --report report.html             # figures + tables
import os
import re
from pathlib import Path

import yaml
from snakemake.utils import validate

configfile: "config/demo.yaml"
from solvmd.errors import empty_schema_blocks  # a block left empty (md: with nothing under it) is named first
_empty = empty_schema_blocks(config, yaml.safe_load((Path(workflow.basedir) / "config/schema.yaml").read_text()))
if _empty:
    raise ValueError("config: " + "; ".join(_empty))
validate(config, "config/schema.yaml")

report: "report/workflow.rst"

RESULTS = config.get("results_dir", "results")
RECIPES = Path(config.get("recipes_dir", Path(workflow.basedir) / "systems"))
SYSTEMS = config["systems"]
RES = config.get("resources", {})
PMF_THREADS = RES.get("pmf_threads", RES.get("md_threads", 2))  # threads of one umbrella window
ANALYSIS_OPTIONS = config.get("analysis", {})

from solvmd import records  # file names of the results layout and the outputs of each step

_missing = [s for s in SYSTEMS if not (RECIPES / f"{s}.yaml").is_file()]
if _missing:
    known = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    raise ValueError(f"config 'systems': no recipe for {_missing} in {RECIPES}; known recipes: {known}")


def _check_recipes():
    """Every recipe must validate before any job starts (one message per bad recipe and field)."""
    from solvmd.errors import SolvmdError
    from solvmd.recipe import load_any_recipe

    bad = []
    for system in SYSTEMS:
        try:
            load_any_recipe(RECIPES / f"{system}.yaml")
        except SolvmdError as err:
            bad.append(f"system {system!r}: {err}")
    if bad:
        raise ValueError("config 'systems': invalid recipe(s), nothing was run:\n" + "\n".join(bad))


_check_recipes()

from solvmd.pmf.extend import previous_segment
from solvmd.pmf.repeats import repeat_system, split_repeat


def _recipe_path(system):
    """The recipe of a results folder name: repeat r >= 2 of a system lives in <system>+r<r>."""
    return RECIPES / f"{split_repeat(system)[0]}.yaml"


def _recipe(wildcards):
    return str(_recipe_path(wildcards.system))


def _n_repeats(system):
    """Most repeats any pmf entry of the recipe asks for (1 without a pmf: block)."""
    block = (yaml.safe_load(_recipe_path(system).read_text()) or {}).get("pmf")
    if not block or not config.get("pmf", True):
        return 1
    from solvmd.pmf import load_specs

    return max(spec.repeats for spec in load_specs(block))


REPEATS = {system: _n_repeats(system) for system in SYSTEMS}
# every results folder a PMF needs: the systems, then the extra repeats (own packing + velocities)
RUN_SYSTEMS = list(SYSTEMS) + [repeat_system(s, r) for s in SYSTEMS for r in range(2, REPEATS[s] + 1)]

wildcard_constraints:
    system="[A-Za-z0-9_.+-]+",
    k="[0-9]+",
    j="[0-9]+",

localrules: all, protocol, thermo_plot, compare, sac_comparison, summary

# GPU pinning: MD-type jobs run under `solvmd gpu-slot`, which locks one free GPU per job
# (lock files, released when the job exits, even by kill -9) and exports its index as
# SOLVMD_CUDA_DEVICE. Devices: CUDA_VISIBLE_DEVICES (SLURM sets it), else 0..N-1 with
# N = `--resources gpu=N`, else what nvidia-smi lists. Jobs with resources.gpu == 0 run as is.
_GPU = workflow.global_resources.get("gpu")
GPU_SLOT = "solvmd gpu-slot --need {resources.gpu}" + (f" --count {_GPU.value}" if _GPU and _GPU.value else "") + " --"
# PMF windows follow the md block's platform policy (the recipe's pmf.platform otherwise)
_PLATFORM = config["md"].get("platform", "auto")
_FALLBACK = config["md"].get("allow_cpu_fallback")
PMF_ENV = ((f"SOLVMD_PLATFORM={_PLATFORM} " if _PLATFORM != "auto" else "")
           + (f"SOLVMD_ALLOW_CPU_FALLBACK={int(_FALLBACK)} " if _FALLBACK is not None else ""))


def _pmf_windows(system):
    """{cv name: number of windows} from the recipe's pmf: block (empty without one)."""
    block = yaml.safe_load(_recipe_path(system).read_text()).get("pmf")
    if not block or not config.get("pmf", True):
        return {}
    from solvmd.pmf import load_specs, n_windows

    # windows added by an estimate to close overlap gaps (pmf/<cv>/added_windows.json) count too
    return {spec.name: n_windows(spec, f"{RESULTS}/{system}/pmf/{spec.name}") for spec in load_specs(block)}


PMF = {system: _pmf_windows(system) for system in RUN_SYSTEMS}


def _pmf_samplers(system):
    """{cv name: sampler} ("independent": one job per window; "exchange": one job for all windows)."""
    block = yaml.safe_load(_recipe_path(system).read_text()).get("pmf")
    if not block or not config.get("pmf", True):
        return {}
    from solvmd.pmf import load_specs

    return {spec.name: spec.sampler for spec in load_specs(block)}


SAMPLER = {system: _pmf_samplers(system) for system in RUN_SYSTEMS}


def _spec_windows(system):
    """{cv name: windows of the spec itself} (without windows an estimate added)."""
    block = yaml.safe_load(_recipe_path(system).read_text()).get("pmf")
    if not block or not config.get("pmf", True):
        return {}
    from solvmd.pmf import load_specs

    return {spec.name: len(spec.centers()) for spec in load_specs(block)}


N_SPEC_WINDOWS = {system: _spec_windows(system) for system in RUN_SYSTEMS}


def _pmf_samples(w):
    """What pmf_estimate waits for: every window file with its planned extensions (extend.json), or the
    exchange run's marker of its last planned segment."""
    from solvmd.pmf.extend import exchange_segments, window_segments

    folder = f"{RESULTS}/{w.system}/pmf/{w.cv}"
    windows = range(PMF[w.system][w.cv])
    marker = []
    if SAMPLER[w.system][w.cv] == "exchange":  # the spec's windows are one exchange run; added (gap) windows are not
        marker = [f"{folder}/{records.exchange_marker(exchange_segments(folder)[-1])}"]
        windows = range(N_SPEC_WINDOWS[w.system][w.cv], PMF[w.system][w.cv])
    return marker + [f"{folder}/{records.window_npz(k, j)}" for k in windows for j in window_segments(folder, k)]
BARRIERS = [f"{RESULTS}/{system}/pmf/{cv}/{records.BARRIER_JSON}" for system in SYSTEMS for cv in PMF[system]]
# one repeats.json per PMF: its repeats combined (mean, between-repeat error, agreement, verdict)
REPEAT_TABLES = [f"{RESULTS}/{system}/pmf/{cv}/repeats.json" for system in SYSTEMS for cv in PMF[system]]


def _targets():
    out = expand(f"{RESULTS}/{{system}}/md/{records.MD_JSON}", system=SYSTEMS)
    out += expand(f"{RESULTS}/{{system}}/md/{records.THERMO_PNG}", system=SYSTEMS)
    if config.get("analyze", True):
        out += expand(f"{RESULTS}/{{system}}/analysis/{records.ANALYSIS_JSON}", system=SYSTEMS)
    out += BARRIERS + REPEAT_TABLES
    if BARRIERS:
        out.append(f"{RESULTS}/{records.BARRIERS_CSV}")
    if BARRIERS and config.get("sac_comparison", False):
        out.append(f"{RESULTS}/sac_comparison.csv")
    out.append(f"{RESULTS}/{records.SUMMARY_CSV}")
    return out


def _rep(path, caption, category, what, **labels):
    """A report item: caption file report/<caption>.rst, grouped by category and system."""
    return report(path, caption=f"report/{caption}.rst", category=category, subcategory="{system}",
                  labels={"system": "{system}", "item": what, **labels})


rule all:
    input:
        _targets(),


rule protocol:
    """The MD protocol of this config, as the file `solvmd md` reads."""
    output:
        f"{RESULTS}/md_protocol.yaml",
    params:
        md=config["md"],
    run:
        Path(output[0]).write_text(yaml.safe_dump({"md": dict(params.md)}, sort_keys=False))


def _build_inputs(wildcards):
    """The recipe, plus for an interface its electrolyte recipe and the bulk run it takes its density from."""
    recipe = _recipe_path(wildcards.system)
    if "surface" not in (yaml.safe_load(recipe.read_text()) or {}):
        return [str(recipe)]
    from solvmd.assembly.interface import build_inputs

    return [str(recipe)] + build_inputs(recipe)


rule build:
    input:
        _build_inputs,
    output:
        pdb=f"{RESULTS}/{{system}}/build/{records.SYSTEM_PDB}",
        xml=f"{RESULTS}/{{system}}/build/{records.SYSTEM_XML}",
        manifest=f"{RESULTS}/{{system}}/build/{records.MANIFEST}",
    log:
        f"{RESULTS}/{{system}}/logs/build.log",
    params:
        repeat=lambda w: split_repeat(w.system)[1],
    shell:
        "solvmd build {input[0]} --repeat {params.repeat} -o $(dirname {output.manifest}) 2> {log}"


rule md:
    input:
        manifest=f"{RESULTS}/{{system}}/build/{records.MANIFEST}",
        protocol=f"{RESULTS}/md_protocol.yaml",
    # Only md.json (written last) is declared: Snakemake deletes the declared outputs of
    # failed or interrupted jobs, and the trajectory, thermo.csv and *.chk must survive a
    # killed job so that the rerun resumes from the checkpoint.
    output:
        done=f"{RESULTS}/{{system}}/md/{records.MD_JSON}",
    log:
        f"{RESULTS}/{{system}}/logs/md.log",
    threads: RES.get("md_threads", 2)
    resources:
        gpu=RES.get("md_gpus", 0),
        runtime=RES.get("md_runtime_min", 60),
    params:
        repeat=lambda w: split_repeat(w.system)[1],
    shell:
        "SOLVMD_CPU_THREADS={threads} " + GPU_SLOT + " solvmd md $(dirname {input.manifest}) --repeat {params.repeat} "
        "-o $(dirname {output.done}) -p {input.protocol} 2> {log}"


rule thermo_plot:
    """T, density and energy against time: is the run equilibrated?"""
    input:
        f"{RESULTS}/{{system}}/md/{records.MD_JSON}",
    output:
        _rep(f"{RESULTS}/{{system}}/md/{records.THERMO_PNG}", "thermo", "1. MD runs", "thermo"),
    log:
        f"{RESULTS}/{{system}}/logs/thermo_plot.log",
    shell:
        "solvmd plot-thermo $(dirname {input})/" + records.THERMO_CSV + " -o {output} 2> {log}"


# Report entries for analysis outputs (file name -> caption, category, label); which files a
# system's analysis writes comes from the library (records.analysis_outputs), so the declared
# outputs are exactly the written ones for every combination of switches.
_ANALYSIS_REPORT = {
    "rdf.png": ("rdf", "2. Solvation structure", "RDF"),
    "coordination.png": ("coordination", "2. Solvation structure", "CN"),
    "shells.png": ("shells", "2. Solvation structure", "shells"),
    "speciation.png": ("speciation", "2. Solvation structure", "SSIP/CIP/AGG"),
    "transport.png": ("transport", "2. Solvation structure", "MSD log-log"),
    # interface systems (a surface: block): rho(z), CN vs height, cation - metal site g(r)
    "interface_density.png": ("interface_density", "2. Solvation structure", "rho(z)"),
    "interface_coordination.png": ("interface_coordination", "2. Solvation structure", "CN vs height"),
    "interface_site_rdf.png": ("interface_site_rdf", "2. Solvation structure", "site RDF"),
    **{f"{n}.csv": (f"{n}_csv", "3. Tables", f"{n}.csv") for n in
       ("rdf", "coordination", "shells", "speciation", "clusters", "residence", "transport", "interface",
        "interface_shells")},
}


def _analysis_switches(system):
    recipe = yaml.safe_load(_recipe_path(system).read_text()) or {}
    return records.analysis_switches_for_recipe(recipe, ANALYSIS_OPTIONS)


def _analysis_output(system, name):
    path = f"{RESULTS}/{{system}}/analysis/{name}"
    if name in _ANALYSIS_REPORT:
        caption, category, what = _ANALYSIS_REPORT[name]
        return _rep(path, caption, category, what)
    return path


_ANALYSIS_FLAGS = " ".join(f"--no-{k}" for k in ("residence", "transport") if not ANALYSIS_OPTIONS.get(k, True))

# one analyze rule per distinct set of outputs (bulk / interface, with or without anions)
_ANALYSIS_GROUPS = {}
for _system in SYSTEMS:
    _ANALYSIS_GROUPS.setdefault(tuple(sorted(_analysis_switches(_system).items())), []).append(_system)

for _i, (_switches, _members) in enumerate(_ANALYSIS_GROUPS.items()):
    _files = records.analysis_outputs(**dict(_switches))

    rule:
        name:
            f"analyze_{_i}" if len(_ANALYSIS_GROUPS) > 1 else "analyze"
        input:
            manifest=f"{RESULTS}/{{system}}/build/{records.MANIFEST}",
            md=f"{RESULTS}/{{system}}/md/{records.MD_JSON}",
        output:
            # analysis.json is written last: its presence means every table and figure is in place
            done=f"{RESULTS}/{{system}}/analysis/{records.ANALYSIS_JSON}",
            files=[_analysis_output(_members[0], n) for n in _files if n != records.ANALYSIS_JSON],
        wildcard_constraints:
            system="|".join(re.escape(m) for m in _members),
        log:
            f"{RESULTS}/{{system}}/logs/analyze.log",
        params:
            flags=_ANALYSIS_FLAGS,
        shell:
            "solvmd analyze --build $(dirname {input.manifest}) --md $(dirname {input.md}) {params.flags} "
            "-o $(dirname {output.done}) 2> {log}"


rule pmf_prepare:
    """Pick the tagged ion/solvent; window starts by placement (translation + biased minimisation) or a steered pull."""
    input:
        recipe=_recipe,
        md=f"{RESULTS}/{{system}}/md/{records.MD_JSON}",
    output:
        f"{RESULTS}/{{system}}/pmf/{{cv}}/{records.CV_JSON}",
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_prepare.log",
    threads: PMF_THREADS
    resources:
        gpu=RES.get("md_gpus", 0),
    shell:
        "SOLVMD_CPU_THREADS={threads} " + PMF_ENV + GPU_SLOT + " solvmd pmf-prepare {input.recipe} "
        "--name {wildcards.cv} "
        "--build {RESULTS}/{wildcards.system}/build --md {RESULTS}/{wildcards.system}/md "
        "-o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log}"


rule pmf_window:
    """One umbrella window: an independent, restartable job."""
    input:
        recipe=_recipe,
        cv=f"{RESULTS}/{{system}}/pmf/{{cv}}/{records.CV_JSON}",
    output:
        f"{RESULTS}/{{system}}/pmf/{{cv}}/" + records.window_npz("{k}"),
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_window_{{k}}.log",
    threads: PMF_THREADS
    resources:
        gpu=RES.get("md_gpus", 0),
        runtime=RES.get("md_runtime_min", 60),
    shell:
        "SOLVMD_CPU_THREADS={threads} " + PMF_ENV + GPU_SLOT + " solvmd pmf-window {input.recipe} "
        "--name {wildcards.cv} "
        "--build {RESULTS}/{wildcards.system}/build --window {wildcards.k} "
        "-o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log}"


rule pmf_window_extension:
    """Extension j >= 2 of one window, planned by pmf-estimate in extend.json (target_error_kJ_mol)."""
    input:
        recipe=_recipe,
        previous=lambda w: f"{RESULTS}/{w.system}/pmf/{w.cv}/" + records.window_npz(
            w.k, previous_segment(f"{RESULTS}/{w.system}/pmf/{w.cv}", int(w.k), int(w.j))),
    output:
        f"{RESULTS}/{{system}}/pmf/{{cv}}/window_{{k}}.s{{j}}.npz",
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_window_{{k}}.s{{j}}.log",
    threads: PMF_THREADS
    resources:
        gpu=RES.get("md_gpus", 0),
        runtime=RES.get("md_runtime_min", 60),
    shell:
        "SOLVMD_CPU_THREADS={threads} " + PMF_ENV + GPU_SLOT + " solvmd pmf-window {input.recipe} "
        "--name {wildcards.cv} --build {RESULTS}/{wildcards.system}/build --window {wildcards.k} "
        "--segment {wildcards.j} -o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log}"


rule pmf_exchange_extension:
    """Extension j >= 2 of an exchange run (the same run continued from its checkpoint)."""
    input:
        recipe=_recipe,
        previous=lambda w: f"{RESULTS}/{w.system}/pmf/{w.cv}/" + records.exchange_marker(int(w.j) - 1),
    output:
        f"{RESULTS}/{{system}}/pmf/{{cv}}/exchange.s{{j}}.json",
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_exchange.s{{j}}.log",
    threads: PMF_THREADS
    resources:
        gpu=RES.get("md_gpus", 0),
        runtime=RES.get("md_runtime_min", 60),
    shell:
        "SOLVMD_CPU_THREADS={threads} " + PMF_ENV + GPU_SLOT + " solvmd pmf-exchange {input.recipe} "
        "--name {wildcards.cv} --build {RESULTS}/{wildcards.system}/build --segment {wildcards.j} "
        "-o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log}"


rule pmf_exchange:
    """All windows of one PMF as replicas of one Hamiltonian replica-exchange run (sampler: exchange)."""
    input:
        recipe=_recipe,
        cv=f"{RESULTS}/{{system}}/pmf/{{cv}}/{records.CV_JSON}",
    output:
        f"{RESULTS}/{{system}}/pmf/{{cv}}/exchange.json",
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_exchange.log",
    threads: PMF_THREADS
    resources:
        gpu=RES.get("md_gpus", 0),
        runtime=RES.get("md_runtime_min", 60),
    shell:
        "SOLVMD_CPU_THREADS={threads} " + PMF_ENV + GPU_SLOT + " solvmd pmf-exchange {input.recipe} "
        "--name {wildcards.cv} --build {RESULTS}/{wildcards.system}/build "
        "-o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log}"


rule pmf_estimate:
    input:
        recipe=_recipe,
        windows=_pmf_samples,
    output:
        barrier=f"{RESULTS}/{{system}}/pmf/{{cv}}/{records.BARRIER_JSON}",
        pmf=_rep(f"{RESULTS}/{{system}}/pmf/{{cv}}/pmf.png", "pmf", "4. Desolvation PMFs", "PMF", cv="{cv}"),
        overlap=_rep(f"{RESULTS}/{{system}}/pmf/{{cv}}/overlap.png", "overlap", "4. Desolvation PMFs", "overlap",
                     cv="{cv}"),
        histograms=_rep(f"{RESULTS}/{{system}}/pmf/{{cv}}/histograms.png", "histograms", "4. Desolvation PMFs",
                        "histograms", cv="{cv}"),
        csv=_rep(f"{RESULTS}/{{system}}/pmf/{{cv}}/{records.PMF_CSV}", "pmf_csv", "4. Desolvation PMFs", "pmf.csv", cv="{cv}"),
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_estimate.log",
    # Snakemake deletes the declared outputs of a failed job: on failure (e.g. too little
    # window overlap) the diagnostic figures are first copied next to the log.
    shell:
        "solvmd pmf-estimate {input.recipe} --name {wildcards.cv} "
        "-o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log} || "
        "{{ for f in overlap histograms; do cp {RESULTS}/{wildcards.system}/pmf/{wildcards.cv}/$f.png "
        "{RESULTS}/{wildcards.system}/logs/pmf_{wildcards.cv}_$f.png 2>/dev/null; done; exit 1; }}"


rule pmf_repeats:
    """A PMF's independent repeats combined: mean, between-repeat standard error, agreement, verdict."""
    input:
        lambda w: [f"{RESULTS}/{repeat_system(w.system, r)}/pmf/{w.cv}/{records.BARRIER_JSON}"
                   for r in range(1, REPEATS[w.system] + 1)],
    output:
        f"{RESULTS}/{{system}}/pmf/{{cv}}/repeats.json",
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_repeats.log",
    shell:
        "solvmd pmf-repeats {input} -o {output} 2> {log}"


rule compare:
    """One table and one figure of the barriers across systems."""
    input:
        BARRIERS,
    output:
        csv=report(f"{RESULTS}/{records.BARRIERS_CSV}", caption="report/barriers_csv.rst", category="5. Across systems",
                   labels={"item": "barriers.csv"}),
        png=report(f"{RESULTS}/{records.BARRIERS_PNG}", caption="report/barriers.rst", category="5. Across systems",
                   labels={"item": "barriers"}),
    shell:
        "solvmd compare {input} --csv {output.csv} --png {output.png}"


rule sac_comparison:
    """docs/science.md §6: dG‡, adsorption dG, CN bulk vs contact per (ion, surface, coordinate)."""
    input:
        barriers=BARRIERS,
        repeats=REPEAT_TABLES,
    output:
        csv=report(f"{RESULTS}/sac_comparison.csv", caption="report/sac_comparison_csv.rst",
                   category="5. Across systems", labels={"item": "sac_comparison.csv"}),
        png=report(f"{RESULTS}/sac_comparison.png", caption="report/sac_comparison.rst",
                   category="5. Across systems", labels={"item": "sac_comparison"}),
    log:
        f"{RESULTS}/logs/sac_comparison.log",
    shell:
        "solvmd sac-compare $(for b in {input.barriers}; do dirname $b; done) --csv {output.csv} --png {output.png} "
        "> {log} 2>&1"


rule summary:
    """summary.csv: one row per system (density, CN per partner, SSIP/CIP/AGG, barriers)."""
    input:
        md=expand(f"{RESULTS}/{{system}}/md/{records.MD_JSON}", system=SYSTEMS),
        analysis=expand(f"{RESULTS}/{{system}}/analysis/{records.ANALYSIS_JSON}", system=SYSTEMS)
        if config.get("analyze", True) else [],
        barriers=BARRIERS,
    output:
        csv=report(f"{RESULTS}/{records.SUMMARY_CSV}", caption="report/summary_csv.rst", category="5. Across systems",
                   labels={"item": "summary.csv"}),
        html=report(f"{RESULTS}/{records.SUMMARY_HTML}", caption="report/summary.rst", category="5. Across systems",
                    labels={"item": "summary"}),
    params:
        results=RESULTS,
        systems=SYSTEMS,
    log:
        f"{RESULTS}/logs/summary.log",
    shell:
        "solvmd summarize {params.results} --systems {params.systems} --csv {output.csv} --html {output.html} "
        "> {log} 2>&1"
