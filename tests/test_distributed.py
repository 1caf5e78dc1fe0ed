"""Two processes on 127.0.0.1 (jax.distributed, gloo CPU collectives), 2 devices each, train
the same 3 steps as one process with 4 devices and end with the same parameters.

Each process reads only its shard of the data (pipeline shard = process index / count) and
writes into one shared workdir, as hosts on a shared filesystem do: only process 0 writes
metrics, every process takes part in the orbax save (each stores its data-iterator state).
Tolerance as in tests/test_parallel.py (rtol 1e-5, atol 1e-6; attention/key/bias held to
Adam's step bound because its true gradient is zero).
"""

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
from _train_worker import REPO, assert_params_match, subprocess_env, worker_command

pytestmark = pytest.mark.slow

STEPS = 3
TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_all(commands: list[tuple[list[str], dict, str]], timeout: float) -> list[str]:
    """Start every command, wait for all; on failure or timeout kill them all. -> outputs."""
    procs, logs = [], []
    try:
        for cmd, env, log in commands:
            f = open(log, "w")  # noqa: SIM115 - closed below
            logs.append(f)
            procs.append(
                subprocess.Popen(
                    cmd,
                    env=env,
                    cwd=REPO,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s")
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one failed: the others would wait for it forever
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)  # its own session: only what it started
                p.wait()
        for f in logs:
            f.close()
    outputs = [open(log).read() for _, _, log in commands]  # noqa: SIM115
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-4000:]
    return outputs


def test_two_processes_match_one_process_with_four_devices(tmp_path, shared_cache, tiny_config):
    port = _free_port()
    shared = tmp_path / "shared_workdir"
    overrides = {"train.steps": STEPS}
    commands = []
    for i in range(2):
        spec = {
            "cache_dir": str(shared_cache),
            "out": str(tmp_path / "two"),
            "distributed": {
                "coordinator": f"127.0.0.1:{port}",
                "num_processes": 2,
                "process_id": i,
            },
            "jobs": [
                {"kind": "train", "name": "run", "workdir": str(shared), "overrides": overrides}
            ],
        }
        env = subprocess_env(devices=2, fast_compile=True)
        commands.append((worker_command(spec), env, str(tmp_path / f"process{i}.log")))
    reference = {
        "cache_dir": str(shared_cache),
        "out": str(tmp_path / "one"),
        "jobs": [
            {
                "kind": "train",
                "name": "run",
                "workdir": str(tmp_path / "one"),
                "overrides": overrides,
            }
        ],
    }
    env = subprocess_env(devices=4, fast_compile=True)
    commands.append((worker_command(reference), env, str(tmp_path / "reference.log")))
    _run_all(commands, TIMEOUT_S)

    results = []
    for i in range(2):
        with open(tmp_path / f"two.p{i}.json") as f:
            results.append(json.load(f)["run"])
    with open(tmp_path / "one.p0.json") as f:
        one = json.load(f)["run"]
    assert one["process_count"] == 1 and one["num_devices"] == 4
    for i, r in enumerate(results):
        assert r["process_count"] == 2 and r["num_devices"] == 4 and r["step"] == STEPS
        assert r["shards_used"] == [[i, 2]]  # each process read only its own shard

    def load(prefix, i):
        with np.load(f"{prefix}.run.p{i}.npz") as f:
            return dict(f)

    p0, p1 = load(tmp_path / "two", 0), load(tmp_path / "two", 1)
    for key in p0:  # the replicated state is identical on both processes
        np.testing.assert_array_equal(p0[key], p1[key], err_msg=key)
    lr = tiny_config.optim.learning_rate
    assert_params_match(load(tmp_path / "one", 0), p0, lr, STEPS, "2 processes vs 1")

    # One writer for metrics; every process saved its data-iterator state into the checkpoint.
    with open(shared / "metrics.jsonl") as f:
        steps = [json.loads(line)["step"] for line in f if line.strip()]
    assert steps == list(range(1, STEPS + 1))
    data_dir = shared / "checkpoints" / str(STEPS) / "data"
    assert sorted(p.name for p in data_dir.glob("process_*.json")) == [
        "process_0-of-2.json",
        "process_1-of-2.json",
    ]


def test_initialize_requires_all_three_arguments():
    from csc_jax.training import distributed

    with pytest.raises(ValueError, match="--num_processes and --process_id"):
        distributed.initialize("127.0.0.1:1234", num_processes=2)
    with pytest.raises(ValueError, match=r"--process_id=2 must be in \[0, 2\)"):
        distributed.initialize("127.0.0.1:1234", num_processes=2, process_id=2)
