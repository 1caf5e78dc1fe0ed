"""``train_and_evaluate(config, workdir)``: training composed with the verification protocol.

The one module that joins :mod:`csc_jax.training` (which never imports evaluation) and
:mod:`csc_jax.evaluation`: the evaluation's data checks run before anything compiles, the
validation EER is handed to the loop as an evaluator, and the protocol runs on the final
parameters.
"""

from __future__ import annotations

import jax

from csc_jax.evaluation import validation, verification
from csc_jax.models import model_from_config
from csc_jax.training import loop, metric_log


def train_and_evaluate(config, workdir: str, *, allow_config_change: tuple[str, ...] = ()):
    """Train (or resume) with the validation EER, plot the curves, then evaluate.

    Returns the protocol's results dict (process 0 with ``train.eval_at_end``), else None.
    """
    evaluators = []

    def check_data():
        # Before compilation: the evaluation's inputs, then the validation set (built here,
        # once: its audio is corrupted once and reused at every validation step).
        if config.train.eval_at_end:
            verification.check_eval_inputs(config)
        if jax.process_index() == 0:
            evaluators.extend(validation.validation_evaluators(config, model_from_config(config)))

    model, state = loop.train(
        config,
        workdir,
        allow_config_change=allow_config_change,
        check_data=check_data,
        evaluators=evaluators,
    )
    if jax.process_index() != 0:
        return None
    metric_log.plot_training_curves(workdir)
    if config.train.eval_at_end:
        return verification.evaluate_workdir(config, workdir, model=model, params=state.params)
    return None
