"""The separation backbone alone: Conv-TasNet trained on 2-speaker mixtures.

:class:`csc_jax.models.convtasnet.ConvTasNetBackbone` (learned encoder + TCN + 2-source
sigmoid mask + decoder, built from the CSC model's own layers) trained with
``losses.pit_si_snr_loss`` and ``optax.adam``, so its figures compare with other separation
toolkits (``scripts/pytorch_convtasnet_baseline.py`` trains asteroid's ConvTasNet at the same
shapes; :mod:`csc_jax.benchmarking.pytorch`). Counted: ``audio_s_per_step = batch *
segment_seconds`` (the mixtures; each yields ``n_src`` estimates).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from csc_jax import losses
from csc_jax.benchmarking.settings import DTYPES, BackboneShapes
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
from csc_jax.models.convtasnet import ConvTasNetBackbone


def _backbone_step_fn(model: ConvTasNetBackbone, tx: optax.GradientTransformation):
    """``step((params, opt_state), {'sources': (B, S, T)}) -> ((params, opt_state), loss)``."""

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

    Returns:
      dict of figures (as ``bench_train_step``'s, 'cpu' included, plus 'num_params',
      'flops_forward' and the first and last loss), and the StepTimer when ``keep_timer``.
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
    forward_flops = compiled_flops(jax.jit(model.apply).lower({"params": params}, mixture))
    carry = (params, jax.jit(tx.init)(params))
    jitted = jax.jit(_backbone_step_fn(model, tx), donate_argnums=0)
    compiled, compile_times = lower_and_compile(jitted.lower, carry, batch)
    carry, loss, compile_times["first_step_s"] = first_step(compiled, carry, batch)
    first_loss = float(jax.device_get(loss))
    timer = StepTimer(compiled, carry, lambda: batch)
    times = timer.time(steps, warmup)
    timer.state, loss = compiled(timer.state, batch)
    last_loss = float(jax.device_get(loss))
    flops = compiled_flops(compiled)
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
        "cpu": timer.cpu,  # user / kernel CPU s and minor faults per timed step
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
