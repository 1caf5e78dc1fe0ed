"""Host memory allocator settings for XLA:CPU, applied before JAX starts.

XLA:CPU allocates the step's temporaries (hundreds of MB) with ``malloc`` and frees them when
the step ends. glibc's defaults serve such blocks with ``mmap`` and return them with
``munmap``, so every step maps, page-faults and zeroes them afresh: about half of a CPU
training step was kernel time (docs/performance.md). :func:`ensure` sets glibc's malloc
tunables so that large blocks come from the heap and stay there, then re-executes the
program once so the C library reads them at start-up (tunables are only read then).

Users need nothing installed or set: train.py, eval.py, benchmark.py, the scripts and the
test suite call :func:`ensure` first. ``CSC_JAX_ALLOCATOR=system`` opts out. On a platform
other than Linux/glibc nothing is changed. The settings only concern host ``malloc``; GPU
and TPU memory are managed by their own allocators.
"""

from __future__ import annotations

import os
import platform
import sys

ENV_CHOICE = "CSC_JAX_ALLOCATOR"  # 'tuned' (default) | 'system'
_APPLIED = "CSC_JAX_ALLOCATOR_APPLIED"  # set before the re-exec, so it happens once

# glibc.malloc.* tunables (glibc >= 2.26; hugetlb >= 2.35; unknown ones are ignored):
#   mmap_max=0          never serve a block with mmap: large blocks come from the heap,
#   trim_threshold=64G  and freed heap memory is not returned to the kernel (no re-faulting),
#   arena_max=1         one heap (XLA frees on other threads than it allocates),
#   hugetlb=1           back the heap with transparent huge pages (512x fewer page faults).
TUNABLES = (
    "glibc.malloc.mmap_max=0",
    "glibc.malloc.trim_threshold=68719476736",
    "glibc.malloc.arena_max=1",
    "glibc.malloc.hugetlb=1",
)


def _glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def wanted_environment() -> dict[str, str]:
    """The environment variables the tuned allocator needs ({} when nothing applies)."""
    if os.environ.get(ENV_CHOICE, "tuned") == "system" or not _glibc():
        return {}
    current = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]
    names = {t.split("=", 1)[0] for t in current}
    # A user's own setting of a tunable wins; ours fill in the rest.
    merged = current + [t for t in TUNABLES if t.split("=", 1)[0] not in names]
    return {"GLIBC_TUNABLES": ":".join(merged)}


def in_force() -> bool:
    """Whether this process started with the tuned settings (or they do not apply)."""
    want = wanted_environment()
    return all(os.environ.get(k) == v for k, v in want.items())


def ensure() -> None:
    """Re-execute the current program once with the allocator settings, if they are missing.

    Call first thing in an entry point, before JAX (or anything large) is imported; the
    re-exec keeps the process id, arguments and the rest of the environment. Does nothing when
    the settings are in force, opted out, or would not apply.
    """
    want = wanted_environment()
    if not want or in_force() or os.environ.get(_APPLIED):
        return
    os.environ.update(want)
    os.environ[_APPLIED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    try:
        os.execv(sys.executable, [sys.executable, *argv[1:]])
    except OSError:  # cannot re-exec (unusual sandbox): run on with the system settings
        return


def set_for_children() -> None:
    """Put the settings into ``os.environ`` so that child processes start with them.

    For a program that cannot be re-executed (pytest's own process: its output capture is
    already set up), so its workers and subprocesses get the settings.
    """
    os.environ.update(wanted_environment())


def heap_serves_large_blocks(size: int = 64 << 20) -> bool | None:
    """Whether a ``size``-byte ``malloc`` of this process lands in the ``[heap]`` mapping.

    The observable effect of the tuned settings (glibc's defaults serve such a block with a
    separate ``mmap``): allocates and frees one block through the C library and looks the
    address up in /proc/self/maps. None where that cannot be checked (not Linux/glibc).
    """
    if not _glibc():
        return None
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    ptr = libc.malloc(size)
    if not ptr:
        return None
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if lo <= ptr < hi:
                    return len(fields) >= 6 and fields[5] == "[heap]"
    finally:
        libc.free(ptr)
    return False


def describe() -> str:
    """A short description of the allocator settings of this process, for reports."""
    if not _glibc():
        return "system (not glibc)"
    if os.environ.get(ENV_CHOICE) == "system":
        return "system (CSC_JAX_ALLOCATOR=system)"
    state = "in force" if in_force() else "NOT in force"
    return f"glibc tuned ({state}): GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}"


def _main(argv: list[str]) -> int:
    """``python -m csc_jax.allocator CMD [ARGS...]``: run CMD with the allocator settings."""
    if not argv:
        print("usage: python -m csc_jax.allocator CMD [ARGS...]", file=sys.stderr)
        return 2
    os.environ.update(wanted_environment())
    os.execvp(argv[0], argv)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
