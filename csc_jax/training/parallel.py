"""Data-parallel wrappers of the pure train step: 'sharding' (default) and 'pmap'.

* ``sharding``: ``jax.jit`` over a 1-D ('data',) Mesh of all devices of all processes; the
  state is replicated (``NamedSharding(mesh, P())``), batches are sharded over 'data', the
  state buffers are donated, and XLA inserts the gradient all-reduce.
* ``pmap``: the classic per-device step; the state carries a leading device axis and the step
  averages gradients and metrics with ``lax.pmean``. Its arrays are laid out over the same mesh
  (pmap's axis is named 'data'), so both modes share the host-to-device code and the
  checkpoint format (checkpoints always hold one copy of the state).

Both run on one device. Host batches are process-local: each process passes its own rows.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from csc_jax.training.step import train_step

AXIS = "data"
MODES = ("sharding", "pmap")


def check_batch_divisible(global_batch: int, num_devices: int, num_processes: int = 1) -> None:
    """Raise a clear error when the global batch cannot be split evenly."""
    if global_batch % num_devices:
        raise ValueError(
            f"data.batch_size={global_batch} is not divisible by the number of devices "
            f"({num_devices}); use a multiple of {num_devices}"
        )
    if global_batch % num_processes:
        raise ValueError(
            f"data.batch_size={global_batch} is not divisible by the number of processes "
            f"({num_processes})"
        )


class DataParallel:
    """Places state and batches on devices and runs the compiled step for one parallel mode.

    Args:
      mode: 'sharding' or 'pmap'.
      model, tx, config: passed to :func:`csc_jax.training.step.train_step`.
      devices: devices to use (default: all devices of all processes).
    """

    def __init__(self, mode: str, model, tx, config, devices=None):
        if mode not in MODES:
            raise ValueError(f"config.parallel={mode!r} is not one of {MODES}")
        self.mode = mode
        devices = list(jax.devices() if devices is None else devices)
        self.mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
        self.num_devices = len(devices)
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P(AXIS))
        check_batch_divisible(config.data.batch_size, self.num_devices, jax.process_count())
        step = functools.partial(train_step, model=model, tx=tx, config=config)
        if mode == "sharding":
            self._step = jax.jit(
                step,
                in_shardings=(self.replicated, self.sharded),
                out_shardings=(self.replicated, self.replicated),
                donate_argnums=0,
            )
        else:
            self._step = jax.pmap(
                functools.partial(step, axis_name=AXIS),
                axis_name=AXIS,
                devices=devices,
                donate_argnums=0,
            )

    # ------------------------------------------------------------------ state
    def state_sharding(self, state_shapes: Any) -> Any:
        """Shardings of the placed state for this mode (pytree matching ``state_shapes``)."""
        sharding = self.replicated if self.mode == "sharding" else self.sharded
        return jax.tree.map(lambda _: sharding, state_shapes)

    def init(self, init_fn) -> Any:
        """Run ``init_fn()`` (no args, returns a single-copy state) compiled onto the devices."""
        single = jax.jit(init_fn, out_shardings=self.replicated)()
        return self.place(single)

    def place(self, single_state: Any) -> Any:
        """Single-copy state (replicated over the mesh) -> the layout this mode's step expects."""
        if self.mode == "sharding":
            return single_state
        n = self.num_devices
        stack = jax.jit(
            lambda s: jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), s),
            out_shardings=self.sharded,
        )
        return stack(single_state)

    def single(self, state: Any) -> Any:
        """Placed state -> one replicated copy (for checkpoints and evaluation)."""
        if self.mode == "sharding":
            return state
        return jax.jit(lambda s: jax.tree.map(lambda x: x[0], s), out_shardings=self.replicated)(
            state
        )

    # ------------------------------------------------------------------ batches
    def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's rows (B_local, ...) -> a global device array (explicit transfer)."""
        if self.mode == "sharding":
            return {
                k: jax.make_array_from_process_local_data(self.sharded, v)
                for k, v in local_batch.items()
            }
        n_local = sum(d.process_index == jax.process_index() for d in self.mesh.devices.flat)
        out = {}
        for k, v in local_batch.items():
            if v.shape[0] % n_local:
                raise ValueError(
                    f"per-process batch {v.shape[0]} is not divisible by local devices {n_local}"
                )
            v = v.reshape((n_local, v.shape[0] // n_local) + v.shape[1:])
            out[k] = jax.make_array_from_process_local_data(self.sharded, v)
        return out

    def step(self, state: Any, batch: dict[str, jax.Array]) -> tuple[Any, dict[str, jax.Array]]:
        """Run one compiled step. Metrics come back replicated (pmap: with a device axis)."""
        return self._step(state, batch)

    def metrics_to_host(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        """Fetch one step's metrics (explicit transfer)."""
        host = jax.device_get(metrics)
        if self.mode == "pmap":
            host = {k: v[0] for k, v in host.items()}
        return {k: float(v) for k, v in host.items()}
