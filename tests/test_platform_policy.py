"""Platform policy: a requested GPU platform that is unusable stops the run, unless CPU
fallback is allowed (then a warning and the CPU); `auto` may be told not to fall back."""

import pytest

from solvmd.errors import SolvmdError
from solvmd.md.platforms import PlatformFallbackWarning, available_platforms, choose_platform
from solvmd.md.protocol import load_protocol


def _gpu_usable() -> bool:
    return choose_platform("auto")[0].getName() in ("CUDA", "OpenCL")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("SOLVMD_PLATFORM", raising=False)
    monkeypatch.delenv("SOLVMD_ALLOW_CPU_FALLBACK", raising=False)


@pytest.mark.skipif("CUDA" in available_platforms() and _gpu_usable(), reason="a CUDA GPU is present")
def test_missing_cuda_is_an_error_or_a_warned_cpu_fallback(monkeypatch):
    with pytest.raises(SolvmdError, match="CPU fallback is off.*allow_cpu_fallback: true"):
        choose_platform("CUDA")
    with pytest.warns(PlatformFallbackWarning, match="falling back to the CPU platform"):
        platform, props = choose_platform("CUDA", allow_cpu_fallback=True)
    assert platform.getName() == "CPU" and "Threads" in props
    monkeypatch.setenv("SOLVMD_ALLOW_CPU_FALLBACK", "1")  # the environment overrides the argument
    with pytest.warns(PlatformFallbackWarning):
        assert choose_platform("CUDA", allow_cpu_fallback=False)[0].getName() == "CPU"


@pytest.mark.skipif(_gpu_usable(), reason="a GPU platform is usable here")
def test_auto_without_gpu_runs_on_cpu_unless_fallback_is_forbidden():
    assert choose_platform("auto")[0].getName() == "CPU"
    with pytest.raises(SolvmdError, match="no usable GPU platform.*allow_cpu_fallback is false"):
        choose_platform("auto", allow_cpu_fallback=False)


def test_fallback_flag_is_policy_not_protocol():
    strict = load_protocol(None, {"platform": "CUDA", "allow_cpu_fallback": False})
    lenient = load_protocol(None, {"platform": "CUDA", "allow_cpu_fallback": True})
    assert strict.allow_cpu_fallback is False and lenient.allow_cpu_fallback is True
    # not part of the recorded protocol: changing it never invalidates a partial or finished run
    assert strict.model_dump(mode="json") == lenient.model_dump(mode="json")
    assert "allow_cpu_fallback" not in strict.model_dump(mode="json")
