# solvmd workflow: thin rules calling `solvmd <verb>`; no science lives here.
#   snakemake --cores 2 --configfile config/demo.yaml
import os
from pathlib import Path

import yaml
from snakemake.utils import validate

configfile: "config/demo.yaml"
validate(config, "config/schema.yaml")

RESULTS = config.get("results_dir", "results")
RECIPES = Path(config.get("recipes_dir", Path(workflow.basedir) / "systems"))
SYSTEMS = config["systems"]
RES = config.get("resources", {})

_missing = [s for s in SYSTEMS if not (RECIPES / f"{s}.yaml").is_file()]
if _missing:
    known = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    raise ValueError(f"config 'systems': no recipe for {_missing} in {RECIPES}; known recipes: {known}")

wildcard_constraints:
    system="[A-Za-z0-9_.-]+",


def _pmf_windows(system):
    """{cv name: number of windows} from the recipe's pmf: block (empty without one)."""
    block = yaml.safe_load((RECIPES / f"{system}.yaml").read_text()).get("pmf")
    if not block or not config.get("pmf", True):
        return {}
    from solvmd.pmf import load_specs, n_windows

    return {spec.name: n_windows(spec) for spec in load_specs(block)}


PMF = {system: _pmf_windows(system) for system in SYSTEMS}
BARRIERS = [f"{RESULTS}/{system}/pmf/{cv}/barrier.json" for system in SYSTEMS for cv in PMF[system]]


def _targets():
    out = expand(f"{RESULTS}/{{system}}/md/md.json", system=SYSTEMS)
    if config.get("analyze", True):
        out += expand(f"{RESULTS}/{{system}}/analysis/analysis.json", system=SYSTEMS)
    out += BARRIERS
    if BARRIERS:
        out.append(f"{RESULTS}/barriers.csv")
    return out


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
    recipe = RECIPES / f"{wildcards.system}.yaml"
    if "surface" not in (yaml.safe_load(recipe.read_text()) or {}):
        return [str(recipe)]
    from solvmd.build.interface import build_inputs

    return [str(recipe)] + build_inputs(recipe)


rule build:
    input:
        _build_inputs,
    output:
        pdb=f"{RESULTS}/{{system}}/build/system.pdb",
        xml=f"{RESULTS}/{{system}}/build/system.xml",
        manifest=f"{RESULTS}/{{system}}/build/manifest.json",
    log:
        f"{RESULTS}/{{system}}/logs/build.log",
    shell:
        "solvmd build {input[0]} -o $(dirname {output.manifest}) 2> {log}"


rule md:
    input:
        manifest=f"{RESULTS}/{{system}}/build/manifest.json",
        protocol=f"{RESULTS}/md_protocol.yaml",
    # Only md.json (written last) is declared: Snakemake deletes the declared outputs of
    # failed or interrupted jobs, and the trajectory, thermo.csv and *.chk must survive a
    # killed job so that the rerun resumes from the checkpoint.
    output:
        done=f"{RESULTS}/{{system}}/md/md.json",
    log:
        f"{RESULTS}/{{system}}/logs/md.log",
    threads: RES.get("md_threads", 2)
    resources:
        gpu=RES.get("md_gpus", 0),
        runtime=RES.get("md_runtime_min", 60),
    shell:
        "SOLVMD_CPU_THREADS={threads} solvmd md $(dirname {input.manifest}) -o $(dirname {output.done}) "
        "-p {input.protocol} 2> {log}"


rule analyze:
    input:
        manifest=f"{RESULTS}/{{system}}/build/manifest.json",
        md=f"{RESULTS}/{{system}}/md/md.json",
    output:
        # analysis.json is written last: its presence means every table and figure is in place
        done=f"{RESULTS}/{{system}}/analysis/analysis.json",
    log:
        f"{RESULTS}/{{system}}/logs/analyze.log",
    shell:
        "solvmd analyze --build $(dirname {input.manifest}) --md $(dirname {input.md}) "
        "-o $(dirname {output.done}) 2> {log}"


rule pmf_prepare:
    """Pick the tagged ion/solvent, steered pull to every window centre."""
    input:
        recipe=str(RECIPES / "{system}.yaml"),
        md=f"{RESULTS}/{{system}}/md/md.json",
    output:
        f"{RESULTS}/{{system}}/pmf/{{cv}}/cv.json",
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_prepare.log",
    threads: RES.get("md_threads", 2)
    resources:
        gpu=RES.get("md_gpus", 0),
    shell:
        "SOLVMD_CPU_THREADS={threads} solvmd pmf-prepare {input.recipe} --name {wildcards.cv} "
        "--build {RESULTS}/{wildcards.system}/build --md {RESULTS}/{wildcards.system}/md "
        "-o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log}"


rule pmf_window:
    """One umbrella window: an independent, restartable job."""
    input:
        recipe=str(RECIPES / "{system}.yaml"),
        cv=f"{RESULTS}/{{system}}/pmf/{{cv}}/cv.json",
    output:
        f"{RESULTS}/{{system}}/pmf/{{cv}}/window_{{k}}.npz",
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_window_{{k}}.log",
    threads: RES.get("md_threads", 2)
    resources:
        gpu=RES.get("md_gpus", 0),
        runtime=RES.get("md_runtime_min", 60),
    shell:
        "SOLVMD_CPU_THREADS={threads} solvmd pmf-window {input.recipe} --name {wildcards.cv} "
        "--build {RESULTS}/{wildcards.system}/build --window {wildcards.k} "
        "-o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log}"


rule pmf_estimate:
    input:
        recipe=str(RECIPES / "{system}.yaml"),
        windows=lambda w: [f"{RESULTS}/{w.system}/pmf/{w.cv}/window_{k}.npz" for k in range(PMF[w.system][w.cv])],
    output:
        barrier=f"{RESULTS}/{{system}}/pmf/{{cv}}/barrier.json",
    log:
        f"{RESULTS}/{{system}}/logs/pmf_{{cv}}_estimate.log",
    shell:
        "solvmd pmf-estimate {input.recipe} --name {wildcards.cv} "
        "-o {RESULTS}/{wildcards.system}/pmf/{wildcards.cv} 2> {log}"


rule compare:
    """One table and one figure of the barriers across systems."""
    input:
        BARRIERS,
    output:
        csv=f"{RESULTS}/barriers.csv",
        png=f"{RESULTS}/barriers.png",
    shell:
        "solvmd compare {input} --csv {output.csv} --png {output.png}"
