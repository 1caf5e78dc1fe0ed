"""The CSC train step and its input pipeline, measured as training runs them.

Both are built by :func:`csc_jax.training.setup.build`, the set-up the training loop uses, so
what is measured is what trains:

* :func:`bench_train_step`: the train step (``DataParallel`` over
  ``csc_jax.training.step.train_step``) compiled through ``DataParallel.lower``, fed either one
  synthetic batch put on the devices once (the input pipeline excluded) or the real pipeline
  (each timed step includes ``next(iterator)``, ``DataParallel.put_batch`` and the step). Every
  step is ended with ``jax.block_until_ready`` on the new state and the metrics.
* :func:`bench_pipeline_alone`: crops/s of the training iterator alone
  (``pipeline.measure_throughput``) with ``config.data.num_workers`` workers.

What is counted. ``audio_s_per_step = B * K * segment_seconds``: the mixtures the separative
encoder sees (B target utterances, each under K interfering conditions). The loss may run
further forward passes that are not counted there: with ``loss.stream_weights='components'``
the step also embeds the clean target and the interfering-speech component of every mixture
(2 * B * K more single-utterance passes through the trunk; ``trunk_audio_s_per_step`` counts
them).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from csc_jax.benchmarking.timing import (
    StepTimer,
    compiled_flops,
    compiled_memory,
    device_peak_memory,
    first_step,
    lower_and_compile,
    step_time_stats,
    throughput,
)
from csc_jax.config import validate_config
from csc_jax.data import pipeline
from csc_jax.training import setup


def config_variant(
    config: Any,
    *,
    parallel: str,
    dtype: str,
    batch: int,
    seconds: float,
    frontend: str | None = None,
) -> Any:
    """A copy of the experiment ``config`` with another parallel mode, dtype, B, crop (s) and
    (if given) ``model.frontend``."""
    c = copy.deepcopy(config)
    if frontend is not None:
        c.model.frontend = frontend
    c.parallel = parallel
    c.dtype = dtype
    c.data.batch_size = int(batch)
    c.data.segment_seconds = float(seconds)
    return c


def trunk_passes(config: Any) -> int:
    """Waveforms per mixture that go through the trunk in one step (see the module docstring).

    Mirrors csc_jax/training/step.py: 'components' stream weights embed the target and the
    interfering-speech component of each mixture with the model itself (2 more passes).
    """
    if config.method == "csc" and config.loss.stream_weights == "components":
        return 3
    return 1


def synthetic_host_batch(batch: int, k: int, t: int, seed: int) -> dict[str, np.ndarray]:
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
    devices = list(jax.devices() if devices is None else devices)
    validate_config(config, num_devices=len(devices))
    program = setup.build(config, devices=devices, with_data=real_pipeline)
    dp = program.dp
    _, k, t = program.example_shape
    b = config.data.batch_size
    try:
        state = program.init_state()
        if real_pipeline:

            def next_batch():
                return dp.put_batch(next(program.iterator))

            first_batch = next_batch()
        else:
            # Per process rows, as the pipeline would give them (one process here).
            local_rows = b // jax.process_count()
            first_batch = dp.put_batch(synthetic_host_batch(local_rows, k, t, config.seed))

            def next_batch():
                return first_batch

        compiled, compile_times = lower_and_compile(dp.lower, state, first_batch)
        state, metrics, compile_times["first_step_s"] = first_step(compiled, state, first_batch)
        timer = StepTimer(compiled, state, next_batch)
        times = timer.time(steps, warmup)
        host_metrics = dp.metrics_to_host(metrics)
    finally:
        program.close()

    flops = compiled_flops(compiled)
    stats = step_time_stats(times)
    audio_s = b * k * config.data.segment_seconds
    passes = trunk_passes(config)
    result = {
        "kind": "pipeline" if real_pipeline else "train",
        "input": "real pipeline (next + put_batch timed)" if real_pipeline else "device-resident",
        "method": config.method,
        "frontend": str(config.model.frontend),
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
        "cpu": timer.cpu,
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
    """Crops/s of the training iterator alone (``pipeline.measure_throughput``).

    A crop is one (T,) row of 'target' or 'interferer': 2 * B * K crops per batch (one process,
    so B is the global batch). 'setup_s' is the time of ``setup.build`` with its data: opening
    the source and creating the iterator (the model and step it also builds are not compiled).
    """
    validate_config(config)
    t0 = time.perf_counter()
    # One local device: nothing runs on it, and the batch need not divide over all of them.
    program = setup.build(config, devices=jax.local_devices()[:1], with_data=True)
    setup_s = time.perf_counter() - t0
    try:
        crops_per_s = pipeline.measure_throughput(program.iterator, batches)
    finally:
        program.close()
    _, k, _ = program.example_shape
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
        "setup_s": setup_s,
    }


def frontend_ratios(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Audio s/s of the 'stft' step over the 'waveform' step at the same settings and round.

    Args:
      steps: train-step results (each with 'frontend', 'round', 'parallel', 'dtype',
        'batch_size', 'num_conditions', 'segment_seconds' and 'throughput').

    Returns:
      One dict per pair measured side by side: the settings, both rates and their ratio.
    """
    by_key: dict[tuple, dict[str, float]] = {}
    for r in steps:
        if r["kind"] != "train":
            continue
        key = (
            r.get("round", 0),
            r["parallel"],
            r["dtype"],
            r["batch_size"],
            r["num_conditions"],
            r["segment_seconds"],
        )
        by_key.setdefault(key, {})[r.get("frontend", "waveform")] = r["throughput"]["audio_s_per_s"]
    out = []
    for key, rates in by_key.items():
        if "stft" in rates and "waveform" in rates:
            round_, parallel, dtype, b, k, seg = key
            out.append(
                {
                    "round": round_,
                    "parallel": parallel,
                    "dtype": dtype,
                    "batch_size": b,
                    "num_conditions": k,
                    "segment_seconds": seg,
                    "waveform_audio_s_per_s": rates["waveform"],
                    "stft_audio_s_per_s": rates["stft"],
                    "ratio": rates["stft"] / rates["waveform"],
                }
            )
    return out
