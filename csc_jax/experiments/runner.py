"""Train and evaluate every (variant, seed) of a comparison, resumably, into the results store.

Each run trains in ``<workdir_root>/<variant>-s<seed>`` (local disk) and, once evaluated,
leaves a compact record in ``<campaign_dir>/<variant>-s<seed>`` (csc_jax/experiments/store.py),
which pages are built from. A (variant, seed) whose record exists with the same config is not
run again; a record of another config is an error naming the record and the key. ``only``
runs a subset and ``time_budget_minutes`` stops starting runs once the budget is spent, so a
campaign proceeds in pieces, on several machines and days. A run is exactly one
``python train.py --config <base> --workdir <dir> <overrides>`` (train with the validation
EER, then the verification protocol). A run whose workdir holds a finished evaluation of the
same config (the marker ``RESULTS_MARKER`` plus ``eval/results.json`` and ``eval/scores.npz``)
is not trained again (only its record is written); an interrupted run resumes from its newest
checkpoint.

Equal wall time. A variant with ``match_time_of`` trains as long as the variant it matches: its
steps are ``round(steps * t_other / t_self, -1)``, with t the seconds per train step of the
matched variant (e.g. csc) and of the time-matched variant's own config (e.g. simclr-time, the
same step as simclr's). Both are measured in this process by :func:`measure_step_times`: the
two steps compiled side by side and timed in alternating rounds, once, before the first time-
matched run, so that load on the machine hits both alike. (The steps/s the runs log are not
used: a run that trained while something else ran logged half its idle rate, which gave the
matched variant about twice its fair time.) The measurement is written to ``STEP_TIMES_FILE``
in the campaign folder, keyed by the machine (step times only compare on one machine), and
reused by every seed and every rerun of the same configs on that machine; the chosen
step count is stored in the run's config and printed in its command, so the run can be repeated
exactly.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable, Sequence

import numpy as np

from csc_jax import config as config_lib
from csc_jax.experiments import store
from csc_jax.experiments.store import STEP_TIMES_FILE, RunRecord
from csc_jax.experiments.variants import Variant, run_config
from csc_jax.io_utils import atomic_write_json

RESULTS_MARKER = "results_run.json"  # written into a run's workdir after its evaluation
# Keys that cannot change a run's numbers (ignored when deciding whether a run is finished).
_IGNORED_KEYS = ("train.progress_bar",)


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
        text = _config_text(value) if isinstance(value, list) else str(value)
        args.append(shlex.quote(f"--config.{key}={text}"))
    return args


def _config_text(values: list) -> str:
    """A list value as ``--config.KEY=`` parses it back: (), (x,), (a, b)."""
    if len(values) == 1:
        return f"({values[0]},)"
    return f"({', '.join(map(str, values))})"


def record_config_problem(record_dir: str, base_config, variant: Variant, seed: int, steps: int):
    """'' if the record in ``record_dir`` holds this (variant, seed) of ``base_config``, else
    one line naming the record and the first differing key. A time-matched run's steps come
    from its machine's step times, so for it every key but ``train.steps`` must match."""
    ignore = _IGNORED_KEYS + (("train.steps",) if variant.match_time_of else ())
    config = run_config(base_config, variant, seed, steps)
    return store.config_difference(record_dir, _flat_json(config), ignore)


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


def run_one(config, workdir: str, variant: str, log: Callable = print) -> dict:
    """Train (or resume) and evaluate one run in ``workdir``; skip training if the workdir
    already finished it.

    Returns:
      {'train_seconds', 'eval_seconds', 'status' ('ran' | 'resumed'), 'resumed_from_step'}.
    """
    from csc_jax.train_eval import train_and_evaluate
    from csc_jax.training import checkpointing

    done = finished_run(workdir, config)
    if done is not None:
        log(f"[results] {variant} seed {config.seed}: finished before in {workdir}")
        resumed = done.get("resumed_from_step")
        return {
            "train_seconds": float(done["train_seconds"]),
            "eval_seconds": float(done["eval_seconds"]),
            "status": "resumed" if resumed else "ran",
            "resumed_from_step": resumed,
        }
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
    out = {
        "train_seconds": float(timings["train_seconds"]),
        "eval_seconds": float(timings["eval_seconds"]),
        "status": "resumed" if resumed_from else "ran",
        "resumed_from_step": resumed_from,
    }
    atomic_write_json(
        marker,
        {
            "config": json.loads(json.dumps(config.to_dict())),
            "train_seconds": out["train_seconds"],
            "eval_seconds": out["eval_seconds"],
            "resumed_from_step": resumed_from,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
    log(
        f"[results] {variant} seed {config.seed}: train {out['train_seconds']:.0f} s, "
        f"eval {out['eval_seconds']:.0f} s"
    )
    return out


def run_and_record(
    config,
    workdir: str,
    record_dir: str,
    variant: str,
    command: str,
    log: Callable = print,
    commit: dict | None = None,
) -> str:
    """:func:`run_one`, then its record in ``record_dir`` (atomically); returns record_dir.

    ``commit``: :func:`store.git_commit` of the code this process runs, taken when it started
    (default: now, before the run): the tree may change while a run trains.
    """
    commit = commit or store.git_commit()
    done = run_one(config, workdir, variant, log)
    store.write_record(
        record_dir,
        workdir,
        variant=variant,
        seed=int(config.seed),
        config=json.loads(json.dumps(config.to_dict())),
        command=command,
        commit=commit,
        **done,
    )
    log(f"[results] {variant} seed {config.seed}: record {record_dir}")
    return record_dir


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


def this_machine() -> str:
    """This process's machine key (csc_jax/experiments/time_to_accuracy.py machine_key)."""
    from csc_jax.experiments.time_to_accuracy import machine_key
    from csc_jax.io_utils import machine_info

    return machine_key(machine_info())


def step_times(configs: dict, campaign_dir: str, log: Callable = print) -> dict[str, float]:
    """Seconds per step of each config on this machine: from ``STEP_TIMES_FILE`` if it holds a
    measurement of these very configs (seed and steps aside) made on this machine, else
    measured now (:func:`measure_step_times`) and added to the file (one entry per measured
    set of configs and machine, so a page with several time-matched variants measures each
    pair once, and each machine its own)."""

    def key(config) -> dict:
        return {k: v for k, v in _flat_json(config).items() if k not in ("seed", "train.steps")}

    def saved_key(flat: dict) -> dict:
        # Keys added to the schema since the measurement take their defaults (as a saved
        # run's config does), so a new key alone does not force a new measurement that could
        # give later seeds of a time-matched variant other step counts.
        return key(config_lib.flat_with_defaults(flat))

    path = os.path.join(campaign_dir, STEP_TIMES_FILE)
    machine = this_machine()
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
            if entry.get("machine") == machine and all(
                saved_key(entry["configs"][n]) == k for n, k in wanted.items()
            ):
                log(f"[results] equal wall time: step times on {machine} from {path}")
                return {n: float(entry["times"][n]["seconds_per_step"]) for n in wanted}
        except (KeyError, TypeError, AttributeError):
            continue
    log(
        f"[results] equal wall time: timing the steps of {', '.join(configs)} side by side "
        f"on {machine}"
    )
    times = measure_step_times(configs)
    os.makedirs(campaign_dir, exist_ok=True)
    entries = [e for e in entries if isinstance(e, dict)]
    entries.append({"machine": machine, "configs": wanted, "times": times})
    atomic_write_json(path, {"entries": entries})
    for name, t in times.items():
        rounds = ", ".join(f"{x:.3f}" for x in t["per_round"])
        log(f"[results]   {name}: {t['seconds_per_step']:.3f} s/step (rounds: {rounds})")
    return {n: t["seconds_per_step"] for n, t in times.items()}


def parse_only(text: str, variants: Sequence[Variant], seeds: Sequence[int]) -> set:
    """'csc/0,simclr/1' -> {('csc', 0), ('simclr', 1)}; ConfigError on a pair outside the
    campaign's variants and seeds."""
    names = {v.name for v in variants}
    pairs = set()
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, seed = item.rpartition("/")
        try:
            pair = (name, int(seed))
        except ValueError:
            raise config_lib.ConfigError(f"--only {item!r}: expected variant/seed") from None
        if pair[0] not in names or pair[1] not in seeds:
            raise config_lib.ConfigError(
                f"--only {item!r}: not in this campaign (variants {', '.join(sorted(names))}; "
                f"seeds {', '.join(map(str, seeds))})"
            )
        pairs.add(pair)
    if not pairs:
        raise config_lib.ConfigError(f"--only {text!r}: no variant/seed pairs")
    return pairs


def run_results(
    base_config,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    steps: int,
    workdir_root: str,
    *,
    campaign_dir: str,
    config_label: str,
    only: set | None = None,
    time_budget_minutes: float | None = None,
    log: Callable = print,
) -> tuple[list[RunRecord], list[tuple[str, int]]]:
    """Run every (variant, seed) without a record (or those in ``only``), recording each.

    A time-matched variant (``match_time_of``) needs the variant it matches in ``variants``;
    its own step time is measured on its own config, so no equal-step run of it is needed.
    Once ``time_budget_minutes`` have passed no further run starts (the current one finishes).

    Returns:
      (the records of every planned pair that has one, in plan order; the (variant, seed)
      pairs of ``only`` (default: all) still without a record).
    """
    by_name = {v.name: v for v in variants}
    start = time.monotonic()
    # The code every run of this call trains with: the modules are loaded now.
    commit = store.git_commit()
    records, left = [], []
    for variant, seed in plan(variants, seeds):
        record_dir = os.path.join(campaign_dir, store.record_name(variant.name, seed))
        exists = os.path.isfile(os.path.join(record_dir, store.RECORD_FILE))
        if not exists and only is not None and (variant.name, seed) not in only:
            continue
        if variant.match_time_of and variant.match_time_of not in by_name:
            raise config_lib.ConfigError(
                f"variant {variant.name} matches the wall time of {variant.match_time_of}: "
                f"run it together with {variant.match_time_of}"
            )
        if not exists and os.path.exists(record_dir):
            # Not one of ours (a copy cut short, a legacy record): training first and failing
            # at the record's rename would waste the run.
            raise config_lib.ConfigError(
                f"{record_dir} exists but holds no {store.RECORD_FILE}: not a finished "
                "record; move it away to run this pair again"
            )
        if exists:
            problem = record_config_problem(record_dir, base_config, variant, seed, steps)
            if problem:
                raise config_lib.ConfigError(problem)
            log(f"[results] {variant.name} seed {seed}: recorded before ({record_dir})")
            records.append(store.read_record(record_dir))
            continue
        spent = (time.monotonic() - start) / 60.0
        if time_budget_minutes is not None and spent >= time_budget_minutes:
            left.append((variant.name, seed))
            continue
        run_steps = steps
        if variant.match_time_of:
            # Its own step is timed from its own config (no equal-step run of it is needed).
            other, own = variant.match_time_of, variant.name
            times = step_times(
                {n: run_config(base_config, by_name[n], seed, steps) for n in (other, own)},
                campaign_dir,
                log,
            )
            run_steps = matched_steps(steps, times[other], times[own])
        config = run_config(base_config, variant, seed, run_steps)
        workdir = os.path.join(workdir_root, store.record_name(variant.name, seed))
        cmd = " ".join(
            ["python train.py", f"--config {config_label}", f"--workdir {workdir}"]
            + override_args(config, base_config)
        )
        records.append(
            store.read_record(
                run_and_record(config, workdir, record_dir, variant.name, cmd, log, commit)
            )
        )
    if left:
        log(
            f"[results] time budget of {time_budget_minutes:g} min spent: not started "
            f"{', '.join(f'{n}/{s}' for n, s in left)}; rerun the same command to continue"
        )
    return records, left
