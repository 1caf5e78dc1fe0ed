"""``train_and_evaluate(config, workdir)``: training composed with the verification protocol.

The one module that joins :mod:`csc_jax.training` (which never imports evaluation) and
:mod:`csc_jax.evaluation`: the evaluation's data checks run before anything compiles, the
validation EER is handed to the loop as an evaluator, and the protocol runs on the final
parameters.
"""

from __future__ import annotations

import os
import time

import jax

from csc_jax import io_utils, metrics
from csc_jax.evaluation import validation, verification
from csc_jax.models import model_from_config
from csc_jax.training import loop, metric_log


def train_and_evaluate(
    config, workdir: str, *, allow_config_change: tuple[str, ...] = (), timings: dict | None = None
):
    """Train (or resume) with the validation EER, plot the curves, then evaluate.

    ``timings`` (optional) receives 'train_seconds' and 'eval_seconds' (wall time).
    Returns the protocol's results dict (process 0 with ``train.eval_at_end``), else None.
    """
    timings = {} if timings is None else timings
    t0 = time.time()
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
    timings["train_seconds"] = time.time() - t0
    timings["eval_seconds"] = 0.0
    if jax.process_index() != 0:
        return None
    metric_log.plot_training_curves(workdir)
    report_convergence(workdir)
    if not config.train.eval_at_end:
        return None
    t1 = time.time()
    results = verification.evaluate_workdir(config, workdir, model=model, params=state.params)
    timings["eval_seconds"] = time.time() - t1
    return results


CONVERGENCE_FILE = "convergence.json"


def report_convergence(workdir: str, log=print) -> dict:
    """The plateau test (:func:`csc_jax.metrics.plateau`) on each validation curve of the run.

    Writes ``<workdir>/convergence.json`` ({curve: {'flat', 'slope_per_1k', 'ci', 'points',
    'steps', 'values'}}) and prints one line per curve, e.g. ``validation val/eer_clean: flat
    (slope -0.8 [-3.1, 1.5] points per 1k steps over the last 6 of 11 points)``. Returns the
    dict ({} when the run has no validation curve).
    """
    rows = metric_log.read_metrics(workdir)
    out = {}
    for key in sorted({k for r in rows for k in r if k.startswith("val/eer")}):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        steps, values = [s for s, _ in pts], [v for _, v in pts]
        p = metrics.plateau(steps, values)
        out[key] = {**p, "ci": list(p["ci"]), "steps": steps, "values": values}
        if p["points"] < 3:
            verdict = f"too few points for the plateau test ({len(pts)} in all)"
        else:
            lo, hi = p["ci"]
            # 'flat' means no further decrease is detectable; a curve whose slope is surely
            # positive has stopped improving too, but is getting worse, and says so.
            state = "rising" if lo > 0 else "flat" if p["flat"] else "still falling"
            verdict = (
                f"{state} (slope {p['slope_per_1k']:+.1f} "
                f"[{lo:+.1f}, {hi:+.1f}] points per 1k steps over the last {p['points']} of "
                f"{len(pts)} points)"
            )
        log(f"validation {key}: {verdict}")
    if out:
        io_utils.atomic_write_json(os.path.join(workdir, CONVERGENCE_FILE), out)
    return out
