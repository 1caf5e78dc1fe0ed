"""Throughput benchmark of the CSC train step, the input pipeline and the separation backbone.

Everything ``benchmark.py`` measures lives here so tests import it. Three kinds of measurement
(``BenchSettings.modes``):

* ``train``: the project's real train step (``csc_jax.training.parallel.DataParallel`` over
  ``csc_jax.training.step.train_step``) on a synthetic batch that is put on the device once,
  so the input pipeline is excluded. Timed per step, each step ended with
  ``jax.block_until_ready`` on the new state and the metrics.
* ``pipeline``: the same step fed by the real input pipeline
  (``sources.make_source`` + ``pipeline.make_train_iterator``): each timed step includes
  ``next(iterator)``, ``DataParallel.put_batch`` and the step. Also the pipeline alone
  (``pipeline.measure_throughput``, crops/s) with ``config.data.num_workers`` workers.
* ``losses``: each public loss of ``csc_jax.losses`` (value and gradient, one ``jax.jit``) on
  one ``(16, 2, 32000)`` float array, the shape of a batch of 16 two-source 4 s mixtures at
  8 kHz; see ``bench_losses`` for how each loss reads that array.
* ``backbone``: the separation backbone alone (Conv-TasNet: learned encoder + TCN + 2-source
  sigmoid mask + decoder, built from the project's own ``WaveformEncoder``,
  ``SeparatorTrunk`` and ``WaveformDecoder``) trained with ``losses.pit_si_snr_loss`` and
  ``optax.adam`` on 2-speaker mixtures, so figures compare with other separation toolkits
  (``scripts/pytorch_convtasnet_baseline.py`` trains asteroid's ConvTasNet at the same shapes).

What is counted. ``audio_s_per_step = B * K * segment_seconds`` for the CSC step: the
mixtures the separative encoder sees (B target utterances, each under K interfering
conditions). The loss may run further forward passes that are not counted there: with
``loss.stream_weights='components'`` the step also embeds the clean target and the
interfering-speech component of every mixture (2 * B * K more single-utterance passes through
the trunk; ``trunk_audio_s_per_step`` counts them). For the backbone,
``audio_s_per_step = batch * segment_seconds`` (the mixtures; each yields 2 estimates).

FLOPs come from XLA's cost analysis of the compiled executable. That is the per-device
program (the SPMD-partitioned module under ``sharding``, the per-device body under ``pmap``),
so the step's total is ``flops_per_device * num_devices``; XLA counts elementwise operations
as well as matmuls. Utilisation is reported against the dense peak of known accelerators
(``PEAK_FLOPS``) and is ``None`` ("unknown") elsewhere, CPUs included.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from csc_jax import losses
from csc_jax.config import validate_config
from csc_jax.models.encoder import WaveformDecoder, WaveformEncoder
from csc_jax.models.separator import SeparatorTrunk

MODES = ("train", "pipeline", "backbone", "losses")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTORCH_SCRIPT = os.path.join(REPO_ROOT, "scripts", "pytorch_convtasnet_baseline.py")

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


@dataclasses.dataclass(frozen=True)
class BackboneShapes:
    """Shapes of one Conv-TasNet backbone measurement (Conv-TasNet paper notation).

    Attributes:
      name: label in the report ('paper', 'demo', ...).
      enc_filters: N. enc_kernel: L (stride L/2). bottleneck: B (= skip channels Sc).
      hidden: H. conv_kernel: P. blocks: X. repeats: R. n_src: sources separated.
      sample_rate: Hz. segment_seconds: mixture length. batch_size: mixtures per step.
      learning_rate: Adam step size (does not change the cost).
    """

    name: str
    enc_filters: int
    enc_kernel: int
    bottleneck: int
    hidden: int
    conv_kernel: int
    blocks: int
    repeats: int
    sample_rate: int
    segment_seconds: float
    batch_size: int
    n_src: int = 2
    learning_rate: float = 1e-3

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))


@dataclasses.dataclass
class BenchSettings:
    """What to measure (see configs/benchmark.py for the preset and benchmark.py for flags).

    Attributes:
      modes: subset of MODES.
      parallel: parallel modes of the train step ('sharding', 'pmap').
      dtypes: compute dtypes ('float32', 'bfloat16').
      batch_sizes: global batch sizes B to sweep (empty = the experiment config's).
      segment_seconds: crop lengths to sweep (empty = the experiment config's).
      steps: timed steps per measurement. warmup: untimed steps before them (after compile).
      pipeline_batches: batches timed by the pipeline-alone measurement.
      backbone: backbone shapes to measure.
      pytorch_python: Python interpreter with torch + asteroid; '' = no PyTorch comparison.
      pytorch_rounds: alternating JAX / PyTorch timing rounds per backbone shape.
      pytorch_threads: torch.set_num_threads for the PyTorch baseline.
      profile_dir: '' = no profile; else write jax.profiler traces of the CSC step at the
        experiment's shapes and of each float32 backbone here, and add a per-layer breakdown
        of op time to the report (``profile_breakdown``).
      profile_steps: steps traced per profile.
      loss_shape: the ``(batch, sources, samples)`` array of ``mode='losses'``.
    """

    modes: tuple[str, ...] = MODES
    parallel: tuple[str, ...] = ("sharding",)
    dtypes: tuple[str, ...] = ("float32",)
    batch_sizes: tuple[int, ...] = ()
    segment_seconds: tuple[float, ...] = ()
    steps: int = 5
    warmup: int = 2
    pipeline_batches: int = 10
    backbone: tuple[BackboneShapes, ...] = ()
    pytorch_python: str = ""
    pytorch_rounds: int = 1
    pytorch_threads: int = 2
    profile_dir: str = ""
    profile_steps: int = 3
    loss_shape: tuple[int, int, int] = (16, 2, 32000)

    def validate(self) -> None:
        bad = sorted(set(self.modes) - set(MODES))
        if bad or not self.modes:
            raise ValueError(f"mode(s) {bad or '(none)'} not in {MODES} (or 'all')")
        for p in self.parallel:
            if p not in ("sharding", "pmap"):
                raise ValueError(f"parallel mode {p!r} is not 'sharding' or 'pmap'")
        for d in self.dtypes:
            if d not in DTYPES:
                raise ValueError(f"dtype {d!r} is not one of {tuple(DTYPES)}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.pipeline_batches < 1:
            raise ValueError(f"pipeline_batches must be >= 1, got {self.pipeline_batches}")
        if self.profile_steps < 1:
            raise ValueError(f"profile_steps must be >= 1, got {self.profile_steps}")
        if self.pytorch_rounds < 1:
            raise ValueError(f"pytorch_rounds must be >= 1, got {self.pytorch_rounds}")
        if len(self.loss_shape) != 3 or min(self.loss_shape) < 1:
            raise ValueError(f"loss_shape must be 3 positive sizes, got {self.loss_shape}")
        if "losses" in self.modes and self.loss_shape[1] < 2:
            raise ValueError(f"loss_shape {self.loss_shape}: needs >= 2 sources for PIT")
        if "backbone" in self.modes and not self.backbone:
            raise ValueError("mode 'backbone' needs at least one backbone shape")


# ---------------------------------------------------------------------- small, pure helpers
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


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    """Versions, devices and machine load at the time of the call."""
    import flax
    import jaxlib

    devices = jax.devices()
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "process_count": jax.process_count(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "load_average": list(os.getloadavg()),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
        "hostname_platform": platform.platform(),
    }


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


def _block(tree: Any) -> None:
    jax.block_until_ready(tree)


def timed_steps(
    step: Callable[..., tuple[Any, Any]],
    state: Any,
    next_batch: Callable[[], Any],
    *,
    steps: int,
    warmup: int,
) -> tuple[Any, list[float]]:
    """Run ``warmup`` untimed then ``steps`` timed calls of ``state, out = step(state, batch)``.

    Each timed step covers ``next_batch()`` (a constant for device-resident batches; the real
    pipeline and the host-to-device copy otherwise), the step, and ``block_until_ready`` on
    the new state and the step's outputs: nothing of one step overlaps the next.

    Returns:
      (final state, list of ``steps`` wall times in seconds).
    """
    for _ in range(warmup):
        state, out = step(state, next_batch())
        _block((state, out))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, out = step(state, next_batch())
        _block((state, out))
        times.append(time.perf_counter() - t0)
    return state, times


class StepTimer:
    """A compiled step, its current state and its batch source; re-timeable.

    ``time(steps, warmup)`` continues from the state the previous call left, so several
    measurements can alternate on one machine (same load) without compiling again.
    """

    def __init__(self, compiled: Any, state: Any, next_batch: Callable[[], Any]):
        self.compiled = compiled
        self.state = state
        self.next_batch = next_batch

    def time(self, steps: int, warmup: int) -> list[float]:
        self.state, times = timed_steps(
            self.compiled, self.state, self.next_batch, steps=steps, warmup=warmup
        )
        return times


def _compile(jitted: Any, *args: Any) -> tuple[Any, dict[str, float]]:
    """Lower and compile ``jitted`` for ``args``, timing each phase (seconds)."""
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return compiled, {"lower_s": t1 - t0, "compile_s": t2 - t1, "lower_plus_compile_s": t2 - t0}


def _flops(compiled: Any) -> float | None:
    try:
        return cost_analysis_flops(compiled.cost_analysis())
    except Exception:  # noqa: BLE001 - cost analysis is optional on some backends
        return None


# ---------------------------------------------------------------------- the pure losses
def _loss_cases(shape: tuple[int, int, int]) -> dict[str, tuple[Callable, str]]:
    """name -> (``f(x, y) -> scalar``, how it reads the two ``(B, S, T)`` arrays).

    ``x`` is what the gradient is taken with respect to (estimates / embeddings), ``y`` a
    second array of the same shape (references / the other stream or view).
    """
    b, s, t = shape
    heads = 4
    width = heads * 16
    keys_per_row = (s * t) // width  # the trailing remainder (if any) is cut off

    def attention(x, y):
        kv = x.reshape(b, -1)[:, : keys_per_row * width].reshape(b, keys_per_row, heads, 16)
        query = y.reshape(b, -1)[:, :width].reshape(b, heads, 16)
        pooled, _ = losses.cross_attention_pool(query, kv, kv)
        return jnp.mean(pooled**2)

    return {
        "si_snr": (
            lambda x, y: -jnp.mean(losses.si_snr(x, y)),
            f"-mean SI-SNR of ({b}, {s}, {t}) estimates vs references",
        ),
        "pit_si_snr_loss": (
            lambda x, y: losses.pit_si_snr_loss(x, y)[0],
            f"PIT over {s} sources, ({b}, {s}, {t}) estimates vs references",
        ),
        "csc_loss": (
            lambda x, y: losses.csc_loss(x, y, jnp.roll(y, 1, axis=0), temperature=0.1),
            f"global vectors ({b}, K={s}, D={t}) = x vs target streams y, interference streams "
            "y of the next example",
        ),
        "nt_xent": (
            lambda x, y: losses.nt_xent(x[:, 0], x[:, 1], temperature=0.1),
            f"two views ({b}, D={t}) = x[:, 0], x[:, 1]",
        ),
        "cross_attention_pool": (
            attention,
            f"keys = values ({b}, {keys_per_row}, {heads} heads, 16), one query per head",
        ),
    }


def bench_losses(
    shape: tuple[int, int, int] = (16, 2, 32000),
    *,
    steps: int,
    warmup: int,
    dtype: str = "float32",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Compile and time ``jax.value_and_grad`` of each loss in ``csc_jax.losses``.

    Args:
      shape: ``(B, S, T)`` of the two float inputs (random normal from ``seed``).
      steps: timed calls (each ended with ``block_until_ready``). warmup: untimed calls.
      dtype: input dtype ('float32' or 'bfloat16'; the losses reduce in float32).

    Returns:
      one dict per loss: name, what it computes on the array, compile times, step-time stats
      (s), FLOPs of the compiled program, and the loss value (finite-checked).
    """
    kx, ky = jax.random.split(jax.random.PRNGKey(seed))
    x = jax.random.normal(kx, shape, jnp.float32).astype(DTYPES[dtype])
    y = jax.random.normal(ky, shape, jnp.float32).astype(DTYPES[dtype])
    out = []
    for name, (fn, reads) in _loss_cases(tuple(shape)).items():
        jitted = jax.jit(jax.value_and_grad(fn))
        compiled, compile_times = _compile(jitted, x, y)
        value, grad = compiled(x, y)
        _block((value, grad))
        value = float(value)
        if not (math.isfinite(value) and bool(jnp.all(jnp.isfinite(grad)))):
            raise FloatingPointError(f"loss {name}: non-finite value or gradient ({value})")
        for _ in range(warmup):
            _block(compiled(x, y))
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            _block(compiled(x, y))
            times.append(time.perf_counter() - t0)
        out.append(
            {
                "kind": "loss",
                "name": name,
                "reads": reads,
                "shape": list(shape),
                "dtype": dtype,
                "compile": compile_times,
                "step_time_s": step_time_stats(times),
                "flops_per_step": _flops(compiled),
                "value": value,
            }
        )
    return out


# ---------------------------------------------------------------------- the CSC train step
def _experiment_variant(config: Any, *, parallel: str, dtype: str, batch: int, seconds: float):
    c = copy.deepcopy(config)
    c.parallel = parallel
    c.dtype = dtype
    c.data.batch_size = int(batch)
    c.data.segment_seconds = float(seconds)
    return c


def _trunk_passes(config: Any) -> int:
    """Waveforms per mixture that go through the trunk in one step (see the module docstring).

    Mirrors csc_jax/training/step.py: 'components' stream weights embed the target and the
    interfering-speech component of each mixture with the model itself (2 more passes).
    """
    if config.method == "csc" and config.loss.stream_weights == "components":
        return 3
    return 1


def _synthetic_host_batch(batch: int, k: int, t: int, seed: int) -> dict[str, np.ndarray]:
    """Clean-crop batch shaped like the pipeline's: {'target','interferer'} (B, K, T) float32.

    Speech-like amplitude (RMS 0.1); mixing happens on the device, as in training.
    """
    rng = np.random.default_rng(seed)
    return {
        name: (0.1 * rng.standard_normal((batch, k, t))).astype(np.float32)
        for name in ("target", "interferer")
    }


def bench_train_step(
    config: Any,
    *,
    steps: int,
    warmup: int,
    real_pipeline: bool = False,
    devices: Sequence[Any] | None = None,
    keep_timer: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], StepTimer]:
    """Compile and time the CSC train step of ``config`` (its parallel mode, dtype, B, T).

    Args:
      config: a complete experiment config (validated here).
      steps, warmup: timed and untimed steps after compilation.
      real_pipeline: feed each step from the real input pipeline (``next`` + ``put_batch``
        are inside the timed region) instead of one device-resident synthetic batch.
      devices: devices to use (default: all).
      keep_timer: also return a StepTimer to re-time the step later (device-resident only).

    Returns:
      dict of figures (kind, shapes, 'compile', 'step_time_s', 'flops_per_step',
      'throughput', 'memory', ...), and the StepTimer when ``keep_timer``.
    """
    if keep_timer and real_pipeline:
        raise ValueError("keep_timer needs device-resident batches (real_pipeline=False)")
    from csc_jax.data import pipeline, sources
    from csc_jax.models import model_from_config
    from csc_jax.training.parallel import DataParallel
    from csc_jax.training.state import create_train_state, make_optimizer

    devices = list(jax.devices() if devices is None else devices)
    validate_config(config, num_devices=len(devices))
    model = model_from_config(config)
    tx = make_optimizer(config)
    dp = DataParallel(config.parallel, model, tx, config, devices=devices)
    k = config.mixing.num_conditions
    t = int(round(config.data.segment_seconds * config.data.sample_rate))
    b = config.data.batch_size
    rng = jax.random.PRNGKey(config.seed)
    state = dp.init(lambda: create_train_state(model, tx, rng, (1, k, t)))

    iterator = None
    try:
        if real_pipeline:
            source = sources.make_source(config, "train")
            iterator = pipeline.make_train_iterator(
                source,
                batch_size=b,
                num_conditions=k,
                segment_samples=t,
                seed=config.seed,
                shard_index=jax.process_index(),
                shard_count=jax.process_count(),
                num_workers=config.data.num_workers,
            )

            def next_batch():
                return dp.put_batch(next(iterator))

            first_batch = next_batch()
        else:
            # Per process rows, as the pipeline would give them (one process here).
            local_rows = b // jax.process_count()
            first_batch = dp.put_batch(_synthetic_host_batch(local_rows, k, t, config.seed))

            def next_batch():
                return first_batch

        # DataParallel keeps its jitted/pmapped step private; lowering it is the only way to
        # time compilation apart from the first call and to read XLA's cost analysis.
        jitted = getattr(dp, "_step", None)
        if jitted is None or not hasattr(jitted, "lower"):
            raise RuntimeError(
                "csc_jax.training.parallel.DataParallel no longer exposes its compiled step as "
                "`_step` with `.lower()`; update csc_jax/benchmarking.py"
            )
        compiled, compile_times = _compile(jitted, state, first_batch)
        t0 = time.perf_counter()
        state, metrics = compiled(state, first_batch)
        _block((state, metrics))
        compile_times["first_step_s"] = time.perf_counter() - t0
        timer = StepTimer(compiled, state, next_batch)
        times = timer.time(steps, warmup)
        host_metrics = dp.metrics_to_host(metrics)
    finally:
        if iterator is not None and hasattr(iterator, "close"):
            iterator.close()

    flops = _flops(compiled)
    stats = step_time_stats(times)
    audio_s = b * k * config.data.segment_seconds
    passes = _trunk_passes(config)
    result = {
        "kind": "pipeline" if real_pipeline else "train",
        "input": "real pipeline (next + put_batch timed)" if real_pipeline else "device-resident",
        "method": config.method,
        "parallel": config.parallel,
        "dtype": config.dtype,
        "num_devices": len(devices),
        "batch_size": b,
        "num_conditions": k,
        "segment_seconds": float(config.data.segment_seconds),
        "segment_samples": t,
        "sample_rate": int(config.data.sample_rate),
        "stream_weights": str(config.loss.stream_weights),
        "mixtures_per_step": b * k,
        "audio_s_per_step": audio_s,
        "trunk_audio_s_per_step": audio_s * passes,
        "counted": "mixtures (B * K * segment_seconds); "
        + (
            "the loss also embeds 2 clean components per mixture (trunk_audio_s_per_step)"
            if passes > 1
            else "no extra forward passes in the loss"
        ),
        "compile": compile_times,
        "step_time_s": stats,
        "flops_per_step_per_device": flops,
        "flops_per_step": None if flops is None else flops * len(devices),
        "throughput": throughput(
            stats["median"],
            examples=b,
            mixtures=b * k,
            audio_s=audio_s,
            flops_per_device=flops,
            num_devices=len(devices),
            device_kind=devices[0].device_kind,
            dtype=config.dtype,
        ),
        "memory": {
            "compiled": compiled_memory(compiled),
            "device": device_peak_memory(devices),
        },
    }
    result["throughput"]["trunk_audio_s_per_s"] = audio_s * passes / stats["median"]
    # Loss of the compile-time first step (metrics of later steps are not fetched).
    result["first_loss"] = host_metrics.get("loss")
    result["first_loss_finite"] = bool(math.isfinite(host_metrics.get("loss", float("nan"))))
    return (result, timer) if keep_timer else result


def bench_pipeline_alone(config: Any, *, batches: int) -> dict[str, Any]:
    """Crops/s of the host input pipeline alone (``pipeline.measure_throughput``).

    A crop is one (T,) row of 'target' or 'interferer': 2 * B * K crops per batch.
    """
    from csc_jax.data import pipeline, sources

    k = config.mixing.num_conditions
    t = int(round(config.data.segment_seconds * config.data.sample_rate))
    t0 = time.perf_counter()
    source = sources.make_source(config, "train")
    source_s = time.perf_counter() - t0
    iterator = pipeline.make_train_iterator(
        source,
        batch_size=config.data.batch_size,
        num_conditions=k,
        segment_samples=t,
        seed=config.seed,
        num_workers=config.data.num_workers,
    )
    try:
        crops_per_s = pipeline.measure_throughput(iterator, batches)
    finally:
        if hasattr(iterator, "close"):
            iterator.close()
    per_batch = 2 * config.data.batch_size * k
    return {
        "kind": "pipeline_alone",
        "source": config.data.source,
        "num_workers": int(config.data.num_workers),
        "batch_size": int(config.data.batch_size),
        "num_conditions": k,
        "segment_seconds": float(config.data.segment_seconds),
        "batches_timed": batches,
        "crops_per_batch": per_batch,
        "crops_per_s": crops_per_s,
        "batches_per_s": crops_per_s / per_batch,
        # Each step needs one batch; crops are half targets, half interferers.
        "mixture_audio_s_per_s": crops_per_s / 2 * float(config.data.segment_seconds),
        "source_open_s": source_s,
    }


# ---------------------------------------------------------------------- separation backbone
class ConvTasNetBackbone(nn.Module):
    """Conv-TasNet from the project's own layers: (B, T) mixture -> (B, n_src, T) estimates.

    encoder (framing + Dense + ReLU, N filters of L samples, hop L/2) -> SeparatorTrunk (gLN,
    1x1 to B, X*R TCN blocks with H hidden channels, sum of skips) -> PReLU -> 1x1 to
    n_src*N -> sigmoid masks -> masked encoder features -> shared decoder (Dense + overlap-add).
    The same layout as asteroid's ConvTasNet with skip channels = B and a ReLU encoder.
    """

    enc_filters: int
    enc_kernel: int
    bottleneck: int
    hidden: int
    conv_kernel: int
    blocks: int
    repeats: int
    n_src: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, mixture: jnp.ndarray) -> jnp.ndarray:
        num_samples = mixture.shape[-1]
        n = self.enc_filters
        features = WaveformEncoder(n, self.enc_kernel, dtype=self.dtype)(mixture)  # (B, F, N)
        h = SeparatorTrunk(
            self.bottleneck,
            self.hidden,
            self.conv_kernel,
            self.blocks,
            self.repeats,
            dtype=self.dtype,
        )(features)  # (B, F, Bn)
        h = nn.PReLU(param_dtype=jnp.float32)(h)
        masks = nn.sigmoid(nn.Dense(self.n_src * n, dtype=self.dtype)(h))  # (B, F, S*N)
        masks = masks.reshape(masks.shape[:-1] + (self.n_src, n))  # source-major, as asteroid
        masked = jnp.moveaxis(masks * features[..., None, :], -2, -3)  # (B, S, F, N)
        estimates = WaveformDecoder(self.enc_kernel, dtype=self.dtype)(masked, num_samples)
        return estimates.astype(jnp.float32)


def backbone_shapes_from_experiment(config: Any, name: str = "demo") -> BackboneShapes:
    """The CPU demo's backbone shapes: ``config.model`` sizes, its rate and crop length, and
    one mixture per (target, condition) of a CSC step (batch = B * K)."""
    m = config.model
    return BackboneShapes(
        name=name,
        enc_filters=m.enc_filters,
        enc_kernel=m.enc_kernel,
        bottleneck=m.bottleneck,
        hidden=m.hidden,
        conv_kernel=m.conv_kernel,
        blocks=m.blocks,
        repeats=m.repeats,
        sample_rate=int(config.data.sample_rate),
        segment_seconds=float(config.data.segment_seconds),
        batch_size=int(config.data.batch_size * config.mixing.num_conditions),
    )


def _backbone_step_fn(model: ConvTasNetBackbone, tx: optax.GradientTransformation):
    def step(carry, batch):
        params, opt_state = carry
        sources_ = batch["sources"]  # (B, S, T)
        mixture = jnp.sum(sources_, axis=1)

        def loss_fn(p):
            estimates = model.apply({"params": p}, mixture)
            loss, _ = losses.pit_si_snr_loss(estimates, sources_)
            return loss

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return step


def bench_backbone(
    shapes: BackboneShapes,
    *,
    dtype: str,
    steps: int,
    warmup: int,
    seed: int = 0,
    keep_timer: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], StepTimer]:
    """Compile and time one training step of the Conv-TasNet backbone at ``shapes``.

    Data: ``batch_size`` mixtures of ``n_src`` Gaussian sources (RMS 0.1) resident on the
    default device; loss ``losses.pit_si_snr_loss``; ``optax.adam(shapes.learning_rate)``.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {tuple(DTYPES)}")
    model = ConvTasNetBackbone(
        enc_filters=shapes.enc_filters,
        enc_kernel=shapes.enc_kernel,
        bottleneck=shapes.bottleneck,
        hidden=shapes.hidden,
        conv_kernel=shapes.conv_kernel,
        blocks=shapes.blocks,
        repeats=shapes.repeats,
        n_src=shapes.n_src,
        dtype=DTYPES[dtype],
    )
    t = shapes.segment_samples
    if t < 2 * shapes.enc_kernel:
        raise ValueError(f"backbone {shapes.name!r}: segment of {t} samples is too short")
    tx = optax.adam(shapes.learning_rate)
    rng = np.random.default_rng(seed)
    host = (0.1 * rng.standard_normal((shapes.batch_size, shapes.n_src, t))).astype(np.float32)
    batch = {"sources": jax.device_put(host)}
    params = jax.jit(model.init)(jax.random.PRNGKey(seed), batch["sources"][:, 0])["params"]
    num_params = int(sum(x.size for x in jax.tree.leaves(params)))
    # Forward-only FLOPs from the unoptimised HLO: comparable with torch's forward count.
    mixture = jnp.sum(batch["sources"], axis=1)
    try:
        forward_flops = cost_analysis_flops(
            jax.jit(model.apply).lower({"params": params}, mixture).cost_analysis()
        )
    except Exception:  # noqa: BLE001 - cost analysis is optional on some backends
        forward_flops = None
    carry = (params, jax.jit(tx.init)(params))
    jitted = jax.jit(_backbone_step_fn(model, tx), donate_argnums=0)
    compiled, compile_times = _compile(jitted, carry, batch)
    t0 = time.perf_counter()
    carry, loss = compiled(carry, batch)
    _block((carry, loss))
    compile_times["first_step_s"] = time.perf_counter() - t0
    first_loss = float(jax.device_get(loss))
    timer = StepTimer(compiled, carry, lambda: batch)
    times = timer.time(steps, warmup)
    timer.state, loss = compiled(timer.state, batch)
    last_loss = float(jax.device_get(loss))
    flops = _flops(compiled)
    stats = step_time_stats(times)
    device = jax.devices()[0]
    audio_s = shapes.batch_size * shapes.segment_seconds
    result = {
        "kind": "backbone",
        "shapes": dataclasses.asdict(shapes),
        "dtype": dtype,
        "num_devices": 1,
        "num_params": num_params,
        "audio_s_per_step": audio_s,
        "counted": "mixtures (batch * segment_seconds), each separated into n_src estimates",
        "compile": compile_times,
        "step_time_s": stats,
        "flops_per_step_per_device": flops,
        "flops_per_step": flops,
        "flops_forward": forward_flops,
        "throughput": throughput(
            stats["median"],
            examples=shapes.batch_size,
            mixtures=shapes.batch_size,
            audio_s=audio_s,
            flops_per_device=flops,
            num_devices=1,
            device_kind=device.device_kind,
            dtype=dtype,
        ),
        "memory": {"compiled": compiled_memory(compiled), "device": device_peak_memory([device])},
        # A training run, not a timing artefact: the loss should move (it is noise to separate,
        # so it need not fall much).
        "first_loss": first_loss,
        "last_loss": last_loss,
    }
    return (result, timer) if keep_timer else result


def pytorch_device() -> str:
    """The torch device matching JAX's default backend: 'cuda' on GPUs, else 'cpu'."""
    return "cuda" if jax.default_backend() == "gpu" else "cpu"


def pytorch_command(
    python: str,
    shapes: BackboneShapes,
    *,
    steps: int,
    warmup: int,
    threads: int,
    device: str = "cpu",
) -> list[str]:
    """Command line of scripts/pytorch_convtasnet_baseline.py for ``shapes``."""
    return [
        python,
        PYTORCH_SCRIPT,
        f"--name={shapes.name}",
        f"--enc_filters={shapes.enc_filters}",
        f"--enc_kernel={shapes.enc_kernel}",
        f"--bottleneck={shapes.bottleneck}",
        f"--hidden={shapes.hidden}",
        f"--conv_kernel={shapes.conv_kernel}",
        f"--blocks={shapes.blocks}",
        f"--repeats={shapes.repeats}",
        f"--n_src={shapes.n_src}",
        f"--sample_rate={shapes.sample_rate}",
        f"--segment_seconds={shapes.segment_seconds}",
        f"--batch_size={shapes.batch_size}",
        f"--learning_rate={shapes.learning_rate}",
        f"--steps={steps}",
        f"--warmup={warmup}",
        f"--threads={threads}",
        f"--device={device}",
    ]


def run_pytorch_baseline(
    python: str, shapes: BackboneShapes, *, steps: int, warmup: int, threads: int
) -> dict[str, Any]:
    """Run the PyTorch baseline in its own interpreter (torch lives in a separate venv), on
    the GPU when JAX runs on one."""
    cmd = pytorch_command(
        python, shapes, steps=steps, warmup=warmup, threads=threads, device=pytorch_device()
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(
            f"PyTorch baseline failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


_INSTRUCTION_META = re.compile(
    r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{[^}]*?op_name=\"([^\"]+)\""
)
# In op_name paths the model appears inside a transformation, 'jvp(CSCModel)' or
# 'transpose(jvp(CSCModel))' (backward); then come methods ('CSCModel.bottom_up'), Flax
# submodules ('trunk', 'TCNBlock_3', 'Dense_0') and last the primitive ('mul').
_MODEL_SCOPE = re.compile(r"^[\w()]*\(([A-Z]\w*)\)+$")
_LAYER = re.compile(r"^([A-Z]\w*?)(?:_\d+)?$")


def _op_areas(op_name: str) -> tuple[str, str, str]:
    """(model part, layer type, 'fwd'|'bwd') of an HLO op_name, e.g.
    'jit(train_step)/transpose(jvp(CSCModel))/CSCModel.bottom_up/trunk/TCN_0/TCNBlock_3/
    GlobalLayerNorm_1/mul' -> ('trunk', 'GlobalLayerNorm', 'bwd')."""
    parts = op_name.split("/")
    scope = next((i for i, p in enumerate(parts) if _MODEL_SCOPE.match(p)), None)
    if scope is None:
        return "(outside the model: mixing, loss, optimizer)", "-", "-"
    direction = "bwd" if parts[scope].startswith("transpose(") else "fwd"
    inner = parts[scope + 1 : -1]  # the last entry is the primitive
    modules = [p for p in inner if "." not in p and "(" not in p]
    methods = [p for p in inner if "." in p]
    if modules:
        part = re.sub(r"_\d+$", "", modules[0])
    else:
        part = methods[-1] if methods else "(model, top level)"
    layers = [m.group(1) for p in modules[1:] if (m := _LAYER.match(p))]
    if layers:
        layer = layers[-1]
    else:  # a named submodule such as attention/key
        layer = modules[-1] if len(modules) > 1 else "-"
    return part, layer, direction


def profile_breakdown(timer: StepTimer, *, steps: int, trace_dir: str) -> dict[str, Any]:
    """Trace ``steps`` steps with jax.profiler and attribute op time to model parts.

    Every executed XLA op (fusion, dot, copy, ...) of the trace is mapped to the op_name
    metadata that the compiled HLO keeps for it (the Flax module path and the JAX
    transformation: ``transpose`` = backward), then summed per model part and per layer type.
    XLA names a fusion after one of its ops, so forward/backward and layer attribution of
    fused code is approximate. 'op_ms_per_step' sums the ops' durations (an op that uses
    several threads counts once; ops that overlap count twice), and the profiler itself
    slows the step down, so use the shares, not the absolute times.

    Returns:
      dict: wall_ms_per_step, op_ms_per_step, dot_share (dots and YNN/XNN matmul fusions),
      by_part / by_layer: lists of [name, ms per step, share], trace_dir; or
      {'error': ...} when the trace cannot be read (its format is not a stable API).
    """
    import glob
    import gzip

    hlo = timer.compiled.as_text()
    meta = {}
    for line in hlo.splitlines():
        m = _INSTRUCTION_META.match(line)
        if m:
            meta.setdefault(m.group(1), m.group(2))
    os.makedirs(trace_dir, exist_ok=True)
    t0 = time.perf_counter()
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        timer.time(steps, 0)
    wall = time.perf_counter() - t0
    files = sorted(
        glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True),
        key=os.path.getmtime,
    )
    try:
        with gzip.open(files[-1]) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    except (IndexError, OSError, ValueError, KeyError) as e:
        return {"error": f"cannot read the trace in {trace_dir}: {e}", "trace_dir": trace_dir}
    by_part: dict[str, float] = {}
    by_layer: dict[str, float] = {}
    total = dots = 0.0
    for e in events:
        name = e.get("name", "")
        if name not in meta and not re.match(r"^[a-z][\w\-]*(\.\d+)?$", name):
            continue  # runtime / Python events, not XLA ops
        dur = float(e.get("dur", 0.0)) / 1e3 / steps  # ms per step
        total += dur
        if name.startswith(("dot", "ynn", "xnn", "onednn")):
            dots += dur
        part, layer, direction = (
            _op_areas(meta[name]) if name in meta else ("(no metadata)", "-", "?")
        )
        by_part[part] = by_part.get(part, 0.0) + dur
        key = f"{part}/{layer} {direction}"
        by_layer[key] = by_layer.get(key, 0.0) + dur

    def table(d):
        rows = sorted(d.items(), key=lambda kv: -kv[1])
        return [[k, v, v / total if total else 0.0] for k, v in rows]

    return {
        "wall_ms_per_step": wall * 1e3 / steps,
        "op_ms_per_step": total,
        "dot_share": dots / total if total else 0.0,
        "by_part": table(by_part),
        "by_layer": table(by_layer),
        "trace_dir": trace_dir,
    }


def compare_with_pytorch(
    shapes: BackboneShapes,
    settings: BenchSettings,
    backbone: tuple[dict[str, Any], StepTimer],
    csc: tuple[dict[str, Any], StepTimer] | None = None,
) -> dict[str, Any]:
    """Alternating rounds: JAX backbone, PyTorch backbone (subprocess), [CSC train step].

    Every round re-times the already compiled JAX executables, then runs the PyTorch baseline
    at the same shapes, so all of them see the same machine load; the summary takes the
    median over rounds of each round's median step time.

    Args:
      shapes: backbone shapes (float32).
      settings: steps, warmup, rounds, PyTorch interpreter and threads.
      backbone: (result, timer) of ``bench_backbone(..., keep_timer=True)``.
      csc: (result, timer) of the CSC train step whose mixtures have these backbone shapes
        (``bench_train_step(..., keep_timer=True)``), or None.

    Returns:
      dict with per-round figures and 'jax_over_pytorch_step_time' (> 1: JAX slower), and
      with ``csc``: 'csc_over_pytorch_audio_throughput' (>= 1: the full CSC step processes at
      least as many seconds of mixture audio per second as PyTorch's plain Conv-TasNet).
    """
    rounds = []
    for _ in range(settings.pytorch_rounds):
        row: dict[str, Any] = {"load_average_before": list(os.getloadavg())}
        row["jax_backbone_s"] = step_time_stats(backbone[1].time(settings.steps, settings.warmup))
        torch_r = run_pytorch_baseline(
            settings.pytorch_python,
            shapes,
            steps=settings.steps,
            warmup=settings.warmup,
            threads=settings.pytorch_threads,
        )
        row["pytorch"] = torch_r
        if csc is not None:
            row["csc_step_s"] = step_time_stats(csc[1].time(settings.steps, settings.warmup))
        rounds.append(row)

    def median_of(key):
        return statistics.median(r[key]["median"] for r in rounds)

    jax_s = median_of("jax_backbone_s")
    torch_s = statistics.median(r["pytorch"]["step_time_s"]["median"] for r in rounds)
    audio = shapes.batch_size * shapes.segment_seconds
    out = {
        "shapes": shapes.name,
        "shape_fields": dataclasses.asdict(shapes),
        "rounds": rounds,
        "jax_median_s": jax_s,
        "pytorch_median_s": torch_s,
        "jax_over_pytorch_step_time": jax_s / torch_s,
        "jax_audio_s_per_s": audio / jax_s,
        "pytorch_audio_s_per_s": audio / torch_s,
        "pytorch_impl": rounds[0]["pytorch"].get("implementation"),
        "pytorch_version": rounds[0]["pytorch"].get("torch"),
        "pytorch_threads": settings.pytorch_threads,
        "pytorch_num_params": rounds[0]["pytorch"].get("num_params"),
        "jax_num_params": backbone[0]["num_params"],
        "jax_flops_forward": backbone[0].get("flops_forward"),
        "pytorch_flops_forward": rounds[0]["pytorch"].get("flops_forward"),
    }
    if csc is not None:
        csc_s = median_of("csc_step_s")
        csc_audio = csc[0]["audio_s_per_step"]
        out.update(
            csc_parallel=csc[0]["parallel"],
            csc_median_s=csc_s,
            csc_audio_s_per_s=csc_audio / csc_s,
            csc_over_pytorch_audio_throughput=(csc_audio / csc_s) / (audio / torch_s),
        )
    return out


def _same_shapes(a: BackboneShapes, b: BackboneShapes) -> bool:
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    da.pop("name"), db.pop("name")
    return da == db


# ---------------------------------------------------------------------- the whole run
def run(experiment: Any, settings: BenchSettings, log: Callable[[str], None] = print) -> dict:
    """Measure everything ``settings`` asks for; returns the JSON-serialisable report."""
    settings.validate()
    started = time.perf_counter()
    report: dict[str, Any] = {
        "schema": 1,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": [sys.executable] + sys.argv,
        "environment": environment(),
        "settings": _settings_dict(settings),
        "experiment_config": experiment.to_dict(),
        "results": [],
        "pipeline_alone": None,
        "pytorch_comparison": [],
        "profiles": {},
    }

    def profile(name: str, timer: StepTimer) -> None:
        if not settings.profile_dir:
            return
        log(f"profiling {name} ({settings.profile_steps} steps) ...")
        out = profile_breakdown(
            timer,
            steps=settings.profile_steps,
            trace_dir=os.path.join(settings.profile_dir, name),
        )
        report["profiles"][name] = out
        if "error" in out:
            log("  " + out["error"])
        else:
            top = ", ".join(f"{k} {100 * f:.0f}%" for k, _, f in out["by_part"][:4])
            log(f"  op time {out['op_ms_per_step']:.0f} ms/step: {top}")

    batch_sizes = settings.batch_sizes or (int(experiment.data.batch_size),)
    seconds = settings.segment_seconds or (float(experiment.data.segment_seconds),)
    sweep = [
        (p, d, b, s)
        for p in settings.parallel
        for d in settings.dtypes
        for b in batch_sizes
        for s in seconds
    ]
    # The CSC step at the experiment's own shapes (float32, first parallel mode) is what the
    # PyTorch comparison holds against Conv-TasNet at the demo's backbone shapes.
    default_key = (
        settings.parallel[0],
        "float32",
        int(experiment.data.batch_size),
        float(experiment.data.segment_seconds),
    )
    demo_shapes = backbone_shapes_from_experiment(experiment)
    want_csc = bool(settings.pytorch_python) and "backbone" in settings.modes
    want_csc = want_csc and any(_same_shapes(x, demo_shapes) for x in settings.backbone)
    keep_csc = want_csc or bool(settings.profile_dir)
    csc_default = None
    if "train" in settings.modes:
        for p, d, b, s in sweep:
            log(f"train step: parallel={p} dtype={d} B={b} segment={s}s ...")
            cfg = _experiment_variant(experiment, parallel=p, dtype=d, batch=b, seconds=s)
            keep = keep_csc and (p, d, b, float(s)) == default_key and csc_default is None
            r = bench_train_step(cfg, steps=settings.steps, warmup=settings.warmup, keep_timer=keep)
            if keep:
                csc_default = r
                r = r[0]
            report["results"].append(r)
            log("  " + _one_line(r))
            if keep:
                profile("csc_step", csc_default[1])
    if "pipeline" in settings.modes:
        log(f"input pipeline alone ({settings.pipeline_batches} batches) ...")
        report["pipeline_alone"] = bench_pipeline_alone(
            experiment, batches=settings.pipeline_batches
        )
        log(f"  {report['pipeline_alone']['crops_per_s']:.0f} crops/s")
        p, d = settings.parallel[0], settings.dtypes[0]
        b, s = int(experiment.data.batch_size), float(experiment.data.segment_seconds)
        log(f"train step with the real pipeline: parallel={p} dtype={d} B={b} segment={s}s ...")
        cfg = _experiment_variant(experiment, parallel=p, dtype=d, batch=b, seconds=s)
        r = bench_train_step(cfg, steps=settings.steps, warmup=settings.warmup, real_pipeline=True)
        report["results"].append(r)
        log("  " + _one_line(r))
    if "backbone" in settings.modes:
        for shapes in settings.backbone:
            log(f"backbone {shapes.name}: {_shape_text(shapes)} ...")
            kept = None
            for dtype in settings.dtypes:
                keep = dtype == "float32" and bool(settings.pytorch_python or settings.profile_dir)
                r = bench_backbone(
                    shapes,
                    dtype=dtype,
                    steps=settings.steps,
                    warmup=settings.warmup,
                    keep_timer=keep,
                )
                if keep:
                    kept, r = r, r[0]
                report["results"].append(r)
                log(f"  {dtype}: " + _one_line(r))
            if kept is not None:
                profile(f"backbone_{shapes.name}", kept[1])
            if kept is None or not settings.pytorch_python:
                continue
            csc = None
            if want_csc and _same_shapes(shapes, demo_shapes):
                if csc_default is None:
                    p, d, b, s = default_key
                    log(f"CSC train step for the comparison: parallel={p} B={b} segment={s}s ...")
                    cfg = _experiment_variant(experiment, parallel=p, dtype=d, batch=b, seconds=s)
                    csc_default = bench_train_step(
                        cfg, steps=settings.steps, warmup=settings.warmup, keep_timer=True
                    )
                csc = csc_default
            log(f"  {settings.pytorch_rounds} alternating round(s) JAX / PyTorch ...")
            c = compare_with_pytorch(shapes, settings, kept, csc)
            report["pytorch_comparison"].append(c)
            text = (
                f"  PyTorch ({c['pytorch_impl']}): {c['pytorch_median_s'] * 1e3:.1f} ms/step, "
                f"JAX {c['jax_median_s'] * 1e3:.1f} ms/step: JAX/PyTorch step time "
                f"{c['jax_over_pytorch_step_time']:.3f}"
            )
            if "csc_median_s" in c:
                text += (
                    f"; CSC step {c['csc_median_s'] * 1e3:.1f} ms = "
                    f"{c['csc_audio_s_per_s']:.1f} audio s/s vs PyTorch backbone "
                    f"{c['pytorch_audio_s_per_s']:.1f} (ratio "
                    f"{c['csc_over_pytorch_audio_throughput']:.3f})"
                )
            log(text)
    if "losses" in settings.modes:
        for dtype in settings.dtypes:
            log(f"losses: value_and_grad on {settings.loss_shape} {dtype} ...")
            for r in bench_losses(
                settings.loss_shape, steps=settings.steps, warmup=settings.warmup, dtype=dtype
            ):
                report["results"].append(r)
                log(f"  {r['name']}: {r['step_time_s']['median'] * 1e3:.2f} ms")
    report["environment"]["load_average_after"] = list(os.getloadavg())
    report["total_wall_s"] = time.perf_counter() - started
    return report


def _settings_dict(settings: BenchSettings) -> dict[str, Any]:
    d = dataclasses.asdict(settings)
    d["backbone"] = [dataclasses.asdict(s) for s in settings.backbone]
    return d


def _shape_text(s: BackboneShapes) -> str:
    return (
        f"N={s.enc_filters} L={s.enc_kernel} B={s.bottleneck} H={s.hidden} P={s.conv_kernel} "
        f"X={s.blocks} R={s.repeats}, {s.sample_rate} Hz, {s.batch_size} x {s.segment_seconds} s"
    )


def _one_line(r: dict[str, Any]) -> str:
    st, tp = r["step_time_s"], r["throughput"]
    return (
        f"median {st['median'] * 1e3:.1f} ms/step (min {st['min'] * 1e3:.1f}, max "
        f"{st['max'] * 1e3:.1f}), {tp['audio_s_per_s']:.1f} audio s/s, compile "
        f"{r['compile']['lower_plus_compile_s']:.1f} s"
    )


def _fmt(x: Any, scale: float = 1.0, digits: int = 1) -> str:
    if x is None or isinstance(x, str):
        return "n/a" if x is None else x
    return f"{x * scale:.{digits}f}"


def _fmt_bytes(x: Any) -> str:
    if not isinstance(x, (int, float)):
        return "n/a"
    return f"{x / 2**20:.0f} MiB"


def markdown(report: dict[str, Any]) -> str:
    """Markdown tables of a report (what benchmark.py prints)."""
    env = report["environment"]
    lines = [
        f"Device: {env['device_kind']} x {env['num_devices']} ({env['backend']}); CPU "
        f"{env['cpu_model']}, {env['cpu_count']} cores ({len(env.get('cpu_affinity') or [])} "
        "usable by this process); load average "
        f"{', '.join(f'{x:.2f}' for x in env['load_average'])} (before), "
        f"{', '.join(f'{x:.2f}' for x in env.get('load_average_after', []))} (after); "
        f"jax {env['jax']}, jaxlib {env['jaxlib']}, flax {env['flax']}.",
        "",
    ]
    steps = [r for r in report["results"] if r["kind"] in ("train", "pipeline")]
    if steps:
        lines += [
            "| step | input | parallel | dtype | B | K | seg (s) | compile (s) | median ms "
            "(min-max) | examples/s | audio s/s | audio s/s/dev | trunk audio s/s | GFLOP/step | "
            "GFLOP/s | util. | XLA temp |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in steps:
            st, tp = r["step_time_s"], r["throughput"]
            util = tp["utilisation"]
            lines.append(
                f"| CSC {r['method']} | {'pipeline' if r['kind'] == 'pipeline' else 'device'} "
                f"| {r['parallel']} | {r['dtype']} | {r['batch_size']} | {r['num_conditions']} "
                f"| {r['segment_seconds']:g} | {r['compile']['lower_plus_compile_s']:.1f} "
                f"| {st['median'] * 1e3:.1f} ({st['min'] * 1e3:.1f}-{st['max'] * 1e3:.1f}) "
                f"| {tp['examples_per_s']:.2f} | {tp['audio_s_per_s']:.2f} "
                f"| {tp['audio_s_per_s_per_device']:.2f} | {tp['trunk_audio_s_per_s']:.2f} "
                f"| {_fmt(r['flops_per_step'], 1e-9)} "
                f"| {_fmt(tp['achieved_flops_per_s'], 1e-9)} "
                f"| {'unknown' if util is None else f'{util:.1%}'} "
                f"| {_fmt_bytes(r['memory']['compiled'].get('temp_size_in_bytes'))} |"
            )
        peak = {str(r["memory"]["device"]["peak_bytes_in_use"]) for r in steps}
        lines += ["", f"Runtime peak device memory: {', '.join(sorted(peak))}."]
        lines.append(
            "audio s/s counts " + "; ".join(sorted({r["counted"] for r in steps})) + "; trunk "
            "audio s/s counts every waveform that goes through the separative encoder."
        )
        lines.append("")
    pa = report.get("pipeline_alone")
    if pa:
        lines += [
            "| input pipeline alone | workers | B | K | seg (s) | crops/s | batches/s | "
            "mixture audio s/s |",
            "|---|---|---|---|---|---|---|---|",
            f"| {pa['source']} | {pa['num_workers']} | {pa['batch_size']} "
            f"| {pa['num_conditions']} | {pa['segment_seconds']:g} | {pa['crops_per_s']:.0f} "
            f"| {pa['batches_per_s']:.1f} | {pa['mixture_audio_s_per_s']:.1f} |",
            "",
        ]
    bb = [r for r in report["results"] if r["kind"] == "backbone"]
    if bb:
        lines += [
            "| backbone | shapes | dtype | params | compile (s) | median ms (min-max) | "
            "audio s/s | GFLOP/step | GFLOP/s | util. |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in bb:
            s = BackboneShapes(**r["shapes"])
            st, tp = r["step_time_s"], r["throughput"]
            util = tp["utilisation"]
            lines.append(
                f"| {s.name} | {_shape_text(s)} | {r['dtype']} | {r['num_params'] / 1e6:.2f} M "
                f"| {r['compile']['lower_plus_compile_s']:.1f} "
                f"| {st['median'] * 1e3:.1f} ({st['min'] * 1e3:.1f}-{st['max'] * 1e3:.1f}) "
                f"| {tp['audio_s_per_s']:.2f} | {_fmt(r['flops_per_step'], 1e-9)} "
                f"| {_fmt(tp['achieved_flops_per_s'], 1e-9)} "
                f"| {'unknown' if util is None else f'{util:.1%}'} |"
            )
        lines.append("")
    comps = report.get("pytorch_comparison") or []
    if comps:
        lines += [
            "| backbone (float32) | JAX ms/step | PyTorch ms/step | JAX / PyTorch step time | "
            "JAX audio s/s | PyTorch audio s/s | rounds | PyTorch |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in comps:
            lines.append(
                f"| {c['shapes']} | {c['jax_median_s'] * 1e3:.1f} "
                f"| {c['pytorch_median_s'] * 1e3:.1f} | {c['jax_over_pytorch_step_time']:.3f} "
                f"| {c['jax_audio_s_per_s']:.2f} | {c['pytorch_audio_s_per_s']:.2f} "
                f"| {len(c['rounds'])} | {c['pytorch_impl']} (torch {c['pytorch_version']}, "
                f"{c['pytorch_threads']} threads) |"
            )
        lines.append("")
        for c in comps:
            if "csc_median_s" in c:
                lines += [
                    f"Full CSC train step ({c['csc_parallel']}, float32, the experiment's B, K, "
                    f"segment): {c['csc_median_s'] * 1e3:.1f} ms/step = "
                    f"{c['csc_audio_s_per_s']:.2f} mixture audio s/s vs PyTorch Conv-TasNet at "
                    f"the same backbone shapes {c['pytorch_audio_s_per_s']:.2f}: ratio "
                    f"{c['csc_over_pytorch_audio_throughput']:.3f} (>= 1 meets the target).",
                    "",
                ]
    lo = [r for r in report["results"] if r["kind"] == "loss"]
    if lo:
        lines += [
            "| loss (value + grad, jit) | input | dtype | compile (s) | median ms (min-max) | "
            "GFLOP |",
            "|---|---|---|---|---|---|",
        ]
        for r in lo:
            st = r["step_time_s"]
            lines.append(
                f"| {r['name']} | {r['reads']} | {r['dtype']} "
                f"| {r['compile']['lower_plus_compile_s']:.2f} "
                f"| {st['median'] * 1e3:.2f} ({st['min'] * 1e3:.2f}-{st['max'] * 1e3:.2f}) "
                f"| {_fmt(r['flops_per_step'], 1e-9, 2)} |"
            )
        lines.append("")
    for name, prof in (report.get("profiles") or {}).items():
        if "error" in prof:
            lines += [f"Profile {name}: {prof['error']}", ""]
            continue
        lines += [
            f"Profile {name}: wall {prof['wall_ms_per_step']:.0f} ms/step under the profiler, "
            f"XLA ops {prof['op_ms_per_step']:.0f} ms/step (sum of op durations), dots "
            f"{prof['dot_share']:.0%}; trace in {prof['trace_dir']}",
            "",
            "| model part / layer | direction | ms/step | share |",
            "|---|---|---|---|",
        ]
        for key, ms, share in prof["by_layer"][:12]:
            where, direction = key.rsplit(" ", 1)
            where = where.removesuffix("/-")
            lines.append(f"| {where} | {direction} | {ms:.1f} | {share:.1%} |")
        lines.append("")
    lines.append(f"Total wall time {report.get('total_wall_s', float('nan')):.0f} s.")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str) -> None:
    """Write the JSON report atomically (creates the parent folder)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True, default=_json_default)
    os.replace(tmp, path)


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, (tuple, set)):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
