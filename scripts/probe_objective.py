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
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from csc_jax import allocator  # noqa: E402

allocator.ensure()  # before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from csc_jax import errors  # noqa: E402
from csc_jax.config import ConfigError, base_config, set_dotted, validate_config  # noqa: E402
from csc_jax.data import mixing  # noqa: E402
from csc_jax.training import setup  # noqa: E402
from csc_jax.training.objectives import OBJECTIVES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = parser.parse_args()
    c = base_config()
    for o in args.overrides:
        key, sep, text = o.partition("=")
        if not sep:
            raise ConfigError(f"override {o!r} is not key=value")
        try:
            value = ast.literal_eval(text)  # a Python literal where it parses as one
        except (ValueError, SyntaxError):
            value = text
        set_dotted(c, key, value, where=o)
    validate_config(c)
    b = c.data.batch_size
    # The training program's model and data; the optimizer and update stay the probe's own
    # (constant-rate Adam, so early learning speed compares across objectives).
    # One device: the probe runs its own jitted update, not program.dp's step.
    program = setup.build(c, devices=jax.local_devices()[:1])
    model, it = program.model, program.iterator
    params = model.init(jax.random.PRNGKey(1), jnp.zeros(program.example_shape))["params"]
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
    sys.exit(errors.run_main(main, debug=errors.debug_requested()))
