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
    for key in (k for tuned in allocator.PRELOAD_ENV.values() for k in tuned):
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
    expected = next((k for k in allocator.PRELOAD_ENV if allocator.library(k)), "glibc")
    assert info["allocator"].startswith(f"{expected} (in force)"), info["allocator"]


@linux_glibc
@pytest.mark.skipif(allocator.mimalloc_library() is None, reason="cmeel-mimalloc not installed")
def test_mimalloc_is_mapped_and_the_opt_out_is_not():
    """The check can fail: with CSC_JAX_ALLOCATOR=system nothing is preloaded."""
    tuned = _python(CHECK, _clean_env(**{allocator.ENV_CHOICE: "mimalloc"}))
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


# malloc, touch and free a block of N bytes twice; the page faults of each round.
REUSE = """
import ctypes, resource, sys
from csc_jax import allocator
allocator.ensure()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = int(sys.argv[1])
for _ in range(2):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    libc.free(p)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(allocator.describe())
"""


def _reuse(n: int, env: dict) -> tuple[int, int, str]:
    proc = subprocess.run(
        [sys.executable, "-c", REUSE, str(n)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    first, second, desc = proc.stdout.splitlines()
    return int(first), int(second), desc


# (allocator, block size): tbbmalloc keeps blocks from TBB_MALLOC_SET_HUGE_SIZE_THRESHOLD up.
REUSING = [("tcmalloc", 256 << 20), ("tbbmalloc", 256 << 20)]


@linux_glibc
@pytest.mark.parametrize("kind,n", REUSING, ids=[k for k, _ in REUSING])
def test_the_preloaded_allocator_reuses_a_freed_large_block(kind, n):
    """Why they are preferred: the step's temporaries (one block of gigabytes) are freed and
    allocated again every step; tcmalloc and the tuned tbbmalloc hand the same mapped pages
    back (no page faults the second time), the system's malloc maps and faults them again."""
    if allocator.library(kind) is None:
        pytest.skip(f"{kind} is not installed here")
    first, second, desc = _reuse(n, _clean_env(**{allocator.ENV_CHOICE: kind}))
    assert desc.startswith(f"{kind} (in force)"), desc
    assert first >= n // (2 << 20)  # at least one fault per 2 MiB page
    assert second < 100, (first, second)
    _, plain, _ = _reuse(n, _clean_env(**{allocator.ENV_CHOICE: "system"}))
    assert plain >= n // 4096, plain


@linux_glibc
@pytest.mark.skipif(allocator.library("tbbmalloc") is None, reason="tbb wheel not installed")
def test_tbbmalloc_without_its_threshold_faults_the_block_again():
    """The threshold is what makes tbbmalloc keep the block: the user's own value wins, and a
    threshold above the block's size gives the faults back."""
    env = _clean_env(**{allocator.ENV_CHOICE: "tbbmalloc"})
    env["TBB_MALLOC_SET_HUGE_SIZE_THRESHOLD"] = str(1 << 30)
    first, second, desc = _reuse(256 << 20, env)
    assert desc.startswith("tbbmalloc (in force)") and f"={1 << 30}" in desc, desc
    assert second >= (256 << 20) // (2 << 20), (first, second)


def test_an_explicit_choice_falls_back_when_its_library_is_missing(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: True)
    monkeypatch.setattr(allocator, "_accelerator_plugin", lambda: False)
    monkeypatch.delenv("LD_PRELOAD", raising=False)  # conftest sets it for the workers
    monkeypatch.setattr(allocator, "tcmalloc_library", lambda: None)
    monkeypatch.setattr(allocator, "_tbb_libraries", lambda: None)
    monkeypatch.setattr(allocator, "mimalloc_library", lambda: "/x/libmimalloc.so.3")
    monkeypatch.setenv(allocator.ENV_CHOICE, "tcmalloc")
    assert allocator.choice() == "mimalloc"
    monkeypatch.setenv(allocator.ENV_CHOICE, "auto")
    assert allocator.choice() == "mimalloc"
    monkeypatch.setattr(allocator, "tcmalloc_library", lambda: "/y/libtcmalloc_minimal.so.4")
    assert allocator.choice() == "tcmalloc"
    assert allocator.wanted_environment()["LD_PRELOAD"].startswith("/y/libtcmalloc_minimal")
    monkeypatch.setattr(allocator, "tcmalloc_library", lambda: None)
    tbb = ("/z/lib/libtbbmalloc.so.2", "/z/lib/libtbbmalloc_proxy.so.2")
    monkeypatch.setattr(allocator, "_tbb_libraries", lambda: tbb)
    assert allocator.choice() == "tbbmalloc"
    # The proxy's own dependency is preloaded by path, ahead of it.
    assert allocator.wanted_environment()["LD_PRELOAD"] == ":".join(tbb)
    # Both present: the pip wheel's tbbmalloc by default, the system's tcmalloc when asked for.
    monkeypatch.setattr(allocator, "tcmalloc_library", lambda: "/y/libtcmalloc_minimal.so.4")
    assert allocator.choice() == "tbbmalloc"
    monkeypatch.setenv(allocator.ENV_CHOICE, "tcmalloc")
    assert allocator.choice() == "tcmalloc"
    monkeypatch.setenv(allocator.ENV_CHOICE, "auto")
    monkeypatch.setattr(allocator, "_accelerator_plugin", lambda: True)
    assert allocator.choice() == "glibc"  # nothing preloaded next to a GPU/TPU driver
