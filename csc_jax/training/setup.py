"""One set-up of a training program: model, optimizer, parallel wrapper, data and state.

Used by the training loop, the benchmark and the scripts, so that what is benchmarked or
probed is exactly what trains::

    program = setup.build(config)             # model, tx, DataParallel, data iterator
    state = program.init_state()              # placed on the devices for config.parallel
    state, metrics = program.dp.step(state, program.dp.put_batch(next(program.iterator)))
    program.close()
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from csc_jax.config import segment_samples
from csc_jax.data import augmentation, pipeline, sources
from csc_jax.models import model_from_config
from csc_jax.training.parallel import DataParallel
from csc_jax.training.state import create_train_state, make_optimizer


@dataclasses.dataclass
class TrainProgram:
    """Everything a training step needs, built from one config.

    Attributes:
      config: the experiment ConfigDict.
      model: the CSCModel; ``tx``: its optax optimizer; ``dp``: the DataParallel wrapper of
        the pure step for ``config.parallel``.
      source: the training AudioSource (None when built without data).
      iterator: this process's grain iterator of clean crops (None without data); its state
        is checkpointed with the train state.
      example_shape: (1, K, T) mixture shape used to trace the model's init.
    """

    config: Any
    model: Any
    tx: Any
    dp: DataParallel
    source: Any
    iterator: Any
    example_shape: tuple[int, int, int]

    def init_fn(self):
        """A fresh single-copy TrainState (pure: call under jit, as :meth:`init_state` does)."""
        rng = jax.random.PRNGKey(self.config.seed)
        return create_train_state(self.model, self.tx, rng, self.example_shape)

    def init_state(self):
        """A fresh TrainState, compiled onto the devices in this mode's layout."""
        return self.dp.init(self.init_fn)

    def close(self) -> None:
        if hasattr(self.iterator, "close"):
            self.iterator.close()


def build(config, *, devices=None, with_data: bool = True) -> TrainProgram:
    """Build the training program for ``config`` (validated by the caller).

    Args:
      config: experiment ConfigDict.
      devices: devices to train on (default: all devices of all processes).
      with_data: also build the training source and this process's iterator (shard
        ``jax.process_index()`` of ``jax.process_count()``).
    """
    model = model_from_config(config)
    tx = make_optimizer(config)
    dp = DataParallel(config.parallel, model, tx, config, devices=devices)
    seg = segment_samples(config)
    k = config.mixing.num_conditions
    source = iterator = None
    if with_data:
        source = sources.make_source(config, "train")
        iterator = pipeline.make_train_iterator(
            source,
            batch_size=config.data.batch_size,
            num_conditions=k,
            segment_samples=seg,
            seed=config.seed,
            shard_index=jax.process_index(),
            shard_count=jax.process_count(),
            num_workers=config.data.num_workers,
            augment=augmentation.from_config(config),
        )
    return TrainProgram(config, model, tx, dp, source, iterator, (1, k, seg))
