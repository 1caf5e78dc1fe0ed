"""Multi-host start-up: ``jax.distributed.initialize`` when launched under a cluster.

Cluster environments (Cloud TPU VMs and pod slices, SLURM, Open MPI) are detected here and
then configured by JAX itself (``jax.distributed.initialize()`` without arguments); explicit
``--coordinator_address --num_processes --process_id`` flags override them (hosts on a LAN,
or the local two-process test). On a plain single machine nothing is initialised.
"""

from __future__ import annotations

import os

import jax
from absl import flags

_FLAGS = {}


def define_flags() -> None:
    _FLAGS["coordinator"] = flags.DEFINE_string(
        "coordinator_address", None, "host:port of process 0 (multi-host runs)."
    )
    _FLAGS["num_processes"] = flags.DEFINE_integer("num_processes", None, "Total processes.")
    _FLAGS["process_id"] = flags.DEFINE_integer("process_id", None, "This process's index.")


def _on_cloud_tpu_vm() -> bool:
    """Whether this is a Cloud TPU VM (JAX then reads the slice's hosts from its metadata).

    The environment variables are not always set in an ssh session on a pod slice, so this
    asks JAX's own check (a private module; without it, fall back to the TPU device files).
    """
    try:
        from jax._src.cloud_tpu_init import running_in_cloud_tpu_vm

        return bool(running_in_cloud_tpu_vm)
    except Exception:  # noqa: BLE001 - private API moved: use the device files
        return os.path.exists("/dev/accel0") or os.path.isdir("/dev/vfio")


def _in_cluster() -> bool:
    env = os.environ
    keys = (
        "SLURM_JOB_ID",
        "OMPI_COMM_WORLD_SIZE",
        "TPU_WORKER_HOSTNAMES",
        "MEGASCALE_COORDINATOR_ADDRESS",
    )
    return any(k in env for k in keys) or _on_cloud_tpu_vm()


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    initialization_timeout: int = 300,
) -> bool:
    """Initialise the multi-host runtime when asked to or when a cluster is detected.

    Must run before anything touches a JAX backend (``jax.devices()``, any computation):
    ``jax.distributed.initialize`` refuses to run afterwards.

    Args:
      coordinator_address: ``host:port`` of process 0; None = auto-detect a cluster (TPU pod
        slice, SLURM, Open MPI) or stay single-process.
      num_processes, process_id: required with ``coordinator_address``.
      initialization_timeout: seconds to wait for all processes to connect.

    Returns:
      True when the distributed runtime was initialised.
    """
    if coordinator_address is not None:
        if num_processes is None or process_id is None:
            raise ValueError(
                f"--coordinator_address={coordinator_address} also needs --num_processes and "
                f"--process_id (got {num_processes}, {process_id})"
            )
        if not 0 <= process_id < num_processes:
            raise ValueError(f"--process_id={process_id} must be in [0, {num_processes})")
        # Cross-process collectives between CPU devices need gloo (JAX's current default, set
        # explicitly so an older default or a site config cannot turn them off). It only
        # affects the CPU client, so it is harmless on GPU/TPU. Do not query the backend here:
        # that would initialise it and make jax.distributed.initialize fail.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=initialization_timeout,
        )
        return True
    if _in_cluster():
        jax.distributed.initialize()
        return True
    return False


def initialize_from_flags() -> bool:
    return initialize(
        _FLAGS["coordinator"].value, _FLAGS["num_processes"].value, _FLAGS["process_id"].value
    )
