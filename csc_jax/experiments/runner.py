"""Train and evaluate every (variant, seed) of a comparison, resumably.

Each run goes to ``<workdir_root>/<variant>-s<seed>`` and is exactly one
``python train.py --config <base> --workdir <dir> <overrides>`` (train with the validation
EER, then the verification protocol). A run whose workdir holds a finished evaluation of the
same config (the marker ``RESULTS_MARKER`` plus ``eval/results.json`` and ``eval/scores.npz``)
is not run again; an interrupted run resumes from its newest checkpoint.

Equal wall time. A variant with ``match_time_of`` trains as long as the variant it matches:
its steps are ``round(steps * rate_self / rate_other, -1)`` with each rate the median of the
logged steady-state ``steps_per_sec`` of the equal-step runs of the same seed (the matched
variant's, and this method's own equal-step run, e.g. simclr for simclr-time). The chosen
step count is stored in the run's config and printed in its command, so the run can be
repeated exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import time
from collections.abc import Callable, Sequence

import numpy as np

from csc_jax import config as config_lib
from csc_jax.experiments.variants import Variant, run_config
from csc_jax.io_utils import atomic_write_json

RESULTS_MARKER = "results_run.json"  # written into a run's workdir after its evaluation
# Keys that cannot change a run's numbers (ignored when deciding whether a run is finished).
_IGNORED_KEYS = ("train.progress_bar",)


@dataclasses.dataclass
class RunRecord:
    """One finished (variant, seed) run."""

    variant: str
    seed: int
    workdir: str
    config: dict
    results: dict  # results.json's 'results': {system: {condition: {eer, eer_ci, ...}}}
    train_seconds: float
    eval_seconds: float
    status: str  # 'ran' (from scratch), 'resumed' (from a checkpoint) or 'skipped' (done before)
    command: str = ""

    @property
    def total_seconds(self) -> float:
        return self.train_seconds + self.eval_seconds

    @property
    def system(self) -> str:
        """The trained system's row name in results.json ('csc' or 'simclr')."""
        return self.config["method"]


def _flat_json(config) -> dict:
    """Flattened, JSON-normalised (tuples -> lists) config without the ignored keys."""
    flat = config_lib.flatten(json.loads(json.dumps(config_lib.flatten(config))))
    return {k: v for k, v in flat.items() if k not in _IGNORED_KEYS}


def override_args(config, base_config) -> list[str]:
    """``--config.KEY=VALUE`` arguments that turn ``base_config`` into ``config``."""
    new, old = _flat_json(config), _flat_json(base_config)
    args = []
    for key in sorted(new):
        if new[key] == old.get(key):
            continue
        value = new[key]
        text = f"({', '.join(map(str, value))},)" if isinstance(value, list) else str(value)
        args.append(shlex.quote(f"--config.{key}={text}"))
    return args


def finished_run(workdir: str, config) -> dict | None:
    """The marker of a finished evaluation of ``config`` in ``workdir``, else None."""
    marker = os.path.join(workdir, RESULTS_MARKER)
    needed = [marker] + [os.path.join(workdir, "eval", f) for f in ("results.json", "scores.npz")]
    if not all(os.path.isfile(p) for p in needed):
        return None
    try:
        with open(marker) as f:
            done = json.load(f)
    except (OSError, ValueError):
        return None
    saved = _flat_json(config_lib.flat_with_defaults(done.get("config", {})))
    return done if saved == _flat_json(config) else None


def read_results(workdir: str) -> dict:
    with open(os.path.join(workdir, "eval", "results.json")) as f:
        return json.load(f)["results"]


def steady_step_rate(workdir: str) -> float:
    """Median logged steps/s of a run, leaving out the first logged row (compilation)."""
    from csc_jax.training.metric_log import read_metrics

    rates = [r["steps_per_sec"] for r in read_metrics(workdir) if "steps_per_sec" in r]
    rates = [r for r in rates[1:] if np.isfinite(r) and r > 0]
    if not rates:
        raise ValueError(f"{workdir}: no steady-state steps_per_sec in metrics.jsonl")
    return float(np.median(rates))


def run_one(
    config, workdir: str, variant: str, command: str = "", log: Callable = print
) -> RunRecord:
    """Train (or resume) and evaluate one run; skip it if ``workdir`` already finished it."""
    from csc_jax.train_eval import train_and_evaluate
    from csc_jax.training import checkpointing

    done = finished_run(workdir, config)
    if done is not None:
        log(f"[results] {variant} seed {config.seed}: finished before, skipped ({workdir})")
        return RunRecord(
            variant, int(config.seed), workdir, done["config"], read_results(workdir),
            float(done["train_seconds"]), float(done["eval_seconds"]), "skipped", command,
        )  # fmt: skip
    marker = os.path.join(workdir, RESULTS_MARKER)
    if os.path.exists(marker):  # a stale marker of another config must not survive a crash
        os.remove(marker)
    resumed_from = max(checkpointing.complete_steps(workdir), default=None)
    log(
        f"[results] {variant} seed {config.seed}: training {config.train.steps} steps in "
        f"{workdir}" + (f" (resuming from step {resumed_from})" if resumed_from else "")
    )
    timings: dict = {}
    train_and_evaluate(config, workdir, timings=timings)
    record = RunRecord(
        variant, int(config.seed), workdir, json.loads(json.dumps(config.to_dict())),
        read_results(workdir), timings["train_seconds"], timings["eval_seconds"],
        "resumed" if resumed_from else "ran", command,
    )  # fmt: skip
    atomic_write_json(
        marker,
        {
            "config": record.config,
            "train_seconds": record.train_seconds,
            "eval_seconds": record.eval_seconds,
            "resumed_from_step": resumed_from,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    log(
        f"[results] {variant} seed {config.seed}: train {record.train_seconds:.0f} s, "
        f"eval {record.eval_seconds:.0f} s"
    )
    return record


def plan(variants: Sequence[Variant], seeds: Sequence[int]) -> list[tuple[Variant, int]]:
    """(variant, seed) pairs, seed-major (every variant gets its first seed early), with each
    time-matched variant after the runs it is matched to."""
    timed = [v for v in variants if v.match_time_of]
    plain = [v for v in variants if not v.match_time_of]
    return [(v, s) for s in sorted(set(seeds)) for v in plain + timed]


def matched_steps(variant: Variant, seed: int, steps: int, workdir_of, method_run: str) -> int:
    """Steps for a time-matched run (see the module docstring), a multiple of 10 (>= 10)."""
    other = steady_step_rate(workdir_of(variant.match_time_of, seed))
    own = steady_step_rate(workdir_of(method_run, seed))
    return max(10, int(round(steps * own / other, -1)))


def run_results(
    base_config,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    steps: int,
    workdir_root: str,
    *,
    config_label: str,
    log: Callable = print,
) -> list[RunRecord]:
    """Train and evaluate every (variant, seed); returns one RunRecord per run, in order.

    A time-matched variant (``match_time_of``) needs, for the same seed, the run it matches
    and an equal-step run of its own method (a variant with the same overrides and no
    ``match_time_of``) in ``variants``.
    """
    by_name = {v.name: v for v in variants}

    def workdir_of(name: str, seed: int) -> str:
        return os.path.join(workdir_root, f"{name}-s{seed}")

    records = []
    for variant, seed in plan(variants, seeds):
        run_steps = steps
        if variant.match_time_of:
            same = [
                v.name
                for v in variants
                if not v.match_time_of and dict(v.overrides) == dict(variant.overrides)
            ]
            if variant.match_time_of not in by_name or not same:
                raise config_lib.ConfigError(
                    f"variant {variant.name} matches the wall time of {variant.match_time_of}: "
                    f"run it together with {variant.match_time_of} and an equal-step run of "
                    "the same method"
                )
            run_steps = matched_steps(variant, seed, steps, workdir_of, same[0])
        config = run_config(base_config, variant, seed, run_steps)
        workdir = workdir_of(variant.name, seed)
        cmd = " ".join(
            ["python train.py", f"--config {config_label}", f"--workdir {workdir}"]
            + override_args(config, base_config)
        )
        records.append(run_one(config, workdir, variant.name, cmd, log))
    return records
