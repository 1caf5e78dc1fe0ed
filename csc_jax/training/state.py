"""Train state and optimizer.

The state holds only arrays (no functions), so orbax saves and restores it directly and the
same pytree is used by every parallel mode.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
    """Everything a resumed run needs besides the data-iterator state.

    Attributes:
      step: () int32, number of updates applied.
      params: float32 parameter pytree (kept float32 whatever the compute dtype).
      opt_state: optax state (float32).
      rng: (2,) uint32 raw key data of the run's base key; step keys are fold_in(rng, step).
      skipped: () int32 count of updates skipped because the loss or gradient was non-finite.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    skipped: jax.Array


def make_optimizer(config) -> optax.GradientTransformation:
    """AdamW with linear warmup + cosine decay and global-norm clipping (``config.optim``)."""
    o = config.optim
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=o.learning_rate,
        warmup_steps=max(1, min(o.warmup_steps, config.train.steps - 1)),
        decay_steps=max(2, config.train.steps),
        end_value=o.learning_rate * 0.05,
    )
    return optax.chain(
        optax.clip_by_global_norm(o.clip_norm),
        optax.adamw(schedule, weight_decay=o.weight_decay),
    )


def create_train_state(
    model, tx: optax.GradientTransformation, rng: jax.Array, example_shape: tuple[int, ...]
) -> TrainState:
    """Initialise parameters and optimizer state (pure; call under jax.jit with out_shardings).

    Args:
      model: the CSCModel.
      tx: optimizer.
      rng: (2,) uint32 raw key data (``jax.random.PRNGKey(seed)``).
      example_shape: (B, K, T) shape of a mixture batch used to trace the init.
    """
    init_key = jax.random.fold_in(rng, 0x1217)
    params = model.init(init_key, jnp.zeros(example_shape, jnp.float32))["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=rng,
        skipped=jnp.zeros((), jnp.int32),
    )
