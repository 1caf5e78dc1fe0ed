"""The host allocator settings reach every training process (csc_jax/allocator.py)."""

import json
import os
import subprocess
import sys

import pytest
from _train_worker import REPO, subprocess_env, tiny_cli_flags

from csc_jax import allocator

linux_glibc = pytest.mark.skipif(
    allocator.wanted_environment() == {} and os.environ.get(allocator.ENV_CHOICE) != "system",
    reason="the tuned settings apply to Linux/glibc only",
)


def _clean_env() -> dict:
    """A child environment without the settings, as a user's shell would have."""
    env = subprocess_env()
    for key in ("GLIBC_TUNABLES", allocator.ENV_CHOICE, "CSC_JAX_ALLOCATOR_APPLIED"):
        env.pop(key, None)
    return env


@linux_glibc
def test_train_py_starts_with_the_tuned_allocator(shared_cache, tmp_path):
    """train.py, started from an environment without the settings, re-executes itself with
    them: in the training process a 64 MiB malloc is served from the [heap] mapping (with
    glibc's defaults it gets its own mmap), recorded in run_info.json."""
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
    assert info["allocator_heap_serves_large_blocks"] is True, info
    assert "in force" in info["allocator"] and "NOT" not in info["allocator"]


@linux_glibc
def test_system_allocator_opt_out_is_visible_in_the_process_map():
    """The check can fail: with CSC_JAX_ALLOCATOR=system a large block gets its own mmap."""
    code = "from csc_jax import allocator; allocator.ensure(); "
    code += "print(allocator.heap_serves_large_blocks())"
    env = _clean_env()
    tuned = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    env[allocator.ENV_CHOICE] = "system"
    system = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert tuned.stdout.split() == ["True"], tuned.stderr
    assert system.stdout.split() == ["False"], system.stderr


def test_user_tunables_are_kept(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4:glibc.foo=1")
    monkeypatch.delenv(allocator.ENV_CHOICE, raising=False)
    want = allocator.wanted_environment()
    if not want:
        pytest.skip("not Linux/glibc")
    parts = want["GLIBC_TUNABLES"].split(":")
    assert parts[:2] == ["glibc.malloc.arena_max=4", "glibc.foo=1"]  # the user's win
    assert "glibc.malloc.arena_max=1" not in parts
    assert "glibc.malloc.mmap_max=0" in parts
