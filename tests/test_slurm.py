"""The SLURM profile on a real single-node SLURM cluster (Debian's slurm-wlm + munge).

The fixture configures a cluster under a temporary folder (munge key and socket, state,
spool, logs; partitions ``cpu`` and ``gpu`` as named in ``profiles/slurm/config.yaml``;
one fake GPU, ``gres.conf`` ``File=/dev/null``, so that ``--gpus=1`` jobs schedule and
SLURM sets ``CUDA_VISIBLE_DEVICES``), starts munged, slurmctld and slurmd in the
foreground as its own children, and stops them by PID at the end. Without slurmdbd the
plugin's default ``sacct`` status check would never see a job finish, so the test uses
the squeue status command with ``MinJobAge`` far above three times the first status
delay. The plugin's job-step wrapper clears ``SLURM_*`` variables inside jobs, so
``SLURM_CONF`` is not enough: ``/etc/slurm/slurm.conf`` is a symlink to the temporary
file for the duration of the test (a real one is never replaced).

Needs root (daemons, the symlink) and the packages; skipped otherwise, except when
``SOLVMD_REQUIRE_SLURM=1`` (CI: ``.ci/run`` installs them), where a missing piece fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from scale_workflow import MD, N_FRAMES, TINY, BIN, workdir

pytestmark = pytest.mark.slow

REQUIRED = os.environ.get("SOLVMD_REQUIRE_SLURM", "") not in ("", "0")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "srun", "scancel", "scontrol")
PATH = f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORKFLOW_TIMEOUT_S = 900


def _unavailable(why: str):
    if REQUIRED:
        pytest.fail(f"SOLVMD_REQUIRE_SLURM=1 but {why}")
    pytest.skip(why)


def _which(name: str) -> str | None:
    return shutil.which(name, path=PATH)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free now (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 4096


def _slurm_conf(tmp: Path, host: str, ctld_port: int, slurmd_port: int) -> str:
    cpus = os.cpu_count() or 2
    return f"""# single-node test cluster (tests/test_slurm.py)
ClusterName=solvmdtest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={tmp}/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
StateSaveLocation={tmp}/state
SlurmdSpoolDir={tmp}/spool
SlurmctldPidFile={tmp}/slurmctld.pid
SlurmdPidFile={tmp}/slurmd.pid
SlurmctldLogFile={tmp}/slurmctld.log
SlurmdLogFile={tmp}/slurmd.log
ReturnToService=2
MinJobAge=600
GresTypes=gpu
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={max(_mem_mb(), 20000)} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
"""


def _wait(predicate, timeout: float, what: str, procs: dict) -> None:
    end = time.time() + timeout
    while not predicate():
        for name, p in procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}")
        if time.time() > end:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _stop(procs: dict) -> None:
    for name in reversed(list(procs)):
        p = procs[name]
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=20)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    missing = [n for n in DAEMONS + CLIENTS if _which(n) is None]
    if missing:
        _unavailable(f"SLURM/munge binaries not found: {missing} (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        _unavailable("the SLURM test runs its own munged/slurmctld/slurmd and needs root")
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        _unavailable(f"{SYSTEM_CONF} exists: refusing to replace a real SLURM configuration")

    tmp = tmp_path_factory.mktemp("slurm")
    os.chmod(tmp, 0o711)  # munge: the socket's folder must be searchable
    for sub in ("state", "spool"):
        (tmp / sub).mkdir()
    key = tmp / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    host = socket.gethostname().split(".")[0]
    (tmp / "slurm.conf").write_text(_slurm_conf(tmp, host, *_free_ports(2)))
    (tmp / "gres.conf").write_text("Name=gpu File=/dev/null\n")  # one fake GPU
    env = {"PATH": PATH, "HOME": str(tmp)}
    procs: dict[str, subprocess.Popen] = {}
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(tmp / "slurm.conf")
    t0 = time.time()
    try:
        procs["munged"] = subprocess.Popen(
            [_which("munged"), "--foreground", "--force", f"--key-file={key}", f"--socket={tmp}/munge.socket",
             f"--pid-file={tmp}/munged.pid", f"--seed-file={tmp}/munged.seed", f"--log-file={tmp}/munged.log"],
            stdout=open(tmp / "munged.out", "w"), stderr=subprocess.STDOUT, env=env)
        _wait(lambda: (tmp / "munge.socket").exists(), 30, "the munge socket", procs)
        for daemon in ("slurmctld", "slurmd"):
            procs[daemon] = subprocess.Popen([_which(daemon), "-D", "-f", str(tmp / "slurm.conf")],
                                             stdout=open(tmp / f"{daemon}.out", "w"), stderr=subprocess.STDOUT,
                                             env=env)

        def idle() -> bool:
            out = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, env=env).stdout
            states = dict(line.split() for line in out.splitlines() if line.strip())
            return states.get("cpu*") == "idle" and states.get("gpu") == "idle"

        _wait(idle, 60, "the node to be idle in partitions cpu and gpu", procs)
        print(f"SLURM cluster up in {time.time() - t0:.1f} s")
        yield {"dir": tmp, "env": env}
    except RuntimeError as err:
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(tmp.glob("*.out")) +
                         sorted(tmp.glob("*.log")))
        pytest.fail(f"could not start the test SLURM cluster: {err}\n{logs}")
    finally:
        if "slurmctld" in procs and procs["slurmctld"].poll() is None:
            jobs = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout.split()
            if jobs:
                subprocess.run(["scancel", *jobs], env=env, capture_output=True)
        _stop(procs)
        if SYSTEM_CONF.is_symlink() and os.readlink(SYSTEM_CONF) == str(tmp / "slurm.conf"):
            SYSTEM_CONF.unlink()


def test_demo_workflow_runs_through_the_slurm_profile(root, slurm_cluster, tmp_path):
    work = workdir(tmp_path, TINY, md=dict(MD))
    env = {**slurm_cluster["env"], "HOME": str(work), "SOLVMD_CPU_THREADS": "1", "MPLBACKEND": "Agg",
           "SOLVMD_GPU_LOCK_DIR": str(work / "gpu-locks")}
    cmd = ["timeout", "-k", "10", str(WORKFLOW_TIMEOUT_S), str(BIN / "snakemake"), "-s", str(root / "Snakefile"),
           "-d", str(work), "--configfile", str(work / "config.yaml"),
           "--profile", str(root / "profiles" / "slurm"),
           # test-cluster settings on top of the profile: no accounting database (squeue status,
           # no account), quick first status check, 1 CPU thread per job, 2 jobs at a time
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
           "--slurm-no-account", "--slurm-keep-successful-logs", "--jobs", "2", "--latency-wait", "5",
           "--set-threads", "md=1", "pmf_prepare=1", "pmf_window=1"]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=WORKFLOW_TIMEOUT_S + 60)
    elapsed = time.time() - t0
    print(f"workflow through the SLURM profile: {elapsed:.1f} s")
    assert proc.returncode == 0, f"rc {proc.returncode} (124: timed out)\n{proc.stderr[-5000:]}"

    res = work / "results" / "tiny_scale"
    md = json.loads((res / "md" / "md.json").read_text())
    assert md["n_frames"] == N_FRAMES and md["platform"] == "CPU"
    # the md job asked SLURM for a GPU (profile: gpu=1 on partition gpu); SLURM's
    # CUDA_VISIBLE_DEVICES reached solvmd gpu-slot, which pinned CUDA index 0
    assert "[gpu-slot] GPU 0 (CUDA index 0)" in (res / "logs" / "md.log").read_text()
    summary = pd.read_csv(work / "results" / "summary.csv")
    assert summary.loc[0, "density_g_cm3"] == pytest.approx(md["density_production_mean_g_cm3"], rel=1e-5)
    assert (res / "analysis" / "analysis.json").is_file() and (res / "md" / "thermo.png").is_file()

    # the heavy rules really ran as SLURM jobs, in the profile's partitions, and finished
    out = subprocess.run(["squeue", "--states=all", "-h", "-O", "JobID:12,Partition:12,State:12,tres-per-job:30"],
                         capture_output=True, text=True, env=env).stdout
    jobs = [line.split() for line in out.splitlines() if line.strip()]
    assert len(jobs) == 3, out  # build, md, analyze (protocol, thermo_plot, summary are local rules)
    assert all(job[2] == "COMPLETED" for job in jobs), out
    assert sorted(job[1] for job in jobs) == ["cpu", "cpu", "gpu"], out
    assert [job[3] for job in jobs if job[1] == "gpu"] == ["gres:gpu:1"], out  # sbatch --gpus=1
    logs = work / ".snakemake" / "slurm_logs"  # one per job: slurm_logs/rule_<rule>/<system>/<jobid>.log
    assert {p.relative_to(logs).parts[0] for p in logs.rglob("*.log")} == {"rule_build", "rule_md", "rule_analyze"}
