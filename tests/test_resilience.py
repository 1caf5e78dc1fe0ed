"""Training that survives kills: ``python train.py`` subprocesses with the tiny config.

* SIGKILL mid-run, rerun the same command -> the same parameters as an uninterrupted run,
  bitwise on CPU (same executables, same data order from the restored grain iterator state,
  the same per-step RNG ``fold_in(rng, step)``, and optimizer state restored exactly).
* SIGTERM mid-run -> exit status 75, the message, a readable checkpoint at the step it
  stopped; rerunning finishes bitwise equal to the uninterrupted run too.
* SIGTERM during start-up (while Python imports JAX) or compilation -> exit 75 at step 0.
* A checkpoint that cannot be written (RLIMIT_FSIZE makes the OS refuse, even for root)
  -> CheckpointError naming the directory; the previous checkpoint is kept and readable.
* An injected NaN -> exit status 1 naming the step.

All runs share a persistent compilation cache, so only the first compiles the train step.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from _train_worker import REPO, run_worker, subprocess_env, tiny_cli_flags
from conftest import make_tiny_config

from csc_jax.training.checkpointing import restore_params

pytestmark = pytest.mark.slow

STEPS = 12
OVERRIDES = {"train.steps": STEPS, "train.checkpoint_every": 2, "train.log_every": 1}
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return subprocess_env(compile_cache=tmp_path_factory.mktemp("compile_cache"))


def _command(shared_cache, workdir, *extra) -> list[str]:
    flags = tiny_cli_flags(shared_cache, **OVERRIDES)
    return [sys.executable, "train.py", "--config=configs/default.py", *flags,
            f"--workdir={workdir}", *extra]  # fmt: skip


def _start(cmd, env) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _run(cmd, env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def _metric_rows(workdir) -> dict[int, dict]:
    """step -> row of metrics.jsonl: the rows of one step (training metrics, validation EER)
    merged; a resumed run's repeated steps keep the latest values."""
    rows = {}
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.endswith("\n"):  # skip a line being written
                    row = json.loads(line)
                    rows.setdefault(row["step"], {}).update(row)
    return rows


def _checkpoint_steps(workdir) -> list[int]:
    """Committed checkpoints (orbax renames a step's temporary directory when complete)."""
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def _wait_for(proc, condition, what: str, timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (rc={proc.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _finish(proc, timeout: float = TIMEOUT_S) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _params(shared_cache, workdir):
    config = make_tiny_config(shared_cache, **OVERRIDES)
    _, params, step = restore_params(config, str(workdir))
    return step, jax.tree.map(np.asarray, params)


def _assert_bitwise_equal(a, b) -> None:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared_cache, env):
    """The uninterrupted run: final params and metrics."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    proc = _run(_command(shared_cache, workdir), env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    step, params = _params(shared_cache, workdir)
    assert step == STEPS
    return params, _metric_rows(workdir)


def test_sigkill_then_same_command_matches_uninterrupted_run(
    reference, shared_cache, env, tmp_path
):
    workdir = tmp_path / "run"
    cmd = _command(shared_cache, workdir)
    victim = _start(cmd, env)
    _wait_for(
        victim,
        lambda: max(_metric_rows(workdir), default=0) >= 3 and _checkpoint_steps(workdir),
        "step 3 and a committed checkpoint",
    )
    victim.send_signal(signal.SIGKILL)
    _finish(victim)
    assert victim.returncode == -signal.SIGKILL  # killed, not finished
    assert max(_metric_rows(workdir)) < STEPS
    kept = _checkpoint_steps(workdir)
    assert kept and max(kept) < STEPS

    proc = _run(cmd, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from step {max(kept)}" in proc.stdout
    step, params = _params(shared_cache, workdir)
    assert step == STEPS
    ref_params, ref_rows = reference
    _assert_bitwise_equal(params, ref_params)
    rows = _metric_rows(workdir)
    for s in range(max(kept) + 1, STEPS + 1):  # the resumed steps saw the same data
        assert rows[s]["loss"] == ref_rows[s]["loss"], s


def test_sigterm_saves_current_step_exits_75_and_resumes_exactly(
    reference, shared_cache, env, tmp_path
):
    workdir = tmp_path / "run"
    cmd = _command(shared_cache, workdir)
    proc = _start(cmd, env)
    _wait_for(proc, lambda: max(_metric_rows(workdir), default=0) >= 3, "step 3")
    seen = max(_metric_rows(workdir))
    proc.send_signal(signal.SIGTERM)
    _, err = _finish(proc)
    assert proc.returncode == 75, err[-3000:]
    assert "rerun the same command to resume" in err
    stopped = int(err.split("preempted at step ")[1].split(" ")[0])
    # The next step boundary: the metrics lag one step, and one more step may be queued.
    assert seen <= stopped <= seen + 3 and stopped < STEPS
    assert f"preempted at step {stopped} (SIGTERM): checkpoint saved in {workdir}" in err
    assert max(_checkpoint_steps(workdir)) == stopped
    assert _params(shared_cache, workdir)[0] == stopped  # readable
    assert max(_metric_rows(workdir)) == stopped  # its metrics were flushed

    proc = _run(cmd, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from step {stopped}" in proc.stdout
    step, params = _params(shared_cache, workdir)
    assert step == STEPS
    _assert_bitwise_equal(params, reference[0])


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has installed a SIGTERM handler (Linux /proc SigCgt mask)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    except OSError:  # already gone: _wait_for reports how it ended
        return False
    return bool(mask >> (signal.SIGTERM - 1) & 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_during_startup_exits_75_without_training(shared_cache, env, tmp_path):
    """A notice that arrives while Python is still importing JAX is not lost (nor fatal)."""
    workdir = tmp_path / "run"
    proc = _start(_command(shared_cache, workdir), env)
    _wait_for(proc, lambda: _catches_sigterm(proc.pid), "the start-up SIGTERM handler")
    proc.send_signal(signal.SIGTERM)
    _, err = _finish(proc)
    assert proc.returncode == 75, err[-3000:]
    assert "preempted at step 0 (SIGTERM): before training started" in err
    assert "rerun the same command to resume" in err
    assert _checkpoint_steps(workdir) == [] and _metric_rows(workdir) == {}


def test_sigterm_during_setup_and_compilation_stops_at_step_0(shared_cache, tmp_path):
    """Sent once config.json exists: data/model set-up and the state's compilation follow.

    Before the fix the handler was installed only when the step loop began, so this killed
    the process (status -15) without a checkpoint. Here there is no compilation cache.
    """
    workdir = tmp_path / "run"
    proc = _start(_command(shared_cache, workdir), subprocess_env())
    _wait_for(proc, lambda: os.path.exists(workdir / "config.json"), "config.json")
    proc.send_signal(signal.SIGTERM)
    _, err = _finish(proc)
    assert proc.returncode == 75, err[-3000:]
    assert "preempted at step 0 (SIGTERM)" in err
    assert _metric_rows(workdir) == {}  # no training step ran
    if "checkpoint saved" in err:  # the signal came after the start-up check
        assert _checkpoint_steps(workdir) == [0]
        assert _params(shared_cache, workdir)[0] == 0


def test_failed_checkpoint_write_keeps_previous_and_raises(shared_cache, env, tmp_path):
    workdir = tmp_path / "run"
    overrides = dict(OVERRIDES, **{"train.keep_checkpoints": 1})
    spec = {
        "cache_dir": str(shared_cache),
        "out": str(tmp_path / "res"),
        "jobs": [
            {
                "kind": "expect_error",
                "name": "run",
                "workdir": str(workdir),
                "overrides": overrides,
                "fail_writes_after_step": 2,
            }
        ],
    }
    proc = run_worker(spec, env, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "res.p0.json") as f:
        r = json.load(f)["run"]
    assert r["error_type"] == "CheckpointError", r
    assert str(workdir / "checkpoints") in r["error"]
    assert "writing checkpoint step 4" in r["error"] and "File too large" in r["error"], r
    assert "previous complete checkpoint (step 2) is kept" in r["error"]
    # keep_checkpoints=1, yet the failed save did not remove the previous checkpoint.
    assert _checkpoint_steps(workdir) == [2]
    config = make_tiny_config(shared_cache, **overrides)
    _, params, step = restore_params(config, str(workdir))
    assert step == 2 and all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))

    # Once writes work again, rerunning resumes from it (the failed save's temporary
    # directory is cleaned up and its step written anew).
    del spec["jobs"][0]["fail_writes_after_step"]
    spec["jobs"][0]["kind"] = "train"
    proc = run_worker(spec, env, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from step 2" in proc.stdout
    assert _checkpoint_steps(workdir) == [STEPS]
    assert not [n for n in os.listdir(workdir / "checkpoints") if "tmp" in n]


def test_cli_nan_exits_1_naming_the_step(shared_cache, env, tmp_path):
    workdir = tmp_path / "run"
    cmd = _command(shared_cache, workdir)
    cmd[1:2] = ["tests/_nan_train.py", "3"]  # train.py with a NaN batch at step 3
    proc = _run(cmd, env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "error: non-finite loss or gradient at step 3" in proc.stderr
    assert "last good checkpoint: step 2" in proc.stderr
    assert _checkpoint_steps(workdir) == [2]


def _truncate_every_file(directory) -> int:
    """Cut every file under ``directory`` to half its size (bit rot, an interrupted copy)."""
    count = 0
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.truncate(size // 2)
            count += 1
    return count


def test_damaged_newest_checkpoint_resumes_from_the_previous_one(
    reference, shared_cache, env, tmp_path
):
    """Every file of the newest checkpoint truncated: the rerun moves it aside (named in a
    warning), resumes from the previous checkpoint and ends bitwise equal to an
    uninterrupted run."""
    workdir = tmp_path / "run"
    cmd = _command(shared_cache, workdir)
    proc = _run(cmd, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kept = _checkpoint_steps(workdir)
    assert kept == [STEPS - 2, STEPS]
    assert _truncate_every_file(workdir / "checkpoints" / str(STEPS)) > 0

    proc = _run(cmd, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from step {STEPS - 2}" in proc.stdout
    warning = [line for line in proc.stderr.splitlines() if "is damaged" in line]
    assert len(warning) == 1, proc.stderr[-3000:]
    assert f"checkpoint step {STEPS} in {workdir / 'checkpoints'} is damaged" in warning[0]
    aside = os.listdir(workdir / "damaged_checkpoints")
    assert len(aside) == 1 and aside[0].startswith(f"{STEPS}-")
    assert str(workdir / "damaged_checkpoints" / aside[0]) in warning[0]
    assert os.listdir(workdir / "damaged_checkpoints" / aside[0])  # kept, not deleted
    step, params = _params(shared_cache, workdir)
    assert step == STEPS
    _assert_bitwise_equal(params, reference[0])
