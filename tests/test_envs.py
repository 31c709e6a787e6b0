"""envs/*.yaml stay in step with pyproject.toml: the core dependencies plus the `test` extra
(SLURM executor plugin, notebook runner, pytest)."""

import re
import tomllib

import yaml

CONDA_NAMES = {"mdanalysis": "MDAnalysis", "pyyaml": "pyyaml"}


def _name_spec(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)$", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def test_conda_env_matches_pyproject(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pip_deps = dict(_name_spec(r) for r in project["dependencies"] + project["optional-dependencies"]["test"])
    for env_file in sorted((root / "envs").glob("*.yaml")):
        deps = yaml.safe_load(env_file.read_text())["dependencies"]
        conda = dict(_name_spec(d) for d in deps if isinstance(d, str) and not d.startswith(("python", "pip")))
        assert conda == pip_deps, f"{env_file.name} differs from pyproject.toml"
