"""Small file and report utilities shared by every writer in csc-jax.

* atomic writes (:func:`atomic_write`, :func:`atomic_write_json`, :func:`atomic_output`):
  the data goes to a temporary file in the same folder, is fsync'ed, renamed over the target
  and the folder is fsync'ed, so a crash leaves the old file or the new one, never a part;
* :func:`markdown_table`: the one markdown table writer of reports and READMEs;
* :func:`machine_info`: what a measurement ran on (CPU, cores, load, versions).

Imports no JAX at module level (machine_info imports it when called).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

from csc_jax.errors import OutputExistsError


def _fsync_dir(directory: str) -> None:
    # The rename is durable only once the folder's entry is on disk (not on every platform).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_output_path(path: str | os.PathLike, overwrite: bool) -> str:
    """Refuse to replace an existing ``path`` unless ``overwrite``; check its folder exists.

    Raises:
      OutputExistsError: ``path`` exists and ``overwrite`` is False (the message names it).
      IsADirectoryError / FileNotFoundError: ``path`` is a folder / its folder is missing.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"output path {path} is a directory")
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(
            f"output file {path} already exists; pass --overwrite to replace it"
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"output directory {parent} (for {path}) does not exist")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = True) -> Iterator[str]:
    """Yield a temporary path next to ``path``; fsync and rename it onto ``path`` on success.

    A crash or an error inside the block leaves no partial output and an old file untouched.
    With ``overwrite=False`` an existing ``path`` is refused (:func:`check_output_path`).
    """
    path = os.fspath(path)
    if not overwrite:
        check_output_path(path, overwrite)
    directory, name = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(name)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".tmp{ext}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, path)
        _fsync_dir(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike, data: str | bytes, *, overwrite: bool = True) -> str:
    """Write ``data`` (text as UTF-8) to ``path`` atomically and durably; returns the path."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as f:
        f.write(raw)
    return os.fspath(path)


def atomic_write_json(path: str | os.PathLike, payload: Any, *, indent: int | None = 2) -> str:
    """``json.dump`` ``payload`` to ``path`` atomically (sorted keys are the caller's choice)."""
    return atomic_write(path, json.dumps(payload, indent=indent, default=_json_default) + "\n")


def _json_default(x: Any) -> Any:
    """numpy scalars/arrays and other objects with ``tolist`` / ``item`` become JSON values."""
    for attr in ("tolist", "item"):
        if hasattr(x, attr):
            return getattr(x, attr)()
    return str(x)


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None
) -> str:
    """A GitHub markdown table; ``align`` is one 'l'/'r'/'c' per column (default: all left).

    Cells are ``str()``-ed; '|' inside a cell is escaped so it cannot split the row.
    """
    n = len(header)
    align = align or "l" * n
    if len(align) != n:
        raise ValueError(f"align {align!r} has {len(align)} columns, header has {n}")
    for r in rows:
        if len(r) != n:
            raise ValueError(f"row {list(r)!r} has {len(r)} cells, header has {n}")
    rule = {"l": "---", "r": "---:", "c": ":---:"}

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    out = [line(header), "|" + "|".join(rule[a] for a in align) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, cores, load, OS and library versions, JAX backend and devices, allocator.

    ``cpu_affinity`` lists the cores this process may run on (None where the OS cannot say);
    ``compilation_cache_dir`` is JAX's persistent cache (compile times depend on it).
    """
    import jax

    from csc_jax import allocator

    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    devices = jax.devices()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": os.cpu_count() if affinity is None else len(affinity),
        "cpu_affinity": affinity,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        **{name: _package_version(name) for name in ("jaxlib", "flax", "optax", "numpy")},
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "process_count": jax.process_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
        "allocator": allocator.describe(),
    }


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
