"""Multi-host start-up: ``jax.distributed.initialize`` when launched under a cluster.

Cluster environments (TPU pod slices, SLURM, Open MPI) are auto-detected by JAX; explicit
``--coordinator_address --num_processes --process_id`` flags override them (two hosts on a
LAN, or a local two-process test). On a single machine nothing is initialised.
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


def _in_cluster() -> bool:
    env = os.environ
    return any(
        k in env
        for k in (
            "SLURM_JOB_ID",
            "OMPI_COMM_WORLD_SIZE",
            "TPU_WORKER_HOSTNAMES",
            "MEGASCALE_COORDINATOR_ADDRESS",
        )
    )


def initialize(coordinator_address=None, num_processes=None, process_id=None) -> None:
    """Initialise the multi-host runtime when asked to or when a cluster is detected."""
    if coordinator_address is not None:
        if jax.default_backend() == "cpu" or os.environ.get("JAX_PLATFORMS", "") == "cpu":
            # CPU collectives across processes need gloo.
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    elif _in_cluster():
        jax.distributed.initialize()


def initialize_from_flags() -> None:
    initialize(
        _FLAGS["coordinator"].value, _FLAGS["num_processes"].value, _FLAGS["process_id"].value
    )
