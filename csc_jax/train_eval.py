"""``train_and_evaluate(config, workdir)``: training composed with the verification protocol.

The one module that joins :mod:`csc_jax.training` (which never imports evaluation) and
:mod:`csc_jax.evaluation`: the evaluation's data checks run before anything compiles, and
the protocol runs on the final parameters.
"""

from __future__ import annotations

import jax

from csc_jax.evaluation import verification
from csc_jax.training import loop, metric_log


def train_and_evaluate(config, workdir: str, *, allow_config_change: tuple[str, ...] = ()):
    """Train (or resume), plot the training curves, then evaluate (``train.eval_at_end``).

    Returns the protocol's results dict (process 0 with ``train.eval_at_end``), else None.
    """
    check = (lambda: verification.check_eval_inputs(config)) if config.train.eval_at_end else None
    model, state = loop.train(
        config, workdir, allow_config_change=allow_config_change, check_data=check
    )
    if jax.process_index() != 0:
        return None
    metric_log.plot_training_curves(workdir)
    if config.train.eval_at_end:
        return verification.evaluate_workdir(config, workdir, model=model, params=state.params)
    return None
