"""The training loop: ``train_and_evaluate(config, workdir)``.

Resumable: rerunning with the same workdir restores the latest complete checkpoint (params,
optimizer, step, RNG, data-iterator state) and continues; on CPU the result is bitwise equal
to an uninterrupted run. SIGTERM/SIGINT finish the current step, save, and exit with
``PREEMPTED_EXIT_CODE``. Non-finite loss/gradients stop the run (last good checkpoint kept) or,
with ``train.skip_nonfinite_updates``, are skipped and counted.
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

    def __init__(self, step: int, workdir: str):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.message = (
            f"preempted at step {step}: checkpoint saved in {workdir}; "
            "rerun the same command to resume"
        )


class NonFiniteError(RuntimeError):
    """The loss or gradient norm became NaN/Inf."""


def segment_samples(config) -> int:
    return int(round(config.data.segment_seconds * config.data.sample_rate))


def _save_or_check_config(config, workdir: str, allow: tuple[str, ...]) -> None:
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diffs = config_lib.incompatible_keys(saved, config, allow)
        if diffs:
            raise config_lib.ConfigError(
                f"--workdir {workdir} holds a run with a different config ({path}):\n  "
                + "\n  ".join(diffs)
                + "\nUse a new --workdir, or pass --allow_config_change=KEY[,KEY] for changes "
                "you know are safe."
            )
    if jax.process_index() == 0:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(config.to_dict(), f, indent=2, sort_keys=True)
        os.replace(tmp, path)


class _StopFlag:
    """Records SIGTERM/SIGINT so the loop can stop at a step boundary."""

    def __init__(self):
        self.signal = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(config, workdir: str, *, allow_config_change: tuple[str, ...] = (), devices=None):
    """Train (or resume) and return (model, single-copy final state).

    Args:
      config: experiment ConfigDict (validated here before anything compiles).
      workdir: run directory (config.json, checkpoints/, metrics.jsonl, tensorboard/).
      allow_config_change: keys that may differ from the workdir's saved config.
      devices: devices to train on (default all).
    """
    devices = list(jax.devices() if devices is None else devices)
    config_lib.validate_config(config, num_devices=len(devices))
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        raise config_lib.ConfigError(f"cannot create --workdir {workdir}: {e.strerror}") from e
    if not os.access(workdir, os.W_OK):
        raise config_lib.ConfigError(f"--workdir {workdir} is not writable")
    _save_or_check_config(config, workdir, allow_config_change)
    ckpt = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints)

    model = model_from_config(config)
    tx = make_optimizer(config)
    dp = DataParallel(config.parallel, model, tx, config, devices=devices)
    seg = segment_samples(config)
    k = config.mixing.num_conditions

    source = sources.make_source(config, "train")
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
        print(f"resumed from step {start} ({ckpt.directory})", flush=True)

    writer = logging_utils.MetricWriter(workdir, enabled=jax.process_index() == 0)
    steps = config.train.steps
    bar = logging_utils.progress(start, steps, enabled=config.train.progress_bar)
    pending: list[tuple[int, dict]] = []
    last_finite: dict | None = None
    t_last, step_last = time.time(), start
    crop_seconds = config.data.batch_size * k * config.data.segment_seconds

    def flush(step_now: int) -> None:
        nonlocal last_finite, t_last, step_last
        if not pending:
            return
        host = [(s, dp.metrics_to_host(m)) for s, m in pending]
        pending.clear()
        for s, m in host:
            if not config.train.skip_nonfinite_updates and not (
                math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])
            ):
                raise NonFiniteError(
                    f"non-finite loss or gradient at step {s} (loss={m['loss']}, "
                    f"grad_norm={m['grad_norm']}); last finite metrics: {last_finite}; last "
                    f"good checkpoint: step {ckpt.latest_step()} in {ckpt.directory}"
                )
            last_finite = m
        elapsed = time.time() - t_last
        rate = (step_now - step_last) / elapsed if elapsed > 0 else float("nan")
        s, m = host[-1]
        m = dict(m, steps_per_sec=rate, audio_sec_per_sec=rate * crop_seconds)
        writer.write(s, m)
        bar.set_postfix(logging_utils.short(m))
        t_last, step_last = time.time(), step_now

    step = start
    try:
        with _StopFlag() as stop, jax.transfer_guard("disallow"):
            while step < steps:
                batch = next(iterator)
                if step == config.train.debug_nan_step:
                    batch = dict(batch, target=batch["target"] * np.float32("nan"))
                state, metrics = dp.step(state, dp.put_batch(batch))
                step += 1
                pending.append((step, metrics))
                bar.update(1)
                stopping = stop.signal is not None
                if step % config.train.log_every == 0 or step == steps or stopping:
                    flush(step)
                if step % config.train.checkpoint_every == 0 or step == steps or stopping:
                    flush(step)
                    ckpt.save(step, dp.single(state), iterator)
                if stopping:
                    ckpt.wait()
                    raise Preempted(step, workdir)
    finally:
        bar.close()
        writer.close()
        ckpt.wait()
        ckpt.close()
        if hasattr(iterator, "close"):
            iterator.close()
    return model, dp.single(state)


def train_and_evaluate(config, workdir: str, *, allow_config_change: tuple[str, ...] = ()):
    """Train, then run the verification protocol on the final state (writes <workdir>/eval)."""
    model, state = train(config, workdir, allow_config_change=allow_config_change)
    if jax.process_index() == 0:
        logging_utils.plot_training_curves(workdir)
    if config.train.eval_at_end and jax.process_index() == 0:
        from csc_jax.evaluation import verification

        return verification.evaluate_workdir(config, workdir, model=model, params=state.params)
    return None
