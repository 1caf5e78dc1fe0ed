"""``load()``: a trained workdir (or its checkpoints/, or one step directory) as a SpeakerModel.

The config comes from ``csc_jax.config.read_saved_config`` and the parameters from
``csc_jax.training.checkpointing.restore_params``, the restore path training and evaluation
use: parameter shapes are checked against config.json, and a damaged newest checkpoint is
moved aside to ``<workdir>/damaged_checkpoints/`` with a RuntimeWarning and the previous one
is loaded (a damaged step asked for explicitly is a CheckpointError).
"""

from __future__ import annotations

import os

from csc_jax.errors import ConfigError
from csc_jax.inference.speaker_model import (
    DEFAULT_BUCKET_SECONDS,
    DEFAULT_MAX_SECONDS,
    SpeakerModel,
)


def resolve_workdir(path: str | os.PathLike, step: int | None) -> tuple[str, int | None]:
    """(workdir, step) from a workdir, its checkpoints/ directory or a step dir checkpoints/<n>.

    Raises:
      FileNotFoundError: ``path`` does not exist or no config.json belongs to it.
      ConfigError: ``path`` is step directory n but a different ``step`` was asked for.
    """
    given = os.fspath(path)
    path = os.path.abspath(given)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model path {given} does not exist")
    if os.path.isfile(os.path.join(path, "config.json")):
        return path, step
    parent = os.path.dirname(path)
    if os.path.basename(path) == "checkpoints" and os.path.isfile(
        os.path.join(parent, "config.json")
    ):
        return parent, step
    grand = os.path.dirname(parent)
    name = os.path.basename(path)
    if (
        name.isdigit()
        and os.path.basename(parent) == "checkpoints"
        and os.path.isfile(os.path.join(grand, "config.json"))
    ):
        if step is not None and int(step) != int(name):
            raise ConfigError(f"model path {given} is checkpoint step {int(name)} but step={step}")
        return grand, int(name)
    raise FileNotFoundError(
        f"no config.json for model path {given}: expected a training workdir (config.json + "
        "checkpoints/), its checkpoints/ directory, or a step directory checkpoints/<n>"
    )


def load(
    path: str | os.PathLike,
    step: int | None = None,
    *,
    bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> SpeakerModel:
    """Load a trained model for inference.

    Args:
      path: a training workdir (with config.json and checkpoints/), its checkpoints/ directory,
        or one step directory ``checkpoints/<n>``.
      step: checkpoint step (default: the newest one that restores, or the step directory's).
      bucket_seconds: input lengths are wrap-padded up to multiples of this
        (``csc_jax.inference.speaker_model``).
      max_seconds: longest piece run at once; longer inputs are split.

    Returns:
      a :class:`SpeakerModel`.

    Warns:
      RuntimeWarning: the newest checkpoint was damaged; it names the step, the reason and
        where the step directory was moved, and the previous checkpoint is loaded.

    Raises:
      FileNotFoundError: no config.json at ``path`` (the message names it).
      csc_jax.errors.ConfigError: config.json invalid (names the file and key).
      csc_jax.errors.CheckpointMismatchError: the checkpoint's parameters differ from
        config.json's model.
      csc_jax.errors.CheckpointError: no checkpoint, ``step`` missing or damaged, or none
        restores.
    """
    from csc_jax.config import read_saved_config
    from csc_jax.training.checkpointing import restore_params

    workdir, step = resolve_workdir(path, step)
    config = read_saved_config(workdir)
    model, params, step = restore_params(config, workdir, step)
    return SpeakerModel(
        config, model, params, step, bucket_seconds=bucket_seconds, max_seconds=max_seconds
    )
