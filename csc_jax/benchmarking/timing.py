"""How every benchmark figure is timed and counted: step times, compilation, FLOPs, memory.

FLOPs come from XLA's cost analysis of the compiled executable. That is the per-device
program (the SPMD-partitioned module under ``sharding``, the per-device body under ``pmap``),
so a step's total is ``flops_per_device * num_devices``; XLA counts elementwise operations
as well as matmuls. Utilisation is reported against the dense peak of known accelerators
(``PEAK_FLOPS``) and is ``None`` ("unknown") elsewhere, CPUs included.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

# Dense (no structured sparsity) peak FLOP/s per JAX device, from the vendors' data sheets.
# 'tf32' is the tensor-core rate GPUs use for float32 matmuls at JAX's default matmul
# precision; 'float32' is the non-tensor-core (vector) rate. A TPU JAX device is one chip.
# Matched in order against ``device.device_kind`` (case-insensitive substrings, all must match;
# the SXM H100 reports e.g. "NVIDIA H100 80GB HBM3", so a plain "h100" after PCIe means SXM).
_H100_SXM = {"bfloat16": 989.4e12, "tf32": 494.7e12, "float32": 66.9e12}  # H200 SXM: same
_H100_PCIE = {"bfloat16": 756e12, "tf32": 378e12, "float32": 51.2e12}
_A100 = {"bfloat16": 312e12, "tf32": 156e12, "float32": 19.5e12}
PEAK_FLOPS: tuple[tuple[str, tuple[str, ...], dict[str, float]], ...] = (
    ("NVIDIA H200", ("h200",), _H100_SXM),
    ("NVIDIA H100 PCIe", ("h100", "pcie"), _H100_PCIE),
    ("NVIDIA H100 SXM", ("h100",), _H100_SXM),
    ("NVIDIA A100", ("a100",), _A100),
    ("TPU v4", ("tpu v4",), {"bfloat16": 275e12}),
    ("TPU v5e", ("tpu v5 lite",), {"bfloat16": 197e12}),
    ("TPU v5e", ("tpu v5e",), {"bfloat16": 197e12}),
    ("TPU v5p", ("tpu v5p",), {"bfloat16": 459e12}),
    ("TPU v5p", ("tpu v5",), {"bfloat16": 459e12}),
)
# H200 NVL and H100 NVL have other clocks/power limits; they fall through to "unknown".
_EXCLUDE_FROM_PEAK = ("nvl",)


def step_time_stats(times: Sequence[float]) -> dict[str, float | int]:
    """Summary of per-step wall times in seconds: median, min, max, mean, stdev, n."""
    if not times:
        raise ValueError("no step times to summarise")
    t = [float(x) for x in times]
    return {
        "median": statistics.median(t),
        "min": min(t),
        "max": max(t),
        "mean": statistics.fmean(t),
        "stdev": statistics.stdev(t) if len(t) > 1 else 0.0,
        "n": len(t),
    }


def timed_steps(
    step: Callable[..., tuple[Any, Any]],
    state: Any,
    next_batch: Callable[[], Any],
    *,
    steps: int,
    warmup: int,
    usage: list[dict[str, float]] | None = None,
) -> tuple[Any, list[float]]:
    """Run ``warmup`` untimed then ``steps`` timed calls of ``state, out = step(state, batch)``.

    Each timed step covers ``next_batch()`` (a constant for device-resident batches; the real
    pipeline and the host-to-device copy otherwise), the step, and ``block_until_ready`` on
    the new state and the step's outputs: nothing of one step overlaps the next.

    ``usage``: if given, each timed step's CPU accounting (:func:`cpu_usage` differences) is
    appended to it.

    Returns:
      (final state, list of ``steps`` wall times in seconds).
    """
    for _ in range(warmup):
        state, out = step(state, next_batch())
        jax.block_until_ready((state, out))
    times = []
    for _ in range(steps):
        before = cpu_usage() if usage is not None else None
        t0 = time.perf_counter()
        state, out = step(state, next_batch())
        jax.block_until_ready((state, out))
        times.append(time.perf_counter() - t0)
        if usage is not None:
            after = cpu_usage()
            usage.append({k: after[k] - before[k] for k in after})
    return state, times


def cpu_usage() -> dict[str, float]:
    """This process's CPU seconds (user, kernel) and minor page faults so far (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": r.ru_utime, "kernel_s": r.ru_stime, "minor_faults": float(r.ru_minflt)}


def cpu_per_step(per_step: Sequence[dict[str, float]]) -> dict:
    """User and kernel CPU seconds and minor faults per step, and the kernel's share of the CPU
    time (what the allocator settings cut), from one :func:`cpu_usage` difference per timed
    step.

    Means over the steps, and the steady state: the median step's kernel share and minor
    faults. The two differ when a one-time event (an allocator growing its heap by the step's
    whole temporaries block, about 560,000 faults) falls inside the timed steps: the mean
    counts it, the median does not.
    """
    n = max(len(per_step), 1)
    d = {k: sum(u[k] for u in per_step) / n for k in ("user_s", "kernel_s", "minor_faults")}
    total = d["user_s"] + d["kernel_s"]
    fractions = [
        u["kernel_s"] / (u["user_s"] + u["kernel_s"])
        for u in per_step
        if u["user_s"] + u["kernel_s"] > 0
    ]
    return {
        "user_s_per_step": d["user_s"],
        "kernel_s_per_step": d["kernel_s"],
        "kernel_fraction": d["kernel_s"] / total if total > 0 else float("nan"),
        "minor_faults_per_step": d["minor_faults"],
        "kernel_fraction_median_step": (
            statistics.median(fractions) if fractions else float("nan")
        ),
        "minor_faults_median_step": (
            statistics.median(u["minor_faults"] for u in per_step) if per_step else float("nan")
        ),
    }


class StepTimer:
    """A compiled step, its current state and its batch source; re-timeable.

    ``time(steps, warmup)`` continues from the state the previous call left, so several
    measurements can alternate on one machine (same load) without compiling again; ``cpu``
    holds the CPU accounting (:func:`cpu_per_step`) of the last timed steps.
    """

    def __init__(self, compiled: Any, state: Any, next_batch: Callable[[], Any]):
        self.compiled = compiled
        self.state = state
        self.next_batch = next_batch
        self.cpu: dict = {}

    def time(self, steps: int, warmup: int) -> list[float]:
        """Wall times in seconds of ``steps`` steps after ``warmup`` untimed ones."""
        if warmup:
            self.state, _ = timed_steps(
                self.compiled, self.state, self.next_batch, steps=0, warmup=warmup
            )
        usage: list[dict[str, float]] = []
        self.state, times = timed_steps(
            self.compiled, self.state, self.next_batch, steps=steps, warmup=0, usage=usage
        )
        self.cpu = cpu_per_step(usage)
        return times


def lower_and_compile(lower: Callable[..., Any], *args: Any) -> tuple[Any, dict[str, float]]:
    """``lower(*args).compile()``, timing each phase.

    Args:
      lower: the ``.lower`` of a jitted function, or ``DataParallel.lower``.
      args: the (placed) arguments the executable is compiled for.

    Returns:
      (compiled executable, {'lower_s', 'compile_s', 'lower_plus_compile_s'} in seconds).
    """
    t0 = time.perf_counter()
    lowered = lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return compiled, {"lower_s": t1 - t0, "compile_s": t2 - t1, "lower_plus_compile_s": t2 - t0}


def first_step(compiled: Any, state: Any, batch: Any) -> tuple[Any, Any, float]:
    """Run the step once, outside the timed steps (it may still finish compiling or
    allocating).

    Returns:
      (new state, the step's outputs, both ready; its wall time in seconds).
    """
    t0 = time.perf_counter()
    state, out = compiled(state, batch)
    jax.block_until_ready((state, out))
    return state, out, time.perf_counter() - t0


def cost_analysis_flops(cost: Any) -> float | None:
    """FLOPs of one execution from ``Compiled.cost_analysis()``.

    JAX returns a dict (recent versions), a list with one dict per program (older versions),
    or None when the backend has no cost model; the list form is summed.
    """
    if cost is None:
        return None
    if isinstance(cost, dict):
        cost = [cost]
    total, found = 0.0, False
    for entry in cost:
        if entry and "flops" in entry:
            total += float(entry["flops"])
            found = True
    return total if found else None


def compiled_flops(compiled: Any) -> float | None:
    """FLOPs of one run of a compiled (or lowered: unoptimised HLO) program per device, or
    None where the backend has no cost model."""
    try:
        return cost_analysis_flops(compiled.cost_analysis())
    except Exception:  # noqa: BLE001 - cost analysis is optional on some backends
        return None


def peak_flops_per_device(device_kind: str, dtype: str) -> tuple[str, float | None, str]:
    """(matched device name, dense peak FLOP/s per device or None, which rate was used).

    float32 on a GPU is compared with the TF32 tensor-core rate when JAX's default matmul
    precision lets XLA use it, else with the vector FP32 rate.
    """
    kind = device_kind.lower()
    if any(x in kind for x in _EXCLUDE_FROM_PEAK):
        return "unknown", None, "-"
    for name, needles, peaks in PEAK_FLOPS:
        if all(n in kind for n in needles):
            rate = dtype
            if dtype == "float32" and "tf32" in peaks:
                precision = str(jax.config.jax_default_matmul_precision or "default").lower()
                rate = "float32" if precision in ("highest", "float32") else "tf32"
            value = peaks.get(rate)
            return (name, value, rate) if value is not None else ("unknown", None, "-")
    return "unknown", None, "-"


def device_peak_memory(devices: Sequence[Any]) -> dict[str, Any]:
    """Runtime peak memory of each device, where the backend reports it (CPU: None -> 'n/a')."""
    peaks, limits = [], []
    for d in devices:
        try:
            stats = d.memory_stats()
        except Exception:  # noqa: BLE001 - some backends raise instead of returning None
            stats = None
        if not stats:
            return {"peak_bytes_in_use": "n/a", "bytes_limit": "n/a"}
        peaks.append(int(stats.get("peak_bytes_in_use", 0)))
        limits.append(int(stats.get("bytes_limit", 0)))
    return {"peak_bytes_in_use": max(peaks), "bytes_limit": max(limits)}


def compiled_memory(compiled: Any) -> dict[str, Any]:
    """XLA's static memory analysis of a compiled executable (bytes), or 'n/a'."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not implemented on every backend / version
        m = None
    if m is None:
        return {"available": False}
    if isinstance(m, (list, tuple)):
        m = m[0]
    out = {"available": True}
    for field in (
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "temp_size_in_bytes",
        "alias_size_in_bytes",
        "generated_code_size_in_bytes",
    ):
        value = getattr(m, field, None)
        if value is not None:
            out[field] = int(value)
    return out


def throughput(
    median_s: float,
    *,
    examples: int,
    mixtures: int,
    audio_s: float,
    flops_per_device: float | None,
    num_devices: int,
    device_kind: str,
    dtype: str,
) -> dict[str, Any]:
    """Rates from the median step time (totals over all devices and per device)."""
    if not median_s > 0:
        raise ValueError(f"median step time must be > 0, got {median_s}")
    out: dict[str, Any] = {
        "steps_per_s": 1.0 / median_s,
        "examples_per_s": examples / median_s,
        "mixtures_per_s": mixtures / median_s,
        "audio_s_per_s": audio_s / median_s,
        "audio_s_per_s_per_device": audio_s / median_s / num_devices,
    }
    name, peak, rate = peak_flops_per_device(device_kind, dtype)
    out["peak_device"] = name
    out["peak_rate"] = rate
    out["peak_flops_per_device"] = peak
    if flops_per_device is None:
        out.update(achieved_flops_per_s=None, achieved_flops_per_s_per_device=None)
        out["utilisation"] = None
        return out
    per_device = flops_per_device / median_s
    out["achieved_flops_per_s"] = per_device * num_devices
    out["achieved_flops_per_s_per_device"] = per_device
    out["utilisation"] = per_device / peak if peak else None
    return out
