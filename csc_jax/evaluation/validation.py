"""Validation EER during training: an evaluator handed to the training loop.

Every ``eval.validation_every`` steps the loop calls :class:`ValidationEER` with the current
parameters; it embeds a fixed small trial list (at most ``eval.validation_trials`` trials)
clean and with one interfering talker at 0 dB SIR, and returns ``{'eer_clean': %,
'eer_sir0': %}``, logged as ``val/eer_clean`` and ``val/eer_sir0`` in metrics.jsonl,
TensorBoard and training_curves.png. So convergence is seen, not assumed.

Validation speakers are disjoint from the training and test speakers: the embedded corpus's
``val`` split (``data.synthetic.num_val_speakers``), ``data.folder.val_root`` or
``data.tfds.val_split``. A folder or tfds corpus without one has no validation EER (one printed
notice says so and how to get one) unless ``eval.validation_on_test=True`` opts into a subset
of the test trials, announced by one printed warning: that curve monitors convergence only
(nothing may be selected with it).
"""

from __future__ import annotations

import sys

import numpy as np

from csc_jax import metrics
from csc_jax.config import samples
from csc_jax.data import sources
from csc_jax.errors import ConfigError
from csc_jax.evaluation import conditions as cond_lib
from csc_jax.evaluation.eval_set import EvalSet
from csc_jax.evaluation.verification import subsample_trials, trial_list
from csc_jax.inference.batched import BatchedModel

CONDITIONS = (cond_lib.Condition("clean"), cond_lib.Condition("speech", 0.0))
NAMES = ("eer_clean", "eer_sir0")


def missing_split_key(config) -> str | None:
    """The empty key that leaves the data without validation speakers, or None if it has them
    (the embedded corpus always does)."""
    d = config.data
    kind = sources.split_source_kind(config, "val")  # a 'mixed' config's primary source
    if kind == "folder" and not d.folder.val_root:
        return "data.folder.val_root"
    if kind == "tfds" and not d.tfds.val_split:
        return "data.tfds.val_split"
    return None


def validation_source(config):
    """(AudioSource, trial-list path) of the validation trials (see the module docstring):
    the validation split's, or the test trials' under ``eval.validation_on_test``.

    Raises:
      ConfigError: there is no validation split and ``eval.validation_on_test`` is False.
    """
    key = missing_split_key(config)
    if key is None:
        return sources.make_source(config, "val"), ""
    if not config.eval.validation_on_test:
        raise ConfigError(f"{key} is empty: no validation speakers (eval.validation_on_test)")
    return sources.make_source(config, "test"), None


class ValidationEER:
    """Evaluator: validation EER (%) clean and at SIR 0 dB of the model's K=1 vector.

    Args:
      config: the experiment config (``eval.validation_every``, ``eval.validation_trials``).
      model: the CSCModel being trained (its ``embed`` method is what is scored).
    """

    name = "val"

    def __init__(self, config, model):
        self.every = int(config.eval.validation_every)
        ev = config.eval
        source, path = validation_source(config)
        trials = subsample_trials(trial_list(config, source, path), ev.validation_trials, ev.seed)
        length = samples(ev.seconds, config.data.sample_rate)
        self.eval_set = EvalSet(source, trials, length, ev.seed)
        self.model = BatchedModel(model, None, ev.batch_size)
        # The audio never changes: corrupt it once.
        self.enroll = self.eval_set.enrollment()
        self.tests = [self.eval_set.tests(c, i) for i, c in enumerate(CONDITIONS)]

    def __call__(self, step: int, params) -> dict[str, float]:
        es = self.eval_set
        self.model.params = params  # an argument of the jitted function: no recompilation
        enroll = self.model.embed(self.enroll)[es.enroll_row]
        out = {}
        for name, tests in zip(NAMES, self.tests, strict=True):
            test = self.model.embed(tests)[es.test_row]
            scores = np.sum(enroll * test, axis=-1)  # unit vectors: cosine
            out[name] = 100.0 * metrics.eer(scores, es.labels)[0]
        return out


def validation_evaluators(config, model) -> list:
    """[ValidationEER] when ``eval.validation_every`` > 0 and there are validation trials, else
    []; without a validation split it prints one line: a notice that validation is off, or,
    with ``eval.validation_on_test``, a warning that the test trials are used."""
    if config.eval.validation_every <= 0:
        return []
    key = missing_split_key(config)
    if key is not None and not config.eval.validation_on_test:
        print(
            f"notice: no validation EER during training: {key} is empty (no validation "
            f"speakers). Set {key}, or eval.validation_on_test=True to monitor convergence on "
            "a subset of the test trials.",
            flush=True,
        )
        return []
    if key is not None:
        print(
            f"warning: the validation EER uses up to {config.eval.validation_trials} of the "
            f"test trials ({key} is empty, eval.validation_on_test=True): a convergence "
            "monitor only; do not choose a checkpoint or a config with it.",
            file=sys.stderr,
            flush=True,
        )
    return [ValidationEER(config, model)]
