"""The host allocator settings reach every training process (csc_jax/allocator.py)."""

import json
import subprocess
import sys

import pytest
from _train_worker import REPO, subprocess_env, tiny_cli_flags

from csc_jax import allocator

linux_glibc = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and allocator._glibc()),
    reason="the allocator settings apply to Linux/glibc only",
)
CHECK = "from csc_jax import allocator; allocator.ensure(); print(allocator.verify())"


def _clean_env(**extra) -> dict:
    """A child environment without the settings, as a user's shell would have."""
    env = subprocess_env()
    for key in ("GLIBC_TUNABLES", "LD_PRELOAD", allocator.ENV_CHOICE, allocator._APPLIED):
        env.pop(key, None)
    for key in allocator.MIMALLOC_ENV:
        env.pop(key, None)
    env.update(extra)
    return env


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )


@linux_glibc
def test_train_py_runs_with_the_allocator_mapped(shared_cache, tmp_path):
    """train.py, started from an environment without the settings, re-executes itself with
    them; the training process verifies them in its own memory map (run_info.json)."""
    workdir = tmp_path / "run"
    flags = tiny_cli_flags(shared_cache, **{"train.steps": 1})
    proc = subprocess.run(
        [sys.executable, "train.py", *flags, f"--workdir={workdir}"],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((workdir / "run_info.json").read_text())
    assert info["allocator_verified"] is True, info
    expected = "mimalloc" if allocator.mimalloc_library() else "glibc"
    assert info["allocator"].startswith(f"{expected} (in force)"), info["allocator"]


@linux_glibc
@pytest.mark.skipif(allocator.mimalloc_library() is None, reason="cmeel-mimalloc not installed")
def test_mimalloc_is_mapped_and_the_opt_out_is_not():
    """The check can fail: with CSC_JAX_ALLOCATOR=system nothing is preloaded."""
    tuned = _python(CHECK, _clean_env())
    assert tuned.stdout.split() == ["True"], tuned.stderr
    maps_code = "print(any('libmimalloc' in l for l in open('/proc/self/maps')))"
    off = _python(
        CHECK.replace("print(allocator.verify())", maps_code),
        _clean_env(**{allocator.ENV_CHOICE: "system"}),
    )
    assert off.stdout.split() == ["False"], off.stderr


@linux_glibc
def test_glibc_choice_sets_the_tunable_and_keeps_the_users():
    proc = _python(
        "from csc_jax import allocator; allocator.ensure(); import os; "
        "print(os.environ['GLIBC_TUNABLES']); print(allocator.describe())",
        _clean_env(**{allocator.ENV_CHOICE: "glibc", "GLIBC_TUNABLES": "glibc.foo=1"}),
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == f"glibc.foo=1:{allocator.GLIBC_TUNABLE}", proc.stderr
    assert lines[1].startswith("glibc (in force)")
    # The user's own hugetlb value wins.
    env = _clean_env(**{allocator.ENV_CHOICE: "glibc", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"})
    proc = _python("from csc_jax import allocator; print(allocator.wanted_environment())", env)
    assert "'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'" in proc.stdout
