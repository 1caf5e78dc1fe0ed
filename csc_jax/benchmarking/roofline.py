"""The machine's roofline, measured in the benchmark's own process: matmul FLOP/s and memory
bandwidth, and each measured step's achieved FLOP/s as a fraction of that matmul peak.

Two probes, timed like every step of the benchmark (:class:`.timing.StepTimer`: compiled
first, ``warmup`` untimed calls, then ``steps`` calls each ended by ``block_until_ready``;
the median is reported):

* **matmul**: a jitted ``(n, n) @ (n, n)`` at each size n of ``sizes`` (2 n^3 FLOPs per
  call). The best rate over the sizes is the *matmul peak* of that dtype: what XLA reaches
  on this machine on its most favourable op, the ceiling a compute-bound step could reach
  (a vendor peak is unknown on CPUs, and under a VM's steal time a data-sheet figure would
  not be reachable anyway).
* **stream**: a jitted in-place ``y <- a x + y`` over two float32 arrays of ``mib`` MiB each,
  far larger than the last-level cache. ``y`` is donated, so the output reuses its buffer
  and no fresh temporary is allocated (and page-faulted) per call: the figure is DRAM
  bandwidth, 3 x ``mib`` MiB moved per call (read x, read y, write y), in GB/s (1e9 bytes).

Both run on the default device with all the threads XLA uses for a step.

On a shared VM other processes and the hypervisor take CPU time away (steal), so a rate per
wall second depends on the load at that moment. Each figure therefore also comes per CPU
second (FLOPs over the process's user + kernel CPU time, :func:`.timing.cpu_per_step`): what
the cores did while they ran this process, which the load changes much less.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from csc_jax.benchmarking.settings import DTYPES
from csc_jax.benchmarking.timing import StepTimer, lower_and_compile, step_time_stats

MIB = 2**20


def _timed(compiled: Any, state: Any, args: tuple, *, steps: int, warmup: int) -> dict:
    """Median-of-``steps`` timing of ``compiled`` as a StepTimer step.

    ``state`` is carried through the calls (the donated stream array) or None (the matmul,
    whose output is dropped); returns step-time stats (s) and the CPU accounting per call.
    """
    if state is None:

        def step(carry, batch):
            return carry, compiled(*batch)

    else:

        def step(carry, batch):
            return compiled(carry, *batch), None

    timer = StepTimer(step, state, lambda: args)
    stats = step_time_stats(timer.time(steps, warmup))
    return {"step_time_s": stats, "cpu": timer.cpu}


def _cpu_seconds(cpu: dict[str, float]) -> float:
    return cpu["user_s_per_step"] + cpu["kernel_s_per_step"]


def matmul_rate(n: int, dtype: str, *, steps: int, warmup: int, seed: int = 0) -> dict:
    """GFLOP/s of a jitted ``(n, n) @ (n, n)`` in ``dtype`` ('float32' or 'bfloat16').

    Returns:
      dict: n, dtype, gflop (per call), compile (s), step_time_s (stats, s),
      gflop_per_s (at the median), cpu (per call: user/kernel s, minor faults),
      gflop_per_cpu_s (per CPU second; None when no CPU time was recorded).
    """
    ka, kb = jax.random.split(jax.random.PRNGKey(seed))
    a = jax.random.normal(ka, (n, n), jnp.float32).astype(DTYPES[dtype])
    b = jax.random.normal(kb, (n, n), jnp.float32).astype(DTYPES[dtype])
    compiled, compile_times = lower_and_compile(jax.jit(jnp.matmul).lower, a, b)
    out = _timed(compiled, None, (a, b), steps=steps, warmup=warmup)
    gflop = 2.0 * n**3 / 1e9
    cpu_s = _cpu_seconds(out["cpu"])
    return {
        "n": n,
        "dtype": dtype,
        "gflop": gflop,
        "compile": compile_times,
        **out,
        "gflop_per_s": gflop / out["step_time_s"]["median"],
        "gflop_per_cpu_s": gflop / cpu_s if cpu_s > 0 else None,
    }


def stream_bandwidth(mib: int, *, steps: int, warmup: int) -> dict:
    """GB/s of a jitted in-place axpy ``y <- 1.5 x + y`` over two float32 arrays of ``mib`` MiB.

    Returns:
      dict: mib_per_array, bytes_per_call (3 arrays' worth: read x, read y, write y),
      step_time_s (stats, s), gb_per_s (1e9 bytes/s at the median), cpu (per call).
    """
    size = mib * MIB // 4
    x = jnp.ones((size,), jnp.float32)
    y = jnp.zeros((size,), jnp.float32)

    def axpy(y_, x_):
        return 1.5 * x_ + y_

    compiled, compile_times = lower_and_compile(jax.jit(axpy, donate_argnums=0).lower, y, x)
    out = _timed(compiled, y, (x,), steps=steps, warmup=warmup)
    moved = 3 * size * 4
    return {
        "mib_per_array": mib,
        "bytes_per_call": moved,
        "compile": compile_times,
        **out,
        "gb_per_s": moved / out["step_time_s"]["median"] / 1e9,
    }


def measure_roofline(
    *, sizes: tuple[int, ...], dtypes: tuple[str, ...], stream_mib: int, steps: int, warmup: int
) -> dict[str, Any]:
    """Both probes: the matmul at every size and dtype, then the stream.

    Returns:
      dict: 'matmul' (one :func:`matmul_rate` dict per size and dtype), 'matmul_peak'
      ({dtype: {'gflop_per_s', 'n'}}: the best size; 'gflop_per_cpu_s', 'n_cpu': the best
      rate per CPU second and its size), 'stream' (:func:`stream_bandwidth`).
    """
    rows = [matmul_rate(n, d, steps=steps, warmup=warmup) for d in dtypes for n in sizes]
    peak = {}
    for r in rows:
        p = peak.setdefault(r["dtype"], {"gflop_per_s": 0.0, "gflop_per_cpu_s": None})
        if r["gflop_per_s"] > p["gflop_per_s"]:
            p.update(gflop_per_s=r["gflop_per_s"], n=r["n"])
        if r["gflop_per_cpu_s"] and r["gflop_per_cpu_s"] > (p["gflop_per_cpu_s"] or 0.0):
            p.update(gflop_per_cpu_s=r["gflop_per_cpu_s"], n_cpu=r["n"])
    stream = stream_bandwidth(stream_mib, steps=steps, warmup=warmup)
    return {"matmul": rows, "matmul_peak": peak, "stream": stream}


def against_peak(result: dict[str, Any], roofline: dict[str, Any] | None) -> dict[str, Any]:
    """A measured step's achieved FLOP/s and its fraction of the matmul peak of its dtype.

    Args:
      result: one entry of the report's 'results' (train, pipeline, backbone or loss):
        'flops_per_step' (XLA cost analysis, all devices; None where unknown),
        'step_time_s' and 'dtype'.
      roofline: :func:`measure_roofline`'s dict, or None when it was not measured.

    Returns:
      dict: achieved_gflop_per_s (None without FLOPs), matmul_peak_gflop_per_s and
      fraction_of_matmul_peak (None without FLOPs or without a peak of that dtype); the same
      per CPU second: achieved_gflop_per_cpu_s (None without the step's 'cpu'),
      matmul_peak_gflop_per_cpu_s, fraction_of_matmul_cpu_rate.
    """
    flops = result.get("flops_per_step")
    peak = ((roofline or {}).get("matmul_peak") or {}).get(result.get("dtype", "float32")) or {}
    cpu_s = _cpu_seconds(result["cpu"]) if result.get("cpu") else 0.0

    def rate(seconds, key):
        achieved = None if flops is None or not seconds > 0 else flops / seconds / 1e9
        fraction = None if achieved is None or not peak.get(key) else achieved / peak[key]
        return achieved, peak.get(key), fraction

    wall, wall_peak, wall_fraction = rate(result["step_time_s"]["median"], "gflop_per_s")
    cpu, cpu_peak, cpu_fraction = rate(cpu_s, "gflop_per_cpu_s")
    return {
        "achieved_gflop_per_s": wall,
        "matmul_peak_gflop_per_s": wall_peak,
        "fraction_of_matmul_peak": wall_fraction,
        "achieved_gflop_per_cpu_s": cpu,
        "matmul_peak_gflop_per_cpu_s": cpu_peak,
        "fraction_of_matmul_cpu_rate": cpu_fraction,
    }
