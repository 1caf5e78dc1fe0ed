"""Each public loss of :mod:`csc_jax.losses` alone: value and gradient under one ``jax.jit``.

Measured on one ``(16, 2, 32000)`` float array by default, the shape of a batch of 16
two-source 4 s mixtures at 8 kHz; :func:`loss_cases` says how each loss reads that array.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from csc_jax import losses
from csc_jax.benchmarking.settings import DTYPES
from csc_jax.benchmarking.timing import compiled_flops, lower_and_compile, step_time_stats


def loss_cases(shape: tuple[int, int, int]) -> dict[str, tuple[Callable, str]]:
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
    for name, (fn, reads) in loss_cases(tuple(shape)).items():
        jitted = jax.jit(jax.value_and_grad(fn))
        compiled, compile_times = lower_and_compile(jitted.lower, x, y)
        value, grad = jax.block_until_ready(compiled(x, y))
        value = float(value)
        if not (math.isfinite(value) and bool(jnp.all(jnp.isfinite(grad)))):
            raise FloatingPointError(f"loss {name}: non-finite value or gradient ({value})")
        for _ in range(warmup):
            jax.block_until_ready(compiled(x, y))
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(x, y))
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
                "flops_per_step": compiled_flops(compiled),
                "value": value,
            }
        )
    return out
