"""Checkpoints: the one place that lists, saves, checks and restores them.

Layout: ``<workdir>/checkpoints/<step>/{state,data}`` (orbax ``CheckpointManager``; ``data``
is the grain iterator state). Orbax writes each step into a temporary directory and renames
it when complete, so a run killed mid-save (or a save that fails, e.g. on a full disk) leaves
only the previous complete checkpoints visible; older checkpoints are deleted only after a
newer one is committed. Saves are asynchronous; ``wait()`` blocks until the last one is
committed, and a failed background write is raised as :class:`CheckpointError` by the next
``save()`` or ``wait()``. Every process calls save/restore (orbax coordinates them; each
process stores its own data-iterator state).

Restoring (training's resume, evaluation and ``csc_jax.load`` all go through
:func:`restore_state`): the parameter shapes stored in the checkpoint's metadata are compared
with the config's model first (:class:`CheckpointMismatchError` names the differing
parameters). When no step is asked for, a checkpoint whose metadata or arrays cannot be read
(bit rot, an interrupted copy) is **moved aside** to ``<workdir>/damaged_checkpoints/`` with a
warning naming the step and the reason, and the next older one is used; a damaged step asked
for explicitly is an error.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from csc_jax.config import segment_samples
from csc_jax.errors import CheckpointError, CheckpointMismatchError, MissingCheckpointError

try:  # grain registers its iterator handler with orbax on import
    import grain

    _GRAIN_ARGS = (grain.checkpoint.CheckpointSave, grain.checkpoint.CheckpointRestore)
except Exception:  # pragma: no cover - grain is a hard dependency, kept defensive for reuse
    _GRAIN_ARGS = None

DAMAGED_DIRNAME = "damaged_checkpoints"


def checkpoint_dir(workdir: str | os.PathLike) -> str:
    """``<workdir>/checkpoints`` as an absolute path."""
    return os.path.abspath(os.path.join(os.fspath(workdir), "checkpoints"))


class Checkpointer:
    """Thin wrapper over ``ocp.CheckpointManager`` for (train state, data iterator).

    Args:
      workdir: run directory; checkpoints go to ``<workdir>/checkpoints``.
      keep: number of most recent checkpoints to keep.
      async_save: write in a background thread (orbax default).
      cleanup_tmp: delete temporary directories of unfinished saves at start-up (only the
        process that owns the run may: a reader must not delete a running save's files).
      read_only: a reader (evaluation, inference): creates nothing, never saves.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        keep: int = 2,
        async_save: bool = True,
        cleanup_tmp: bool = False,
        read_only: bool = False,
    ):
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.directory = checkpoint_dir(workdir)
        self.read_only = read_only
        if read_only:
            if not os.path.isdir(self.directory):
                raise MissingCheckpointError(
                    f"no checkpoint directory {self.directory}: train first with this --workdir"
                )
        else:
            try:
                os.makedirs(self.directory, exist_ok=True)
            except OSError as e:
                raise CheckpointError(
                    f"cannot create checkpoint directory {self.directory}: {e.strerror}"
                ) from e
            if not os.access(self.directory, os.W_OK):
                raise CheckpointError(f"checkpoint directory {self.directory} is not writable")
        options = ocp.CheckpointManagerOptions(
            # A reader neither saves nor deletes: orbax would override these two with an absl
            # WARNING each (on every csc_jax.load) if they kept their writer's values.
            max_to_keep=None if read_only else keep,
            save_interval_steps=0 if read_only else 1,
            create=not read_only,
            read_only=read_only,
            enable_async_checkpointing=async_save and not read_only,
            cleanup_tmp_directories=cleanup_tmp and not read_only,
        )
        with _quiet_orbax():
            self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._pending: int | None = None  # step of the last save() not yet known committed

    # ------------------------------------------------------------------ listing
    def all_steps(self) -> list[int]:
        """Complete checkpoint steps, oldest first (re-reads the directory)."""
        self.manager.reload()
        return sorted(int(s) for s in self.manager.all_steps())

    def latest_step(self) -> int | None:
        """Most recent checkpoint step (including one still being written), or None."""
        return self.manager.latest_step()

    def committed_step(self) -> int | None:
        """Most recent checkpoint complete on disk, or None."""
        try:
            steps = self.all_steps()
        except Exception:  # noqa: BLE001 - only used to word an error message
            return None
        return steps[-1] if steps else None

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(int(step)))

    # ------------------------------------------------------------------ saving
    def save(self, step: int, state: Any, data_iterator=None, *, force: bool = False) -> None:
        """Start saving ``state`` (one copy, any sharding) and the iterator state at ``step``.

        Waits for the previous save first (orbax would too), so that its failure is reported
        as that step's failure.
        """
        if self.read_only:
            raise CheckpointError(f"{self.directory} was opened read-only")
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

    # ------------------------------------------------------------------ reading
    def param_shapes(self, step: int) -> dict[str, tuple[int, ...]]:
        """Parameter shapes stored in step ``step``'s metadata (no array is read)."""
        where = self.step_dir(step)
        try:
            with _quiet_orbax():
                meta = ocp.StandardCheckpointer().metadata(os.path.join(where, "state"))
        except Exception as e:
            raise CheckpointError(f"cannot read checkpoint metadata in {where}: {e}") from e
        tree = getattr(meta, "item_metadata", meta)
        tree = getattr(tree, "tree", tree)
        if not isinstance(tree, dict) or "params" not in tree:
            raise CheckpointError(f"{where}: not a csc-jax train state (no 'params')")
        return {
            jax.tree_util.keystr(k): tuple(int(d) for d in v.shape)
            for k, v in jax.tree_util.tree_leaves_with_path(tree["params"])
        }

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
            with _quiet_orbax():
                restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:
            raise CheckpointError(
                f"cannot restore checkpoint step {step} from {self.directory}: {e}"
            ) from e
        return step, restored["state"]

    def move_aside(self, step: int, reason: str) -> str:
        """Rename a damaged step directory into ``<workdir>/damaged_checkpoints/``; warn."""
        src = self.step_dir(step)
        dest_root = os.path.join(self.workdir, DAMAGED_DIRNAME)
        os.makedirs(dest_root, exist_ok=True)
        dest = os.path.join(dest_root, f"{int(step)}-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while os.path.exists(dest):
            dest = f"{dest.rsplit('.', 1)[0]}.{n}"
            n += 1
        os.replace(src, dest)
        self.manager.reload()
        warnings.warn(
            f"checkpoint step {step} in {self.directory} is damaged and was skipped "
            f"({reason}); moved to {dest}",
            RuntimeWarning,
            stacklevel=3,
        )
        return dest

    def close(self) -> None:
        self.manager.close()


def complete_steps(workdir: str | os.PathLike) -> list[int]:
    """Complete checkpoint steps of ``workdir``, oldest first; [] when it has none (creates
    nothing)."""
    if not os.path.isdir(checkpoint_dir(workdir)):
        return []
    ckpt = Checkpointer(workdir, async_save=False, read_only=True)
    try:
        return ckpt.all_steps()
    finally:
        ckpt.close()


class _quiet_orbax:
    """Raise absl's log level while orbax reads (it warns about optional metadata files)."""

    def __enter__(self):
        self._logger = logging.getLogger("absl")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)


def abstract_like(state: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs of ``state`` carrying ``shardings`` (the restore target)."""
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
    )


def abstract_train_state(config, model, tx, sharding) -> Any:
    """ShapeDtypeStructs of the config's TrainState, every leaf with ``sharding``."""
    from csc_jax.training.state import create_train_state

    shape = (1, config.mixing.num_conditions, segment_samples(config))
    rng = jax.random.PRNGKey(config.seed)
    shapes = jax.eval_shape(lambda: create_train_state(model, tx, rng, shape))
    return abstract_like(shapes, jax.tree.map(lambda _: sharding, shapes))


def check_param_shapes(model, config, got: dict[str, tuple[int, ...]], where: str) -> None:
    """Raise CheckpointMismatchError unless ``got`` has exactly the config's parameter shapes."""
    example = np.zeros((1, config.mixing.num_conditions, segment_samples(config)), np.float32)
    expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), example))["params"]
    want = {
        jax.tree_util.keystr(k): tuple(v.shape)
        for k, v in jax.tree_util.tree_leaves_with_path(expected)
    }
    problems = []
    for key in sorted(set(want) | set(got)):
        a, b = want.get(key), got.get(key)
        if a is None:
            problems.append(f"params{key} is in the checkpoint but not in the model")
        elif b is None:
            problems.append(f"params{key} is missing from the checkpoint")
        elif a != b:
            problems.append(f"params{key}: checkpoint {b} vs config {a}")
    if problems:
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        raise CheckpointMismatchError(
            f"checkpoint {where} does not fit the model described by its config.json (were "
            f"model.* keys edited, or was it saved by another version of csc-jax?): "
            f"{'; '.join(problems[:4])}{more}"
        )


@dataclasses.dataclass
class Restored:
    """What :func:`restore_state` found: the step, the state and the steps skipped as damaged."""

    step: int
    state: Any
    skipped: list[tuple[int, str, str]]  # (step, reason, where it was moved)


def restore_state(
    ckpt: Checkpointer,
    config,
    model,
    tx,
    sharding,
    *,
    step: int | None = None,
    data_iterator=None,
    move_damaged: bool = True,
) -> Restored:
    """Restore a TrainState (and the iterator state) from ``ckpt``: the one restore path.

    Args:
      ckpt: the workdir's Checkpointer.
      config, model, tx: describe the state (parameter shapes are checked against the model).
      sharding: every leaf's target sharding (a replicated NamedSharding for training, one
        device for evaluation and inference).
      step: a step to restore; None = the newest one that restores; damaged newer ones are
        moved aside (``move_damaged``; False only skips them).
      data_iterator: grain iterator restored in place, or None.

    Raises:
      CheckpointError: no checkpoint, or the explicit ``step`` is missing or damaged, or none
        restores.
      CheckpointMismatchError: the checkpoint's parameter shapes differ from the model's.
    """
    steps = ckpt.all_steps()
    if not steps:
        raise MissingCheckpointError(f"no complete checkpoint in {ckpt.directory}: train first")
    if step is not None and int(step) not in steps:
        raise MissingCheckpointError(
            f"checkpoint step {step} not found in {ckpt.directory} (available: {steps})"
        )
    candidates = [int(step)] if step is not None else steps[::-1]
    abstract = abstract_train_state(config, model, tx, sharding)
    skipped = []
    for s in candidates:
        try:
            shapes = ckpt.param_shapes(s)
            check_param_shapes(model, config, shapes, ckpt.step_dir(s))
            _, state = ckpt.restore(abstract, data_iterator=data_iterator, step=s)
            return Restored(s, state, skipped)
        except CheckpointMismatchError:
            raise
        except CheckpointError as e:
            if step is not None:
                raise CheckpointError(
                    f"checkpoint step {s} in {ckpt.directory} is damaged: {e} (asked for it "
                    "explicitly, so no older checkpoint is used)"
                ) from e
            reason = str(e).splitlines()[0][:300]
            where = None
            if move_damaged and jax.process_index() == 0:
                try:
                    where = ckpt.move_aside(s, reason)
                except OSError as move_error:  # a read-only workdir: skip it in place
                    reason += f"; could not move it aside: {move_error}"
            if where is None:
                where = ckpt.step_dir(s)
                warnings.warn(
                    f"checkpoint step {s} in {ckpt.directory} is damaged and was skipped "
                    f"({reason})",
                    RuntimeWarning,
                    stacklevel=2,
                )
            skipped.append((s, reason, where))
    raise CheckpointError(
        f"no checkpoint in {ckpt.directory} could be restored (tried steps "
        f"{', '.join(str(s) for s, _, _ in skipped)})"
    )


def restore_params(config, workdir: str, step: int | None = None, *, model=None):
    """(model, params, step) of a workdir's checkpoint, on the first local device.

    Creates nothing in the workdir; a damaged newer checkpoint is moved aside (when the
    workdir is writable) and skipped with a warning, as in training (:func:`restore_state`).
    """
    from csc_jax.models import model_from_config
    from csc_jax.training.state import make_optimizer

    model = model or model_from_config(config)
    ckpt = Checkpointer(workdir, async_save=False, read_only=True)
    try:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        restored = restore_state(ckpt, config, model, make_optimizer(config), sharding, step=step)
    finally:
        ckpt.close()
    return model, restored.state.params, restored.step
