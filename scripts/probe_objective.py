"""Probe how fast a training objective starts to learn (the evidence behind docs/method.md).

Trains the default model for a few hundred steps with plain Adam (lr 1e-3, clip 5) on fresh
batches from the training pipeline and prints the mean of every metric over each block of 25
steps. No checkpoints, no evaluation: it answers "does this objective move at all, and how
fast", cheaply.

  python scripts/probe_objective.py --steps 200 loss.lambda_sep=0.0 loss.stream_weights=oracle
  python scripts/probe_objective.py --steps 200 method=simclr "mixing.sir_db=(30.0,30.0)"
"""

from __future__ import annotations

import argparse
import ast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from csc_jax.config import base_config, validate_config
from csc_jax.data import mixing, pipeline, sources
from csc_jax.models import model_from_config
from csc_jax.training.objectives import OBJECTIVES


def apply_override(config, assignment: str) -> None:
    """Set ``a.b.c=value`` on a ConfigDict; value parsed as a Python literal when possible."""
    key, _, text = assignment.partition("=")
    node = config
    *path, last = key.split(".")
    for part in path:
        node = node[part]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    node[last] = value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args()
    c = base_config()
    for o in args.overrides:
        apply_override(c, o)
    validate_config(c)
    b, k = c.data.batch_size, c.mixing.num_conditions
    t = int(round(c.data.segment_seconds * c.data.sample_rate))
    it = pipeline.make_train_iterator(
        sources.make_source(c, "train"),
        batch_size=b,
        num_conditions=k,
        segment_samples=t,
        seed=c.seed,
    )
    model = model_from_config(c)
    params = model.init(jax.random.PRNGKey(1), jnp.zeros((1, k, t)))["params"]
    tx = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(1e-3))
    opt = tx.init(params)
    objective = OBJECTIVES[c.method]

    @jax.jit
    def update(params, opt, batch, key):
        mixed = mixing.mix_batch(key, batch, jnp.arange(b), c.mixing)
        grad_fn = jax.value_and_grad(lambda p: objective(p, model, mixed, c), has_aux=True)
        (_, metrics), grads = grad_fn(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, metrics

    history = []
    for i in range(args.steps):
        params, opt, metrics = update(params, opt, next(it), jax.random.PRNGKey(i))
        history.append(jax.device_get(metrics))
        if (i + 1) % args.block == 0:
            block = history[-args.block :]
            means = {m: round(float(np.mean([h[m] for h in block])), 3) for m in block[0]}
            print(f"steps {i + 2 - args.block}-{i + 1}: {means}", flush=True)


if __name__ == "__main__":
    main()
