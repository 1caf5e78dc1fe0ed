"""Subprocess worker (and helpers) for the scale-out and resilience tests.

Multi-device tests need ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX is
imported, and multi-process tests need one process per ``jax.distributed`` member, so they
run this script in fresh interpreters::

    python tests/_train_worker.py SPEC_JSON

SPEC: {"cache_dir": str, "out": str (prefix of the files written),
       "distributed": {"coordinator": "127.0.0.1:PORT", "num_processes": 2, "process_id": i}
                      (optional),
       "jobs": [JOB, ...]}
JOB kinds (all use tests/conftest.py's tiny config plus "overrides"; "num_devices" = use the
first N devices, default all):
  {"kind": "train", "name", "workdir", "overrides", "num_devices"}
      -> ``<out>.<name>.p<i>.npz`` with the final params; result: final step, shards read.
  {"kind": "restore", "name", "workdir", "overrides", "num_devices"}
      -> restores the workdir's latest checkpoint replicated onto a mesh of the first
         num_devices devices; params to ``<out>.<name>.p<i>.npz``; result: step, devices.
  {"kind": "expect_error", ...same as train}
      -> result: the exception's type and message, and how many XLA compilations ran.
  Any train job may add "fail_writes_after_step": k: once the checkpoint of step k is
  committed, the process's file-size limit (RLIMIT_FSIZE) drops to 16 KiB, so every later
  checkpoint write genuinely fails in the OS (EFBIG) -- also for root, unlike permissions.
Every process writes its results (one dict per job name) to ``<out>.p<i>.json``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

_TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(_TESTS)
WRITE_LIMIT_BYTES = 16 * 1024
if __name__ == "__main__":
    sys.path[:0] = [REPO, _TESTS]  # csc_jax and conftest


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def tiny_cli_flags(cache_dir, **overrides) -> list[str]:
    """``--config.KEY=VALUE`` flags that turn configs/default.py into conftest's tiny config."""
    from conftest import make_tiny_config

    from csc_jax.config import load_config_file

    base = _flat(load_config_file(os.path.join(REPO, "configs", "default.py")).to_dict())
    tiny = _flat(make_tiny_config(cache_dir, **overrides).to_dict())
    return [f"--config.{k}={v}" for k, v in sorted(tiny.items()) if base.get(k) != v]


# LLVM code generation dominates the tiny model's compile time (3-4x); these flags shorten it
# without touching the HLO-level program (partitioning, collectives, fusion decisions) that
# the scale-out tests compare, and every run compared with another uses the same flags.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def subprocess_env(compile_cache=None, devices: int | None = None, fast_compile=True) -> dict:
    """Environment for a child JAX process: CPU, optional simulated devices and compile cache.

    ``fast_compile`` (the default, as for the test processes themselves, tests/conftest.py):
    the FAST_COMPILE_FLAGS; ``False`` for a child whose run time, not compile time, counts.

    The persistent compilation cache lets later processes load the executables an earlier
    one compiled (identical binaries); it only saves time.
    """
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    flags = [f"--xla_force_host_platform_device_count={devices}"] if devices else []
    flags += [FAST_COMPILE_FLAGS] if fast_compile else []
    env.pop("XLA_FLAGS", None)
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    if compile_cache:
        env["JAX_COMPILATION_CACHE_DIR"] = str(compile_cache)
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def worker_command(spec: dict) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), json.dumps(spec)]


def run_worker(spec: dict, env: dict, timeout: float):
    """Run this script on ``spec`` in a fresh interpreter; returns the CompletedProcess."""
    import subprocess

    return subprocess.run(
        worker_command(spec), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


# Parameter agreement between parallel layouts (tests/test_parallel.py explains the numbers).
# Adam divides by sqrt(v): for parameters whose gradient is tiny, the different summation
# order of the gradient all-reduce is amplified (measured up to 1.7e-5 on a kernel entry
# after 3 steps at lr 3e-3, i.e. 0.2% of the largest possible Adam displacement lr * steps).
# So parameters must agree to 1% of lr * steps: a real layout bug (a missing gradient mean,
# different mixing) moves parameters by a whole Adam step, 100x more.
RTOL = 1e-5
ADAM_FRACTION = 0.01
# A key bias adds one constant to all of a query's attention logits, which softmax cancels:
# its true gradient is zero, and Adam turns the rounding noise into updates of up to ~lr.
NOISE_ONLY = ("attention/key/bias",)


def assert_params_match(a: dict, b: dict, lr: float, steps: int, what: str) -> None:
    """Equal to RTOL / ADAM_FRACTION * lr * steps, NOISE_ONLY leaves within Adam's step bound."""
    assert a.keys() == b.keys()
    atol = ADAM_FRACTION * lr * steps
    for key in a:
        if key in NOISE_ONLY:
            bound = 2 * lr * steps  # loose: a bias-corrected Adam step is ~lr in size
            assert np.max(np.abs(a[key] - b[key])) <= bound, f"{what}: {key}"
        else:
            np.testing.assert_allclose(
                a[key], b[key], rtol=RTOL, atol=atol, err_msg=f"{what}: {key}"
            )


class _NaNAtStep:
    """A training iterator whose ``step``-th batch (1-based) is multiplied by NaN; its state
    is the wrapped iterator's (as JSON bytes, grain's checkpoint form for iterators other than
    its own), so checkpoints and resumes are unchanged."""

    def __init__(self, iterator, step: int):
        self._it, self._step, self._count = iterator, step, 0

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._it)
        self._count += 1
        if self._count == self._step:
            batch = dict(batch, target=batch["target"] * np.float32("nan"))
        return batch

    def get_state(self) -> bytes:
        return json.dumps(self._it.get_state(), indent=4).encode()

    def set_state(self, state: bytes) -> None:
        self._it.set_state(json.loads(state))

    def start_prefetch(self) -> None:
        self._it.start_prefetch()

    def close(self):
        if hasattr(self._it, "close"):
            self._it.close()


def inject_nan_at_step(step: int, patch=None) -> None:
    """Make the training loop's ``step``-th batch (counted from where it starts) NaN.

    ``patch`` is a pytest MonkeyPatch (undone by the test) or None (this process only).
    """
    from csc_jax.data import pipeline

    real = pipeline.make_train_iterator

    def make(source, **kwargs):
        return _NaNAtStep(real(source, **kwargs), step)

    if patch is None:
        pipeline.make_train_iterator = make
    else:
        patch.setattr(pipeline, "make_train_iterator", make)


def _limit_writes_after(step_limit: int) -> None:
    """Make checkpoint writes after ``step_limit`` fail in the OS (see the module docstring)."""
    import resource
    import signal

    from csc_jax.training import checkpointing

    real_save = checkpointing.Checkpointer.save

    def save(self, step, *args, **kwargs):
        if step > step_limit:
            self.wait()  # the earlier checkpoint must be committed first: it must survive
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.setrlimit(resource.RLIMIT_FSIZE, (WRITE_LIMIT_BYTES, hard))
        return real_save(self, step, *args, **kwargs)

    checkpointing.Checkpointer.save = save


def _flat_params(params) -> dict:
    """{'path/to/leaf': np.ndarray} from one addressable copy of a replicated pytree."""
    import jax

    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        key = "/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        out[key] = np.asarray(jax.device_get(leaf.addressable_data(0)))
    return out


def _restore(config, workdir: str, devices) -> tuple[int, object]:
    """Latest checkpoint of ``workdir`` restored replicated over ``devices``."""
    from csc_jax.training import checkpointing, setup

    program = setup.build(config, devices=devices, with_data=False)
    ckpt = checkpointing.Checkpointer(workdir, async_save=False)
    try:
        restored = checkpointing.restore_state(
            ckpt, config, program.model, program.tx, program.dp.replicated
        )
    finally:
        ckpt.close()
    return restored.step, restored.state


def _run_job(job: dict, spec: dict, shards_used: list) -> dict:
    import jax
    from conftest import make_tiny_config

    from csc_jax.training import loop

    config = make_tiny_config(spec["cache_dir"], **job.get("overrides", {}))
    n = job.get("num_devices") or len(jax.devices())
    devices = jax.devices()[:n]
    out = f"{spec['out']}.{job['name']}.p{jax.process_index()}.npz"
    res = {"num_devices": n, "process_count": jax.process_count()}
    if job["kind"] == "restore":
        step, state = _restore(config, job["workdir"], devices)
        leaf = jax.tree.leaves(state.params)[0]
        res.update(
            step=int(step),
            restored_devices=len(leaf.sharding.device_set),
            fully_replicated=bool(leaf.sharding.is_fully_replicated),
        )
        np.savez(out, **_flat_params(state.params))
        return res

    if "fail_writes_after_step" in job:
        _limit_writes_after(job["fail_writes_after_step"])
    compiles = []

    def listener(event, *args, **kwargs):
        compiles.append(event)

    shards_used.clear()
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        _, state = loop.train(config, job["workdir"], devices=devices)
    except Exception as e:
        if job["kind"] != "expect_error":
            raise
        res.update(error_type=type(e).__name__, error=str(e))
    else:
        res.update(error_type=None, error=None, step=int(jax.device_get(state.step)))
        np.savez(out, **_flat_params(state.params))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    res["shards_used"] = list(shards_used)
    res["backend_compiles"] = sum(e.endswith("backend_compile_duration") for e in compiles)
    return res


def main() -> None:
    spec = json.loads(sys.argv[1])
    dist = spec.get("distributed")
    if dist:
        from csc_jax.training import distributed

        distributed.initialize(
            dist["coordinator"],
            dist["num_processes"],
            dist["process_id"],
            initialization_timeout=60,
        )
    import jax

    from csc_jax.data import pipeline

    # Record which data shard this process reads (the loop must pass its process index).
    shards_used = []
    real_make = pipeline.make_train_iterator

    def recording_make(source, **kwargs):
        shards_used.append((kwargs["shard_index"], kwargs["shard_count"]))
        return real_make(source, **kwargs)

    pipeline.make_train_iterator = recording_make
    results = {job["name"]: _run_job(job, spec, shards_used) for job in spec["jobs"]}
    with open(f"{spec['out']}.p{jax.process_index()}.json", "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # do not hang in jax.distributed shutdown when a peer is gone
