"""Orbax checkpoints of the train state and the grain data-iterator state.

Layout: ``<workdir>/checkpoints/<step>/{state,data}``. Orbax writes each step into a temporary
directory and renames it when complete, so a run killed mid-save (or a save that fails, e.g.
a full disk) leaves only the previous complete checkpoints visible to ``latest_step()``; older
checkpoints are deleted only after a newer one is committed. The training loop's manager
removes leftover temporary directories when it starts. Saves are asynchronous; ``wait()``
blocks until the last one is committed, and a failed background write is raised as
:class:`CheckpointError` by the next ``save()`` or ``wait()``. Every process calls
save/restore (orbax coordinates them; each process stores its own data-iterator state).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

try:  # grain registers its iterator handler with orbax on import
    import grain

    _GRAIN_ARGS = (grain.checkpoint.CheckpointSave, grain.checkpoint.CheckpointRestore)
except Exception:  # pragma: no cover - grain is a hard dependency, kept defensive for reuse
    _GRAIN_ARGS = None


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message names the directory."""


class Checkpointer:
    """Thin wrapper over ``ocp.CheckpointManager`` for (state, data iterator).

    Args:
      workdir: run directory; checkpoints go to ``<workdir>/checkpoints``.
      keep: number of most recent checkpoints to keep.
      async_save: write in a background thread (orbax default).
      cleanup_tmp: delete temporary directories of unfinished saves at start-up (only the
        process that owns the run may: a reader must not delete a running save's files).
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        keep: int = 2,
        async_save: bool = True,
        cleanup_tmp: bool = False,
    ):
        self.directory = os.path.abspath(os.path.join(os.fspath(workdir), "checkpoints"))
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:
            raise CheckpointError(
                f"cannot create checkpoint directory {self.directory}: {e.strerror}"
            ) from e
        if not os.access(self.directory, os.W_OK):
            raise CheckpointError(f"checkpoint directory {self.directory} is not writable")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=True,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=cleanup_tmp,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._pending: int | None = None  # step of the last save() not yet known committed

    def latest_step(self) -> int | None:
        """Most recent checkpoint step (including one still being written), or None."""
        return self.manager.latest_step()

    def committed_step(self) -> int | None:
        """Most recent checkpoint complete on disk, or None (re-reads the directory)."""
        try:
            self.manager.reload()
            return self.manager.latest_step()
        except Exception:  # noqa: BLE001 - only used to word an error message
            return None

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: Any, data_iterator=None, *, force: bool = False) -> None:
        """Start saving ``state`` (one copy, any sharding) and the iterator state at ``step``.

        Waits for the previous save first (orbax would too), so that its failure is reported
        as that step's failure.
        """
        self.wait()
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = _GRAIN_ARGS[0](data_iterator)
        try:
            self.manager.save(step, args=ocp.args.Composite(**items), force=force)
            self._pending = step
        except Exception as e:
            raise CheckpointError(
                f"failed to save checkpoint step {step} in {self.directory}: {e}; the previous "
                f"complete checkpoint (step {self.committed_step()}) is kept"
            ) from e

    def wait(self) -> None:
        """Block until pending async saves are committed; raise CheckpointError if one failed."""
        pending, self._pending = self._pending, None
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise CheckpointError(
                f"writing checkpoint step {pending} in {self.directory} failed: {e}; the "
                f"previous complete checkpoint (step {self.committed_step()}) is kept"
            ) from e

    def restore(self, abstract_state: Any, data_iterator=None, step: int | None = None):
        """Restore ``step`` (default latest) into the shardings of ``abstract_state``.

        Args:
          abstract_state: pytree of jax.ShapeDtypeStruct (with .sharding) describing the target.
          data_iterator: a grain iterator whose state is restored in place, or None.
          step: which step; None = latest.

        Returns:
          (step, restored state).
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.directory}")
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items["data"] = _GRAIN_ARGS[1](data_iterator)
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:
            raise CheckpointError(
                f"cannot restore checkpoint step {step} from {self.directory}: {e}"
            ) from e
        return step, restored["state"]

    def close(self) -> None:
        self.manager.close()


def abstract_like(state: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs of ``state`` carrying ``shardings`` (the restore target)."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
    )
