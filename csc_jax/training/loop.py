"""The training loop: ``train(config, workdir, evaluators=...)``.

Resumable: rerunning with the same workdir restores the newest checkpoint that restores
(params, optimizer, step, RNG, data-iterator state; a damaged newer one is moved aside,
:mod:`csc_jax.training.checkpointing`) and continues; on CPU the result is bitwise equal to
an uninterrupted run (tests/test_resilience.py). A workdir's saved config.json must match the
run's watched keys (``csc_jax.config.incompatible_keys``), except in a workdir without a
checkpoint: there the new config replaces it, with a notice, and the earlier attempt's files
are moved to ``earlier_attempts/<n>/``.

Evaluators are handed in (the loop never imports csc_jax.evaluation): each has a ``name``,
an ``every`` (steps) and is called as ``evaluator(step, params) -> {metric: float}`` on
process 0 after every ``every``-th step and after the last one; its metrics are written to
metrics.jsonl and TensorBoard with the training metrics. train.py composes training with
the verification protocol (:func:`csc_jax.train_eval.train_and_evaluate`).

Preemption (:mod:`csc_jax.training.preemption`). The SIGTERM/SIGINT handler is installed
first thing in :func:`train`, so a signal at any time (start-up, compilation or training) is
acted on at the next step boundary. The loop keeps at most one step queued on the device (it
waits for step s while step s+1 runs), so the step running when the signal arrives and at
most one queued step complete; then the state is saved and :class:`Preempted` (exit status
75) is raised. A signal before the checkpoint manager is ready exits at once without saving
(nothing was computed); one during set-up saves the initial or restored state at that
boundary without compiling the train step. In multi-process runs the processes agree on the
stopping step, so a signal delivered to one host stops all of them at the same step.

Non-finite values. Every step's metrics are fetched one step later, so a NaN/Inf loss or
gradient norm stops the run before any later checkpoint is written (:class:`NonFiniteError`
names the step, the last finite metrics and the last good checkpoint), or, with
``train.skip_nonfinite_updates``, the update is skipped, counted (metric ``skipped``) and
reported at the end.

The loop runs under ``jax.transfer_guard('disallow')``: every host<->device transfer is an
explicit ``jax.device_put`` (batches) or ``jax.device_get`` (metrics); an accidental implicit
one (a numpy array into a jitted function, ``float()`` of a device array) raises.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

import jax

from csc_jax import allocator
from csc_jax import config as config_lib
from csc_jax.errors import ConfigError, NonFiniteError
from csc_jax.io_utils import atomic_write_json, machine_info
from csc_jax.training import checkpointing, metric_log, setup
from csc_jax.training.preemption import Preempted, StopFlag, stop_agreed

__all__ = ["Evaluator", "NonFiniteError", "Preempted", "train"]


class Evaluator(Protocol):
    """A periodic evaluation handed to :func:`train` (e.g. the validation EER)."""

    name: str
    every: int

    def __call__(self, step: int, params: Any) -> dict[str, float]: ...


# Where a workdir's earlier attempt goes when it stopped before its first checkpoint and a
# run with another config takes the workdir over: <workdir>/earlier_attempts/<n>/.
EARLIER_ATTEMPTS = "earlier_attempts"
_ATTEMPT_FILES = ("config.json", "run_info.json", "metrics.jsonl", "tensorboard")


def _save_or_check_config(config, workdir: str, allow: tuple[str, ...], has_checkpoints) -> None:
    """Refuse a workdir whose saved config differs on watched keys; then (re)write config.json.

    A workdir without a checkpoint has nothing to resume (its run failed or stopped before the
    first save): a new config takes it over, and the earlier attempt's files are moved to
    ``<workdir>/earlier_attempts/<n>/`` with a printed notice naming the changed keys.
    """
    path = os.path.join(workdir, "config.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:  # a new workdir (or another process moved it aside just now)
        saved = None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read saved config {path}: {e}") from e
    if saved is not None:
        diffs = config_lib.incompatible_keys(saved, config, allow)
        if diffs and not has_checkpoints():
            if jax.process_index() == 0:
                moved = _move_earlier_attempt(workdir)
                print(
                    f"notice: --workdir {workdir} holds no checkpoint, so this run replaces "
                    f"its earlier config ({'; '.join(diffs)}); the earlier attempt's files are "
                    f"in {moved}",
                    flush=True,
                )
        elif diffs:
            raise ConfigError(
                f"--workdir {workdir} holds a run with a different config ({path}): "
                + "; ".join(diffs)
                + ". Use a new --workdir, or pass --allow_config_change=KEY[,KEY] for changes "
                "you know are safe."
            )
        # Model keys change parameter shapes or meaning: a checkpoint cannot absorb them.
        model_diffs = config_lib.model_key_changes(saved, config)
        if model_diffs and has_checkpoints():
            raise ConfigError(
                f"--workdir {workdir} has checkpoints of a different model; "
                "--allow_config_change cannot change: " + "; ".join(model_diffs)
            )
    if jax.process_index() == 0:
        atomic_write_json(path, config.to_dict())


def _move_earlier_attempt(workdir: str) -> str:
    """Move the files of a workdir's checkpoint-less earlier attempt to a new
    ``earlier_attempts/<n>`` folder; returns that folder."""
    root = os.path.join(workdir, EARLIER_ATTEMPTS)
    n = 1
    while os.path.exists(os.path.join(root, str(n))):
        n += 1
    dest = os.path.join(root, str(n))
    os.makedirs(dest)
    for name in _ATTEMPT_FILES:
        if os.path.exists(os.path.join(workdir, name)):
            os.replace(os.path.join(workdir, name), os.path.join(dest, name))
    return dest


def _write_run_info(workdir: str) -> None:
    """<workdir>/run_info.json: what this (re)start ran on, including whether the host
    allocator settings are in force (checked through the process's own memory map)."""
    if jax.process_index() != 0:
        return
    info = dict(machine_info(), started=time.strftime("%Y-%m-%d %H:%M:%S"))
    info["allocator_verified"] = allocator.verify()
    atomic_write_json(os.path.join(workdir, "run_info.json"), info)


def _check_workdir(workdir: str) -> None:
    """Create ``workdir`` and prove it writable (os.access is meaningless for root)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_probe.{os.getpid()}.{jax.process_index()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(
            f"--workdir {workdir} is not a writable directory: {e.strerror or e} "
            f"({e.filename or workdir})"
        ) from e


def train(
    config,
    workdir: str,
    *,
    allow_config_change: tuple[str, ...] = (),
    devices=None,
    evaluators: Sequence[Evaluator] = (),
    check_data=None,
):
    """Train (or resume) and return (model, single-copy final state).

    Args:
      config: experiment ConfigDict (validated here before anything compiles).
      workdir: run directory (config.json, checkpoints/, metrics.jsonl, tensorboard/).
      allow_config_change: keys that may differ from the workdir's saved config.
      devices: devices to train on (default all devices of all processes).
      evaluators: periodic evaluations run on process 0 (see the module docstring).
      check_data: called with no argument after the config checks and before anything is
        built or compiled (e.g. the evaluation's own data checks), or None.

    Raises:
      ConfigError: invalid config, incompatible or unwritable workdir (before compilation).
      DataError: unusable training data (before compilation).
      Preempted: after SIGTERM/SIGINT, once the state is saved.
      NonFiniteError: NaN/Inf loss or gradient (unless ``train.skip_nonfinite_updates``).
      CheckpointError: a checkpoint could not be written or read.
    """
    with StopFlag() as stop:  # first: a signal during start-up stops at the first boundary
        return _train(config, workdir, stop, allow_config_change, devices, evaluators, check_data)


def _train(config, workdir, stop, allow_config_change, devices, evaluators, check_data):
    devices = list(jax.devices() if devices is None else devices)
    config_lib.validate_config(config, num_devices=len(devices))
    num_processes = len({d.process_index for d in devices})
    if config.data.batch_size % num_processes:
        raise ConfigError(
            f"data.batch_size={config.data.batch_size}: global batch is not divisible by the "
            f"number of processes ({num_processes})"
        )
    _check_workdir(workdir)
    existing = checkpointing.complete_steps(workdir)
    _save_or_check_config(config, workdir, tuple(allow_config_change), lambda: bool(existing))
    if stop_agreed(stop.signal is not None):
        # Preempted before any work: leave at once (grace periods are short).
        raise Preempted(max(existing, default=0), workdir, stop.signal, saved=False)
    _write_run_info(workdir)
    # Data checks (the evaluation's, then the training source's, built with the program)
    # come before the checkpoint directory exists and before anything compiles.
    if check_data is not None:
        check_data()
    program = setup.build(config, devices=devices)
    ckpt = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints, cleanup_tmp=True)
    try:
        dp = program.dp
        if not ckpt.all_steps():
            state, start = program.init_state(), 0
        else:
            restored = checkpointing.restore_state(
                ckpt, config, program.model, program.tx, dp.replicated,
                data_iterator=program.iterator,
            )  # fmt: skip
            state, start = dp.place(restored.state), restored.step
            if jax.process_index() == 0:
                print(f"resumed from step {start} ({ckpt.directory})", flush=True)
        state = _run(config, workdir, stop, program, ckpt, state, start, evaluators)
    finally:
        try:
            ckpt.wait()
        finally:
            ckpt.close()
            program.close()
    return program.model, program.dp.single(state)


def _local_copy(tree):
    """One addressable copy of a replicated pytree (evaluators run on one local device)."""
    return jax.tree.map(lambda x: x.addressable_data(0), tree)


def _run(config, workdir, stop, program, ckpt, state, start, evaluators):
    """The step loop (see the module docstring); returns the placed final state."""
    dp, iterator = program.dp, program.iterator
    main_process = jax.process_index() == 0
    writer = metric_log.MetricWriter(workdir, enabled=main_process)
    steps = config.train.steps
    bar = metric_log.progress(start, steps, enabled=config.train.progress_bar)
    crop_seconds = config.data.batch_size * config.mixing.num_conditions
    crop_seconds *= config.data.segment_seconds
    last_finite: dict | None = None
    last_host: dict | None = None
    in_flight: tuple[int, dict] | None = None  # (step number, device metrics) not yet fetched
    t_last, step_last = time.time(), start
    saved_step = ckpt.latest_step()  # == start when resumed, None on a fresh run
    # Training wall time (train_seconds in every logged row): since this process's loop
    # started, evaluation left out, continued from the last logged value when resumed.
    t_start, eval_seconds = time.time(), 0.0
    earlier = [
        r.get("train_seconds") for r in metric_log.read_metrics(workdir) if r["step"] <= start
    ]
    train_offset = max([x for x in earlier if x is not None], default=0.0) if start else 0.0

    def train_seconds() -> float:
        return train_offset + time.time() - t_start - eval_seconds

    def drain(force_log: bool = False) -> None:
        """Fetch the queued step's metrics (waits for it), check them, log them."""
        nonlocal in_flight, last_finite, last_host, t_last, step_last
        if in_flight is None:
            return
        s, device_metrics = in_flight
        in_flight = None
        m = dp.metrics_to_host(device_metrics)
        finite = math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])
        if not finite and not config.train.skip_nonfinite_updates:
            raise NonFiniteError(
                f"non-finite loss or gradient at step {s} (loss={m['loss']}, "
                f"grad_norm={m['grad_norm']}); last finite metrics: {last_finite}; last "
                f"good checkpoint: step {ckpt.latest_step()} in {ckpt.directory} (kept; no "
                "later checkpoint was written). Set train.skip_nonfinite_updates=True to skip "
                "such updates instead."
            )
        if finite:
            last_finite = dict(m, step=s)
        last_host = dict(m, step=s)
        if s % config.train.log_every == 0 or s == steps or force_log:
            elapsed = time.time() - t_last
            rate = (s - step_last) / elapsed if elapsed > 0 else float("nan")
            row = dict(
                m,
                steps_per_sec=rate,
                audio_sec_per_sec=rate * crop_seconds,
                train_seconds=train_seconds(),
            )
            writer.write(s, row)
            bar.set_postfix(metric_log.short(row))
            t_last, step_last = time.time(), s

    def evaluate(s: int) -> None:
        """Run the evaluators due at step ``s`` (process 0) and log their metrics; their time
        is left out of the logged training rate (steps_per_sec)."""
        nonlocal t_last, eval_seconds
        due = [e for e in evaluators if s % e.every == 0 or s == steps]
        if not due or not main_process:
            return
        drain()  # the state evaluated must have finite, logged metrics
        t_eval = time.time()
        params = _local_copy(dp.single(state).params)
        row = {"train_seconds": train_seconds()}
        with jax.transfer_guard("allow"):  # evaluators feed host audio to their own programs
            for e in due:
                row.update({f"{e.name}/{k}": v for k, v in e(s, params).items()})
        writer.write(s, row, tensorboard_prefix="")
        bar.set_postfix(metric_log.short(row))
        t_last += time.time() - t_eval
        eval_seconds += time.time() - t_eval

    step = start
    evaluate_untrained = start == 0  # the curve starts at the untrained model
    try:
        with jax.transfer_guard("disallow"):
            while True:
                if stop_agreed(stop.signal is not None):
                    drain(force_log=True)
                    if saved_step != step:
                        ckpt.save(step, dp.single(state), iterator)
                    ckpt.wait()
                    raise Preempted(step, workdir, stop.signal)
                if evaluate_untrained:
                    # After the stop check: a signal during set-up stops without evaluating.
                    evaluate(0)
                    evaluate_untrained = False
                    continue  # a signal during this evaluation stops before the first step
                if step >= steps:
                    break
                batch = next(iterator)
                state, metrics = dp.step(state, dp.put_batch(batch))
                step += 1
                # Waiting for the previous step here keeps at most one step queued, so a
                # signal or a NaN is acted on within a step (unbounded asynchronous dispatch
                # let the host run up to log_every steps ahead of the device).
                drain()
                in_flight = (step, metrics)
                bar.update(1)
                if step % config.train.checkpoint_every == 0 or step == steps:
                    drain()  # never checkpoint a state whose metrics were not checked
                    ckpt.save(step, dp.single(state), iterator)
                    saved_step = step
                evaluate(step)
            drain()
    finally:
        bar.close()
        writer.close()
    if last_host is not None and last_host.get("skipped", 0) > 0 and main_process:
        print(
            f"skipped {int(last_host['skipped'])} non-finite update(s) "
            "(train.skip_nonfinite_updates=True; metric 'skipped')",
            flush=True,
        )
    return state
