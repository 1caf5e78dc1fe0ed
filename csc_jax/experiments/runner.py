"""Train and evaluate every (variant, seed) of a comparison, resumably.

Each run goes to ``<workdir_root>/<variant>-s<seed>`` and is exactly one
``python train.py --config <base> --workdir <dir> <overrides>`` (train with the validation
EER, then the verification protocol). A run whose workdir holds a finished evaluation of the
same config (the marker ``RESULTS_MARKER`` plus ``eval/results.json`` and ``eval/scores.npz``)
is not run again; an interrupted run resumes from its newest checkpoint.

Equal wall time. A variant with ``match_time_of`` trains as long as the variant it matches: its
steps are ``round(steps * t_other / t_self, -1)``, with t the seconds per train step of the
matched variant (e.g. csc) and of the time-matched variant's own config (e.g. simclr-time, the
same step as simclr's). Both are measured in this process by :func:`measure_step_times`: the
two steps compiled side by side and timed in alternating rounds, once, before the first time-
matched run, so that load on the machine hits both alike. (The steps/s the runs log are not
used: a run that trained while something else ran logged half its idle rate, which gave the
matched variant about twice its fair time.) The measurement is written to ``STEP_TIMES_FILE``
in the workdir root and reused by every seed and every rerun of the same configs; the chosen
step count is stored in the run's config and printed in its command, so the run can be repeated
exactly.
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
STEP_TIMES_FILE = "step_times.json"  # in the workdir root: the equal-time measurement
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


def measure_step_times(
    configs: dict, *, rounds: int = 3, steps: int = 5, warmup: int = 2
) -> dict[str, dict]:
    """Seconds per train step of each config, compiled side by side, timed alternately.

    Args:
      configs: {name: complete experiment config}.
      rounds: alternating rounds (every config once per round); steps: timed steps per round
        (after one untimed step); warmup: untimed steps after compilation.

    Returns:
      {name: {'seconds_per_step': median over rounds of each round's median,
      'per_round': [round medians]}}.
    """
    from csc_jax.benchmarking.train_step import bench_train_step

    timers = {}
    for name, config in configs.items():
        _, timers[name] = bench_train_step(config, steps=1, warmup=warmup, keep_timer=True)
    per_round: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(rounds):
        for name, timer in timers.items():
            per_round[name].append(float(np.median(timer.time(steps, 1))))
    return {
        name: {"seconds_per_step": float(np.median(v)), "per_round": v}
        for name, v in per_round.items()
    }


def matched_steps(steps: int, seconds_per_step_other: float, seconds_per_step_own: float) -> int:
    """Steps for a time-matched run (see the module docstring), a multiple of 10 (>= 10)."""
    return max(10, int(round(steps * seconds_per_step_other / seconds_per_step_own, -1)))


def step_times(configs: dict, workdir_root: str, log: Callable = print) -> dict[str, float]:
    """Seconds per step of each config: from ``STEP_TIMES_FILE`` if it holds a measurement of
    these very configs (seed and steps aside), else measured now (:func:`measure_step_times`)
    and added to the file (which keeps one entry per measured set of configs, so a page with
    several time-matched variants measures each pair once)."""

    def key(config) -> dict:
        return {k: v for k, v in _flat_json(config).items() if k not in ("seed", "train.steps")}

    path = os.path.join(workdir_root, STEP_TIMES_FILE)
    wanted = {name: key(c) for name, c in configs.items()}
    try:
        with open(path) as f:
            saved = json.load(f)
        # One measurement ({'configs', 'times'}) as files written before entries were kept.
        entries = saved["entries"] if "entries" in saved else [saved]
    except (OSError, ValueError, KeyError, TypeError):
        entries = []
    for entry in entries:
        try:
            if all(entry["configs"].get(n) == k for n, k in wanted.items()):
                log(f"[results] equal wall time: step times from {path}")
                return {n: float(entry["times"][n]["seconds_per_step"]) for n in wanted}
        except (KeyError, TypeError, AttributeError):
            continue
    log(f"[results] equal wall time: timing the steps of {', '.join(configs)} side by side")
    times = measure_step_times(configs)
    os.makedirs(workdir_root, exist_ok=True)
    entries = [e for e in entries if isinstance(e, dict)] + [{"configs": wanted, "times": times}]
    atomic_write_json(path, {"entries": entries})
    for name, t in times.items():
        rounds = ", ".join(f"{x:.3f}" for x in t["per_round"])
        log(f"[results]   {name}: {t['seconds_per_step']:.3f} s/step (rounds: {rounds})")
    return {n: t["seconds_per_step"] for n, t in times.items()}


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

    A time-matched variant (``match_time_of``) needs the variant it matches in ``variants``;
    its own step time is measured on its own config, so no equal-step run of it is needed.
    """
    by_name = {v.name: v for v in variants}

    def workdir_of(name: str, seed: int) -> str:
        return os.path.join(workdir_root, f"{name}-s{seed}")

    records = []
    for variant, seed in plan(variants, seeds):
        run_steps = steps
        if variant.match_time_of:
            if variant.match_time_of not in by_name:
                raise config_lib.ConfigError(
                    f"variant {variant.name} matches the wall time of {variant.match_time_of}: "
                    f"run it together with {variant.match_time_of}"
                )
            # Its own step is timed from its own config (no equal-step run of it is needed).
            other, own = variant.match_time_of, variant.name
            times = step_times(
                {n: run_config(base_config, by_name[n], seed, steps) for n in (other, own)},
                workdir_root,
                log,
            )
            run_steps = matched_steps(steps, times[other], times[own])
        config = run_config(base_config, variant, seed, run_steps)
        workdir = workdir_of(variant.name, seed)
        cmd = " ".join(
            ["python train.py", f"--config {config_label}", f"--workdir {workdir}"]
            + override_args(config, base_config)
        )
        records.append(run_one(config, workdir, variant.name, cmd, log))
    return records
