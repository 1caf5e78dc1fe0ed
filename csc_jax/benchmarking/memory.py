"""Activation memory of the CSC train step: XLA's static memory analysis, compiled, never run.

:func:`step_memory` builds the real train step (``csc_jax.training.setup.build``, the set-up
training uses) and compiles it through ``DataParallel.lower`` for *abstract* state and batch
(``jax.ShapeDtypeStruct``: ``jax.eval_shape`` of the state's init and the batch's shape), so
nothing of the step's size is allocated and nothing runs. The figures of a GPU config can
therefore be had on a CPU: they are XLA's static estimates for the backend that compiled
them (``Compiled.memory_analysis()``; a GPU compile fuses and schedules differently and runs
its own rematerialisation pass when memory is short, so its figures can differ), not
measurements on a card.

What is reported per compiled step (bytes, one device; the step sees the global batch when
compiled for one device, which is how the GPU configs are sized):

* ``temp_size_in_bytes``: the temporaries: the activations kept for the backward pass,
  gradients and workspace. This is what grows with B and with the crop length.
* ``argument_size_in_bytes`` / ``output_size_in_bytes`` / ``alias_size_in_bytes``: the
  state and batch in, the new state and metrics out; the state is donated, so outputs alias
  arguments and are not counted twice.
* ``total_bytes``: arguments + outputs - aliased + temporaries, the estimate of what the
  step needs on the device at once. (``peak_memory_in_bytes`` is kept in the JSON, but
  XLA:CPU reports the arguments alone there, without the temporaries.)
* ``generated_code_size_in_bytes``: the executable.
* ``flops_per_step_per_device``: XLA's cost analysis of the *unoptimised* step (``Lowered.
  cost_analysis()``) with the TCN's loop unrolled (``unroll_scan``), i.e. every operation the
  program asks for, recomputation included. XLA counts a loop body once, whatever its trip
  count, so the compiled step's count (``compiled_flops_per_step_per_device``, kept in the
  JSON) undercounts a rematerialised TCN; and the unrolled step cannot be compiled for the
  count either, because XLA:CPU would then merge the recomputation away (csc_jax/models/
  separator.py). :func:`bench_memory` reports each step's FLOPs against the same step
  without rematerialisation (``flop_overhead``).

:func:`bench_memory` sweeps B, crop length, dtype and ``model.remat``; ``benchmark.py
--mode=memory`` runs it and prints :func:`.report.markdown`'s memory table.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from csc_jax.benchmarking.timing import (
    compiled_flops,
    compiled_memory,
    cost_analysis_flops,
    lower_and_compile,
)
from csc_jax.benchmarking.train_step import config_variant, trunk_passes
from csc_jax.config import segment_samples, validate_config
from csc_jax.training import setup
from csc_jax.training.parallel import DataParallel

GIB = 2**30


def abstract_step_inputs(program: setup.TrainProgram) -> tuple[Any, dict[str, Any]]:
    """ShapeDtypeStructs of the (placed) state and batch ``program.dp`` compiles for.

    Batch: {'target', 'interferer'} (B, K, T) float32, as the pipeline gives them; under
    'pmap' both carry the leading device axis the per-device step expects.
    """
    dp = program.dp
    state = jax.eval_shape(program.init_fn)
    b = program.config.data.batch_size
    _, k, t = program.example_shape
    shape: tuple[int, ...] = (b, k, t)
    if dp.mode == "pmap":
        n = dp.num_devices
        state = jax.tree.map(lambda x: jax.ShapeDtypeStruct((n,) + x.shape, x.dtype), state)
        shape = (n, b // n, k, t)
    batch = {name: jax.ShapeDtypeStruct(shape, jnp.float32) for name in ("target", "interferer")}
    return state, batch


def step_memory_figures(compiled: Any) -> dict[str, Any]:
    """:func:`.timing.compiled_memory` plus ``peak_memory_in_bytes`` (where reported) and
    ``total_bytes`` = arguments + outputs - aliased + temporaries."""
    out = compiled_memory(compiled)
    if not out.get("available"):
        return out
    m = compiled.memory_analysis()
    m = m[0] if isinstance(m, (list, tuple)) else m
    peak = getattr(m, "peak_memory_in_bytes", None)
    if peak is not None:
        out["peak_memory_in_bytes"] = int(peak)
    parts = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes")
    if all(k in out for k in parts):
        out["total_bytes"] = sum(out[k] for k in parts) - out.get("alias_size_in_bytes", 0)
    return out


def program_flops(program: setup.TrainProgram, state: Any, batch: Any) -> float | None:
    """FLOPs of one step per device: XLA's cost analysis of the unoptimised step with the
    TCN's loops unrolled (module docstring), or None where the backend has no cost model."""
    model = program.model.clone(unroll_scan=True)
    dp = program.dp
    unrolled = DataParallel(dp.mode, model, program.tx, program.config, devices=dp.mesh.devices)
    try:
        return cost_analysis_flops(unrolled.lower(state, batch).cost_analysis())
    except Exception:  # noqa: BLE001 - cost analysis is optional on some backends
        return None


def step_memory(config: Any, *, devices: Sequence[Any] | None = None) -> dict[str, Any]:
    """Compile (not run) the train step of ``config`` and report its memory and FLOPs.

    Args:
      config: a complete experiment config (validated here); its parallel mode, dtype, B,
        crop length and ``model.remat`` / ``model.remat_policy`` are what is compiled.
      devices: devices to compile for (default: one local device).

    Returns:
      dict: kind 'memory', the shapes, 'remat', 'remat_policy', 'memory' (bytes, see the
      module docstring), 'flops_per_step_per_device' (the unrolled program's),
      'compiled_flops_per_step_per_device', 'compile' (lower and compile seconds).
    """
    devices = list(jax.local_devices()[:1] if devices is None else devices)
    validate_config(config, num_devices=len(devices))
    program = setup.build(config, devices=devices, with_data=False)
    state, batch = abstract_step_inputs(program)
    compiled, compile_times = lower_and_compile(program.dp.lower, state, batch)
    b, k = int(config.data.batch_size), int(config.mixing.num_conditions)
    return {
        "kind": "memory",
        "method": config.method,
        "parallel": config.parallel,
        "dtype": config.dtype,
        "num_devices": len(devices),
        "backend": devices[0].platform,
        "batch_size": b,
        "num_conditions": k,
        "segment_seconds": float(config.data.segment_seconds),
        "segment_samples": segment_samples(config),
        "sample_rate": int(config.data.sample_rate),
        # Waveforms through the trunk per step (with gradients): B * K mixtures, times 3
        # with the default 'components' stream weights.
        "trunk_waveforms": b * k * trunk_passes(config),
        "remat": str(config.model.remat),
        "remat_policy": str(config.model.remat_policy),
        "memory": step_memory_figures(compiled),
        "flops_per_step_per_device": program_flops(program, state, batch),
        "compiled_flops_per_step_per_device": compiled_flops(compiled),
        "compile": compile_times,
    }


def with_remat(config: Any, remat: str) -> Any:
    """A copy of ``config`` with ``model.remat`` set (the policy is the config's)."""
    c = copy.deepcopy(config)
    c.model.remat = remat
    return c


def flop_overhead(results: list[dict[str, Any]]) -> None:
    """Set each result's 'flop_overhead': FLOPs / FLOPs of the same step with remat 'none'
    (same dtype, B, crop) - 1, or None where that step was not compiled or has no count."""

    def key(r):
        return (r["parallel"], r["dtype"], r["batch_size"], r["segment_seconds"])

    base = {key(r): r["flops_per_step_per_device"] for r in results if r["remat"] == "none"}
    for r in results:
        ref, flops = base.get(key(r)), r["flops_per_step_per_device"]
        r["flop_overhead"] = flops / ref - 1.0 if ref and flops is not None else None


def bench_memory(
    config: Any,
    *,
    batch_sizes: Sequence[int] = (),
    segment_seconds: Sequence[float] = (),
    dtypes: Sequence[str] = ("float32",),
    remat: Sequence[str] = ("none", "block"),
    parallel: str = "sharding",
    log=None,
) -> list[dict[str, Any]]:
    """:func:`step_memory` over every (dtype, B, crop, remat) of the lists.

    Empty ``batch_sizes`` / ``segment_seconds`` mean the config's own. Each result gets a
    'flop_overhead' (:func:`flop_overhead`) when 'none' is among ``remat``.
    """
    results = []
    for d in dtypes:
        for b in batch_sizes or (int(config.data.batch_size),):
            for s in segment_seconds or (float(config.data.segment_seconds),):
                for r in remat:
                    if log:
                        log(f"memory: dtype={d} B={b} segment={s}s remat={r} (compile only) ...")
                    c = config_variant(config, parallel=parallel, dtype=d, batch=b, seconds=s)
                    out = step_memory(with_remat(c, r))
                    if log:
                        log("  " + memory_line(out))
                    results.append(out)
    flop_overhead(results)
    return results


def memory_line(result: dict[str, Any]) -> str:
    """One log line: temporaries, total, GFLOP and compile time of a :func:`step_memory`."""
    m = result["memory"]
    temp = m.get("temp_size_in_bytes")
    total = m.get("total_bytes")
    flops = result["flops_per_step_per_device"]
    return (
        f"temporaries {'n/a' if temp is None else f'{temp / GIB:.2f} GiB'}, total "
        f"{'n/a' if total is None else f'{total / GIB:.2f} GiB'}, "
        f"{'n/a' if flops is None else f'{flops * 1e-9:.1f}'} GFLOP, compile "
        f"{result['compile']['lower_plus_compile_s']:.1f} s"
    )
