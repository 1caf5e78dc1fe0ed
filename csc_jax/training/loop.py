"""The training loop: ``train_and_evaluate(config, workdir)``.

Resumable: rerunning with the same workdir restores the latest complete checkpoint (params,
optimizer, step, RNG, data-iterator state) and continues; on CPU the result is bitwise equal
to an uninterrupted run (tests/test_resilience.py).

Preemption. SIGTERM/SIGINT handlers are installed first thing in :func:`train` (``train.py``
records signals that arrive even earlier, while Python imports JAX, and hands them over), so
a signal at any time -- start-up, compilation or training -- is acted on at the next step
boundary. The loop keeps at most one step queued on the device (it waits for step s while
step s+1 runs), so the step running when the signal arrives and at most one queued step
complete; then the state is saved and :class:`Preempted` (exit status
``PREEMPTED_EXIT_CODE``) is raised. (Before, unbounded asynchronous dispatch let the host run
up to ``log_every`` steps ahead of the device, and the handler was installed only when the
loop began: an early signal killed the run, a later one was honoured up to ~20 steps late.)
A signal that arrives before the checkpoint manager is ready exits at once without saving
(nothing was computed); one during data/model set-up or the state's compilation saves the
initial or restored state at that boundary without compiling the train step. In
multi-process runs the processes agree on the stopping step (a tiny all-gather per step), so
a signal delivered to one host stops all of them at the same step. A second SIGINT aborts.

Non-finite values. Every step's metrics are fetched one step later (the host waits for step
s while step s+1 runs), so a NaN/Inf loss or gradient norm stops the run before any later
checkpoint is written (:class:`NonFiniteError` names the step, the last finite metrics and
the last good checkpoint), or, with ``train.skip_nonfinite_updates``, the update is skipped,
counted (metric ``skipped``) and reported at the end.

The loop runs under ``jax.transfer_guard('disallow')``: every host<->device transfer is an
explicit ``jax.device_put`` (batches) or ``jax.device_get`` (metrics); an accidental implicit
one (a numpy array into a jitted function, ``float()`` of a device array) raises.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time

import jax
import numpy as np

from csc_jax import config as config_lib
from csc_jax.data import pipeline, sources
from csc_jax.models import model_from_config
from csc_jax.training import checkpointing, logging_utils
from csc_jax.training.parallel import DataParallel
from csc_jax.training.state import create_train_state, make_optimizer

PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: "try again later"


class Preempted(SystemExit):
    """Raised after a SIGTERM/SIGINT-triggered save; exits with PREEMPTED_EXIT_CODE."""

    def __init__(self, step: int, workdir: str, signum: int | None = None, saved: bool = True):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.step = step
        name = signal.Signals(signum).name if signum else "stop request"
        where = (
            f"checkpoint saved in {workdir}"
            if saved
            else f"before training started, nothing new to save in {workdir}"
        )
        self.message = (
            f"preempted at step {step} ({name}): {where}; rerun the same command to resume"
        )


class NonFiniteError(RuntimeError):
    """The loss or gradient norm became NaN/Inf."""


def segment_samples(config) -> int:
    return int(round(config.data.segment_seconds * config.data.sample_rate))


def _save_or_check_config(config, workdir: str, allow: tuple[str, ...]) -> None:
    """Refuse a workdir whose saved config differs on watched keys; then (re)write config.json."""
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        try:
            with open(path) as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            raise config_lib.ConfigError(f"cannot read saved config {path}: {e}") from e
        diffs = config_lib.incompatible_keys(saved, config, allow)
        if diffs:
            raise config_lib.ConfigError(
                f"--workdir {workdir} holds a run with a different config ({path}):\n  "
                + "\n  ".join(diffs)
                + "\nUse a new --workdir, or pass --allow_config_change=KEY[,KEY] for changes "
                "you know are safe."
            )
        # Model keys change parameter shapes or meaning: a checkpoint cannot absorb them.
        model_diffs = [
            d
            for d in config_lib.incompatible_keys(saved, config)
            if any(d.startswith(m + ":") or d.startswith(m + ".") for m in config_lib.MODEL_KEYS)
        ]
        ckpt_dir = os.path.join(workdir, "checkpoints")
        has_checkpoints = os.path.isdir(ckpt_dir) and any(n.isdigit() for n in os.listdir(ckpt_dir))
        if model_diffs and has_checkpoints:
            raise config_lib.ConfigError(
                f"--workdir {workdir} has checkpoints of a different model; "
                "--allow_config_change cannot change:\n  " + "\n  ".join(model_diffs)
            )
    if jax.process_index() == 0:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        os.replace(tmp, path)


class _StopFlag:
    """Records SIGTERM/SIGINT so the loop can stop at a step boundary.

    Takes over signals recorded by an earlier start-up handler (``train.py``): such a handler
    is any callable with a ``received`` list of signal numbers and a ``previous`` dict of the
    handlers it replaced, which are the ones restored on exit. A second SIGINT raises
    KeyboardInterrupt (a user pressing Ctrl-C twice wants out now).
    """

    _SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signal: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in self._SIGNALS:
            try:
                old = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals cannot be handled here
                continue
            received = getattr(old, "received", None)
            if received is not None:
                if received and self.signal is None:
                    self.signal = received[0]
                old = old.previous.get(sig, signal.SIG_DFL)
            self._old[sig] = old
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signal is None:
            self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _stop_agreed(local_stop: bool) -> bool:
    """Whether any process was asked to stop (every process must call this at the same step)."""
    if jax.process_count() == 1:
        return local_stop
    from jax.experimental import multihost_utils

    with jax.transfer_guard("allow"):  # a deliberate, tiny host<->device exchange
        flags = multihost_utils.process_allgather(np.int32(local_stop))
    return bool(np.any(flags))


def _check_workdir(workdir: str) -> None:
    """Create ``workdir`` and prove it writable (os.access is meaningless for root)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, f".write_probe.{os.getpid()}.{jax.process_index()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise config_lib.ConfigError(
            f"--workdir {workdir} is not a writable directory: {e.strerror or e} "
            f"({e.filename or workdir})"
        ) from e


def train(config, workdir: str, *, allow_config_change: tuple[str, ...] = (), devices=None):
    """Train (or resume) and return (model, single-copy final state).

    Args:
      config: experiment ConfigDict (validated here before anything compiles).
      workdir: run directory (config.json, checkpoints/, metrics.jsonl, tensorboard/).
      allow_config_change: keys that may differ from the workdir's saved config.
      devices: devices to train on (default all devices of all processes).

    Raises:
      config_lib.ConfigError: invalid config, incompatible or unwritable workdir (before any
        compilation).
      Preempted: after SIGTERM/SIGINT, once the state is saved.
      NonFiniteError: NaN/Inf loss or gradient (unless ``train.skip_nonfinite_updates``).
      checkpointing.CheckpointError: a checkpoint could not be written or read.
    """
    with _StopFlag() as stop:  # first: a signal during start-up stops at the first boundary
        return _train(config, workdir, stop, allow_config_change, devices)


def _train(config, workdir, stop, allow_config_change, devices):
    devices = list(jax.devices() if devices is None else devices)
    config_lib.validate_config(config, num_devices=len(devices))
    num_processes = len({d.process_index for d in devices})
    if config.data.batch_size % num_processes:
        raise config_lib.ConfigError(
            f"data.batch_size={config.data.batch_size}: global batch is not divisible by the "
            f"number of processes ({num_processes})"
        )
    _check_workdir(workdir)
    _save_or_check_config(config, workdir, tuple(allow_config_change))
    ckpt = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints, cleanup_tmp=True)
    if _stop_agreed(stop.signal is not None):
        # Preempted before any work: leave at once (grace periods are short), nothing is lost.
        step = ckpt.latest_step()
        ckpt.close()
        raise Preempted(step or 0, workdir, stop.signal, saved=False)
    iterator = None
    try:
        model = model_from_config(config)
        tx = make_optimizer(config)
        dp = DataParallel(config.parallel, model, tx, config, devices=devices)
        seg = segment_samples(config)
        k = config.mixing.num_conditions

        source = sources.make_source(config, "train")
        if config.train.eval_at_end and config.data.folder.noise_root:
            # A bad noise folder must fail now, not after the whole training run.
            from csc_jax.evaluation.noise import NoiseFolder

            NoiseFolder(config.data.folder.noise_root, int(config.data.sample_rate))
        iterator = pipeline.make_train_iterator(
            source,
            batch_size=config.data.batch_size,
            num_conditions=k,
            segment_samples=seg,
            seed=config.seed,
            shard_index=jax.process_index(),
            shard_count=jax.process_count(),
            num_workers=config.data.num_workers,
        )

        rng = jax.random.PRNGKey(config.seed)
        init_fn = lambda: create_train_state(model, tx, rng, (1, k, seg))  # noqa: E731
        start = ckpt.latest_step()
        if start is None:
            state = dp.init(init_fn)
            start = 0
        else:
            shapes = jax.eval_shape(init_fn)
            abstract = checkpointing.abstract_like(
                shapes, jax.tree.map(lambda _: dp.replicated, shapes)
            )
            start, single = ckpt.restore(abstract, data_iterator=iterator)
            state = dp.place(single)
            if jax.process_index() == 0:
                print(f"resumed from step {start} ({ckpt.directory})", flush=True)
        state = _run(config, workdir, stop, dp, ckpt, iterator, state, start)
    finally:
        try:
            ckpt.wait()
        finally:
            ckpt.close()
            if hasattr(iterator, "close"):
                iterator.close()
    return model, dp.single(state)


def _run(config, workdir, stop, dp, ckpt, iterator, state, start):
    """The step loop (see the module docstring); returns the placed final state."""
    writer = logging_utils.MetricWriter(workdir, enabled=jax.process_index() == 0)
    steps = config.train.steps
    bar = logging_utils.progress(start, steps, enabled=config.train.progress_bar)
    crop_seconds = config.data.batch_size * config.mixing.num_conditions
    crop_seconds *= config.data.segment_seconds
    last_finite: dict | None = None
    last_host: dict | None = None
    in_flight: tuple[int, dict] | None = None  # (step number, device metrics) not yet fetched
    t_last, step_last = time.time(), start
    saved_step = ckpt.latest_step()  # == start when resumed, None on a fresh run

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
            row = dict(m, steps_per_sec=rate, audio_sec_per_sec=rate * crop_seconds)
            writer.write(s, row)
            bar.set_postfix(logging_utils.short(row))
            t_last, step_last = time.time(), s

    step = start
    try:
        with jax.transfer_guard("disallow"):
            while True:
                if _stop_agreed(stop.signal is not None):
                    drain(force_log=True)
                    if saved_step != step:
                        ckpt.save(step, dp.single(state), iterator)
                    ckpt.wait()
                    raise Preempted(step, workdir, stop.signal)
                if step >= steps:
                    break
                batch = next(iterator)
                if step + 1 == config.train.debug_nan_step:  # test hook: 1-based step number
                    batch = dict(batch, target=batch["target"] * np.float32("nan"))
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
            drain()
    finally:
        bar.close()
        writer.close()
    if last_host is not None and last_host.get("skipped", 0) > 0 and jax.process_index() == 0:
        print(
            f"skipped {int(last_host['skipped'])} non-finite update(s) "
            "(train.skip_nonfinite_updates=True; metric 'skipped')",
            flush=True,
        )
    return state


def train_and_evaluate(config, workdir: str, *, allow_config_change: tuple[str, ...] = ()):
    """Train, then run the verification protocol on the final state (writes <workdir>/eval)."""
    model, state = train(config, workdir, allow_config_change=allow_config_change)
    if jax.process_index() == 0:
        logging_utils.plot_training_curves(workdir)
    if config.train.eval_at_end and jax.process_index() == 0:
        from csc_jax.evaluation import verification

        return verification.evaluate_workdir(config, workdir, model=model, params=state.params)
    return None
