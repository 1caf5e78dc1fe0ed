"""The pure training step: (state, batch) -> (state, metrics).

Mixing on the device, the method's objective (:mod:`csc_jax.training.objectives`), gradients,
the optimizer update and the non-finite guard. One function serves every parallel mode: under
``jax.jit`` over a Mesh it sees the global batch; under ``pmap`` it sees one device's rows and
averages gradients and metrics over ``axis_name``. Mixing randomness is keyed by global
example index, so both see the same data.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from csc_jax.data import mixing
from csc_jax.training.objectives import OBJECTIVES
from csc_jax.training.state import TrainState


def train_step(
    state: TrainState,
    batch: dict[str, jax.Array],
    *,
    model,
    tx: optax.GradientTransformation,
    config,
    axis_name: str | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimisation step.

    Args:
      state: TrainState (replicated).
      batch: {'target': (B, K, T), 'interferer': (B, K, T)} float32 clean crops (B global under
        jit, per device under pmap).
      model, tx, config: static.
      axis_name: the pmap axis to average over, or None under jit.

    Returns:
      (new state, metrics dict of float32 scalars incl. 'grad_norm', 'finite', 'skipped').
    """
    key = jax.random.fold_in(state.rng, state.step)
    rows = batch["target"].shape[0]
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * rows
    example_ids = offset + jnp.arange(rows, dtype=jnp.int32)
    mixed = mixing.mix_batch(key, batch, example_ids, config.mixing)
    objective = functools.partial(OBJECTIVES[config.method], model=model, config=config)

    def loss_fn(params):
        return objective(params, mixed=mixed)

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
        loss = metrics["loss"]
    grad_norm = optax.global_norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
    if config.train.skip_nonfinite_updates:
        # Keep the old params/opt state but advance the step so the data and keys move on.
        kept = state.replace(step=state.step + 1, skipped=state.skipped + 1)
        new_state = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new_state, kept)
    metrics = dict(metrics)
    metrics["grad_norm"] = grad_norm
    metrics["finite"] = finite.astype(jnp.float32)
    metrics["skipped"] = new_state.skipped.astype(jnp.float32)
    return new_state, metrics
