"""Data-parallel wrappers of the pure train step: 'sharding' (default) and 'pmap'.

* ``sharding``: ``jax.jit`` over a 1-D ('data',) Mesh of all devices of all processes; the
  state is replicated (``NamedSharding(mesh, P())``), batches are sharded over 'data', the
  state buffers are donated, and XLA inserts the gradient all-reduce.
* ``pmap``: the classic per-device step; the state carries a leading device axis and the step
  averages gradients and metrics with ``lax.pmean``. Its arrays are laid out over the same mesh
  (pmap's axis is named 'data'), so both modes share the host-to-device code and the
  checkpoint format (checkpoints always hold one copy of the state).

Both run on one device. Host batches are process-local: each process passes its own rows
(``put_batch``); with several processes they are put back into global stream order, so a run
gives the same result (to float rounding) on 1 device, N devices or N devices over several
processes (tests/test_parallel.py, tests/test_distributed.py). The mesh lists devices
process by process, so each process's devices hold one contiguous block of rows.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from csc_jax.errors import ConfigError
from csc_jax.training.step import train_step

AXIS = "data"
MODES = ("sharding", "pmap")


def check_batch_divisible(global_batch: int, num_devices: int, num_processes: int = 1) -> None:
    """Raise a clear error when the global batch cannot be split evenly."""
    if global_batch % num_devices:
        raise ConfigError(
            f"data.batch_size={global_batch} is not divisible by the number of devices "
            f"({num_devices}); use a multiple of {num_devices}"
        )
    if global_batch % num_processes:
        raise ConfigError(
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
            raise ConfigError(f"config.parallel={mode!r} is not one of {MODES}")
        self.mode = mode
        devices = list(jax.devices() if devices is None else devices)
        # Process-major (stable, so the platform's order within a process is kept): each
        # process's devices then hold one contiguous block of the batch rows.
        devices.sort(key=lambda d: d.process_index)
        self.mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
        self.num_devices = len(devices)
        self.num_processes = len({d.process_index for d in devices})
        self.num_local_devices = sum(d.process_index == jax.process_index() for d in devices)
        self._arrange_cache = {}
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P(AXIS))
        check_batch_divisible(config.data.batch_size, self.num_devices, self.num_processes)
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
        """Placed state -> one replicated copy (for checkpoints and evaluation).

        pmap: every device holds an identical copy after ``pmean``; each local device's copy
        becomes that device's buffer of a replicated global array (no transfer between
        devices or processes; with several processes pmap outputs are process-local).
        """
        if self.mode == "sharding":
            return state
        devices = list(self.replicated.addressable_devices)

        def one(x):
            shape = x.shape[1:]
            per_device = {shard.device: shard.data for shard in x.addressable_shards}
            arrays = [per_device[d].reshape(shape) for d in devices]
            return jax.make_array_from_single_device_arrays(shape, self.replicated, arrays)

        return jax.tree.map(one, state)

    # ------------------------------------------------------------------ batches
    def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's rows (B_local, ...) -> the global batch on the devices.

        Sharding mode: (B, ...) sharded over 'data'; pmap: (devices, B // devices, ...)
        sharded on axis 0. Transfers are explicit ``jax.device_put`` calls of each local
        device's rows (``make_array_from_process_local_data`` counts as an *implicit* transfer
        for the transfer guard when several processes take part, JAX 0.10).

        With several processes the assembled array holds the processes' rows in process
        order, but the grain pipeline interleaves its shards (csc_jax/data/pipeline.py):
        process s of S holds the step's global stream positions ``s + S*j``. The step keys
        each example's mixing randomness by its row in the global batch, so one jitted gather
        (an all-to-all of the batch) first restores stream order; otherwise a multi-process
        run would pair crops with other mixing draws than a one-process run of the same
        global batch.
        """
        out = {}
        for k, v in local_batch.items():
            if v.shape[0] % self.num_local_devices:
                raise ValueError(
                    f"per-process batch {v.shape[0]} ({k!r}) is not divisible by the "
                    f"{self.num_local_devices} local devices"
                )
            if self.mode == "pmap" and self.num_processes == 1:
                v = v.reshape((self.num_local_devices, -1) + v.shape[1:])
            x = self._from_local_rows(v)
            out[k] = x if self.num_processes == 1 else self._to_stream_order(x)
        return out

    def _from_local_rows(self, v: np.ndarray) -> jax.Array:
        """Global array sharded over 'data' whose rows on this process's devices are ``v``."""
        global_shape = (v.shape[0] * self.num_processes,) + v.shape[1:]
        index = self.sharded.addressable_devices_indices_map(global_shape)
        devices = list(index)
        starts = [index[d][0].start or 0 for d in devices]
        offset = min(starts)  # this process's first global row (its rows are contiguous)
        rows = global_shape[0] // self.num_devices
        pieces = [v[s - offset : s - offset + rows] for s in starts]
        arrays = jax.device_put(pieces, devices)
        return jax.make_array_from_single_device_arrays(global_shape, self.sharded, arrays)

    def _to_stream_order(self, x: jax.Array) -> jax.Array:
        """(B, ...) rows in process order -> stream order (pmap: reshaped per device)."""
        fn = self._arrange_cache.get((x.shape, x.dtype))
        if fn is None:
            procs, n, pmap = self.num_processes, self.num_devices, self.mode == "pmap"

            def arrange(a):
                rows = jnp.arange(a.shape[0])
                local = a.shape[0] // procs
                a = a[(rows % procs) * local + rows // procs]
                return a.reshape((n, -1) + a.shape[1:]) if pmap else a

            fn = jax.jit(arrange, out_shardings=self.sharded)
            self._arrange_cache[(x.shape, x.dtype)] = fn
        return fn(x)

    def step(self, state: Any, batch: dict[str, jax.Array]) -> tuple[Any, dict[str, jax.Array]]:
        """Run one compiled step. Metrics come back replicated (pmap: with a device axis)."""
        return self._step(state, batch)

    def lower(self, state: Any, batch: dict[str, jax.Array]):
        """The step lowered for these (placed) arguments: ``.compile()`` gives the executable
        that :meth:`step` runs, with its ``cost_analysis()`` and ``memory_analysis()``."""
        return self._step.lower(state, batch)

    def metrics_to_host(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        """Fetch one step's metrics (explicit transfer)."""
        # One addressable copy: metrics are replicated (sharding) or equal on every device
        # (pmap, after pmean); a multi-process array cannot be fetched whole.
        local = {k: v.addressable_data(0) for k, v in metrics.items()}
        host = jax.device_get(local)
        return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in host.items()}
