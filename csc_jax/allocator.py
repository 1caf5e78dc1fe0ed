"""Host memory allocator for XLA:CPU, chosen before JAX starts.

XLA:CPU allocates a training step's temporaries as one block (about 2.2 GiB at the demo's
shapes) with ``malloc`` and frees it when the step ends. glibc's defaults serve such blocks
with ``mmap`` and return them with ``munmap``, so every step maps, page-faults and zeroes them
afresh: about half of a CPU training step was kernel time (docs/performance.md has the
measurements). :func:`ensure` re-executes the program once with one of, in this order of
preference ('auto'):

* ``tbbmalloc`` (default on x86-64 Linux): oneTBB's scalable allocator, from the ``tbb`` wheel
  that pip installs with csc-jax there, preloaded through its malloc proxy with
  ``TBB_MALLOC_SET_HUGE_SIZE_THRESHOLD`` at 64 MiB: freed blocks of that size and more stay
  mapped and are handed out again, so a steady step takes no page faults for its
  temporaries (kernel share 0.4-0.5 % of the demo's step, measured). It comes first because
  pip brings it everywhere on x86-64, so every such host runs the same allocator;
* ``tcmalloc`` where the system has it (Debian/Ubuntu ``libtcmalloc-minimal4``; found, never
  required): it keeps freed blocks the same way (0.1-0.4 %);
* ``mimalloc`` (pip-only hosts without a ``tbb`` wheel, e.g. aarch64): mimalloc, from the
  ``cmeel-mimalloc`` wheel, preloaded with ``MIMALLOC_PURGE_DELAY=-1``. It keeps small and
  medium blocks, but serves blocks larger than its arenas' largest object (about 2 GiB)
  straight from the OS and unmaps them on ``free`` (whatever the purge delay), so the 2.2 GiB
  block is still faulted in on huge pages and zeroed every step (kernel share about 11 %);
* ``glibc``: glibc's own malloc with ``glibc.malloc.hugetlb=1`` (glibc >= 2.35): the mapped
  blocks use transparent huge pages, 512x fewer page faults (the kernel still zeroes them).

Users need nothing installed or set by hand: train.py, eval.py, benchmark.py, the scripts and
the test suite call :func:`ensure` first (``python -m csc_jax.allocator CMD`` runs any
command with the settings). ``CSC_JAX_ALLOCATOR=tbbmalloc|tcmalloc|mimalloc|glibc|system``
chooses explicitly (``system``: leave the process alone); an explicit choice that is not
installed falls back in the order above. The default is ``glibc`` wherever an
accelerator plugin for JAX (jax-cuda*/libtpu) is installed: on a GPU or TPU host the
accelerator has its own allocator, and nothing is preloaded into a process that talks to its
driver.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import platform
import sys

# 'auto' (default) | 'tbbmalloc' | 'tcmalloc' | 'mimalloc' | 'glibc' | 'system'
ENV_CHOICE = "CSC_JAX_ALLOCATOR"
_APPLIED = "CSC_JAX_ALLOCATOR_APPLIED"  # set before the re-exec, so it happens once
GLIBC_TUNABLE = "glibc.malloc.hugetlb=1"
MIMALLOC_ENV = {"MIMALLOC_PURGE_DELAY": "-1"}  # never return freed memory to the kernel
# tcmalloc would print a line to stderr for every allocation over 1 GiB (each step's block).
TCMALLOC_ENV = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 40)}
# oneTBB keeps freed blocks of at least this many bytes mapped ("huge", not released by its
# regular cleanup); by default it unmaps them, so a step's temporaries would fault every step.
# 64 MiB: the demo backbone's temporaries are smaller than 1 GiB (with a 1 GiB threshold its
# step spent 43 % of its CPU time in the kernel, with 64 MiB 0.7 %: docs/performance.md).
TBBMALLOC_ENV = {"TBB_MALLOC_SET_HUGE_SIZE_THRESHOLD": str(64 << 20)}
# The preloadable allocators, in the order 'auto' prefers them.
PRELOAD_ENV = {"tbbmalloc": TBBMALLOC_ENV, "tcmalloc": TCMALLOC_ENV, "mimalloc": MIMALLOC_ENV}
# Where Debian/Ubuntu, Fedora and Alpine put the system's tcmalloc.
_TCMALLOC_GLOBS = (
    "/usr/lib/*-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
    "/usr/lib/libtcmalloc_minimal.so.4",
    "/usr/local/lib/libtcmalloc_minimal.so.4",
)
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin", "libtpu")


def _glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def mimalloc_library() -> str | None:
    """Path of the libmimalloc shared library of the installed cmeel-mimalloc wheel, or None."""
    for root in sys.path:
        if not root or not os.path.isdir(root):
            continue
        hits = sorted(glob.glob(os.path.join(root, "cmeel.prefix", "lib", "libmimalloc.so.*")))
        if hits:
            return hits[0]
    return None


def tcmalloc_library() -> str | None:
    """Path of the system's libtcmalloc_minimal.so.4 (gperftools), or None."""
    for pattern in _TCMALLOC_GLOBS:
        hits = sorted(p for p in glob.glob(pattern) if os.access(p, os.R_OK))
        if hits:
            return hits[0]
    return None


def _tbb_libraries() -> tuple[str, str] | None:
    """(libtbbmalloc.so.2, libtbbmalloc_proxy.so.2) of the installed ``tbb`` wheel, or None.

    The wheel puts them in ``<prefix>/lib``, which is not on the loader's search path, so the
    proxy's own dependency is preloaded by path too.
    """
    try:
        from importlib import metadata

        files = metadata.files("tbb") or []
        dist = metadata.distribution("tbb")
    except Exception:  # not installed, or unreadable metadata
        return None
    found = {}
    for f in files:
        if f.name in ("libtbbmalloc.so.2", "libtbbmalloc_proxy.so.2"):
            path = os.path.normpath(str(dist.locate_file(f)))
            if os.access(path, os.R_OK):
                found[f.name] = path
    if len(found) < 2:
        return None
    return found["libtbbmalloc.so.2"], found["libtbbmalloc_proxy.so.2"]


def preload_libraries(kind: str) -> list[str]:
    """Every library ``kind`` (a key of PRELOAD_ENV) puts into LD_PRELOAD, in order; the last
    one replaces malloc. [] when it is not installed."""
    if kind == "tbbmalloc":
        return list(_tbb_libraries() or ())
    lib = {"tcmalloc": tcmalloc_library, "mimalloc": mimalloc_library}[kind]()
    return [lib] if lib else []


def library(kind: str) -> str | None:
    """The shared library that replaces malloc for ``kind`` (a key of PRELOAD_ENV), or None."""
    libs = preload_libraries(kind)
    return libs[-1] if libs else None


def _accelerator_plugin() -> bool:
    """Whether a JAX GPU/TPU plugin is installed (checked without importing it)."""
    for name in _ACCELERATOR_PLUGINS:
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def choice() -> str:
    """The allocator this process should run with: a key of PRELOAD_ENV, 'glibc' or 'system'."""
    wanted = os.environ.get(ENV_CHOICE, "auto")
    if wanted == "system" or not _glibc():
        return "system"
    if wanted == "glibc":
        return "glibc"
    if wanted not in ("auto", *PRELOAD_ENV):
        return "system"  # an unknown value must not break the program: say so in describe()
    if wanted in PRELOAD_ENV:  # asked for by name: used if present, else the next best
        order = [wanted] + [k for k in PRELOAD_ENV if k != wanted]
    elif _accelerator_plugin():
        return "glibc"
    else:
        order = list(PRELOAD_ENV)
    for kind in order:
        if library(kind):
            return kind
    return "glibc"


def wanted_environment() -> dict[str, str]:
    """The environment variables of :func:`choice` ({} for 'system')."""
    kind = choice()
    if kind in PRELOAD_ENV:
        libs = preload_libraries(kind)
        preload = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p and p not in libs]
        tuned = {k: os.environ.get(k, v) for k, v in PRELOAD_ENV[kind].items()}  # user's win
        return {"LD_PRELOAD": ":".join([*libs, *preload]), **tuned}
    if kind == "glibc":
        current = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]
        if any(t.split("=", 1)[0] == GLIBC_TUNABLE.split("=")[0] for t in current):
            return {"GLIBC_TUNABLES": ":".join(current)}  # the user's own value wins
        return {"GLIBC_TUNABLES": ":".join([*current, GLIBC_TUNABLE])}
    return {}


def in_force() -> bool:
    """Whether this process started with the wanted settings (or they do not apply)."""
    want = wanted_environment()
    if "LD_PRELOAD" in want:
        preloaded = os.environ.get("LD_PRELOAD", "").split(":")
        return all(lib in preloaded for lib in preload_libraries(choice())) and all(
            os.environ.get(k) == v for k, v in want.items() if k != "LD_PRELOAD"
        )
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


def verify() -> bool | None:
    """Whether the settings are in effect in this process, read from its own memory map.

    tcmalloc / tbbmalloc / mimalloc: its malloc library is mapped (/proc/self/maps). glibc: a
    freshly touched 64 MiB ``malloc`` block is backed by transparent huge pages (AnonHugePages
    in /proc/self/smaps; False where the kernel has THP disabled). None for 'system' or where
    it cannot be read.
    """
    kind = choice()
    if kind == "system":
        return None
    try:
        if kind in PRELOAD_ENV:
            lib = library(kind) or ""
            # The map names the file the soname link resolves to (e.g. ...so.4.5.9).
            names = {os.path.basename(lib), os.path.basename(os.path.realpath(lib))} - {""}
            with open("/proc/self/maps") as f:
                return any(line.split()[-1].rsplit("/", 1)[-1] in names for line in f)
        return _block_uses_huge_pages()
    except OSError:
        return None


def _block_uses_huge_pages(size: int = 64 << 20) -> bool:
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    ptr = libc.malloc(size)
    if not ptr:
        return False
    try:
        ctypes.memset(ptr, 1, size)  # fault the pages in
        with open("/proc/self/smaps") as f:
            inside = False
            for line in f:
                head = line.split()
                if head and "-" in head[0] and len(head[0]) > 8 and ":" not in head[0]:
                    lo, hi = (int(x, 16) for x in head[0].split("-"))
                    inside = lo <= ptr < hi
                elif inside and line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) > 0
    finally:
        libc.free(ptr)
    return False


def describe() -> str:
    """A short description of this process's allocator settings, for reports."""
    kind = choice()
    if kind == "system":
        why = "not glibc" if not _glibc() else f"{ENV_CHOICE}={os.environ.get(ENV_CHOICE)}"
        return f"system ({why})"
    state = "in force" if in_force() else "NOT in force"
    if kind in PRELOAD_ENV:
        env = ", ".join(f"{k}={os.environ.get(k, v)}" for k, v in PRELOAD_ENV[kind].items())
        return f"{kind} ({state}): {library(kind)}, {env}"
    return f"glibc ({state}): GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}"


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
