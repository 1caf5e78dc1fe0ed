"""Throughput benchmark: python benchmark.py --config configs/benchmark.py [--out bench.json]

Measures the machine's roofline (matmul FLOP/s, memory bandwidth) and, in the same process,
the CSC train step (compile time, step time, examples/s, audio s/s, FLOPs and their fraction
of the matmul peak, CPU time and page faults, memory) on device-resident synthetic batches and
with the real input pipeline, the input pipeline alone, and the Conv-TasNet separation
backbone (optionally against PyTorch/asteroid). ``--mode=memory`` compiles the train step
without running it and reports XLA's memory estimate and FLOPs over batch sizes, crop lengths
and ``--remat`` settings. All logic is in the csc_jax.benchmarking package; flags given here
override the preset's ``bench`` fields.

Expected errors (invalid settings or config, an unusable --cpus or --out) print one ``error:``
line and exit with status 2 (csc_jax/errors.py); ``--debug`` shows their traceback.
"""

import sys

from csc_jax import allocator

allocator.ensure()  # before JAX starts: re-executes once with the allocator settings

import os  # noqa: E402

from csc_jax import errors  # noqa: E402
from csc_jax.config import check_override_flags, config_file_flag  # noqa: E402
from csc_jax.io_utils import check_output_path  # noqa: E402

_DEBUG = errors.debug_requested(sys.argv)


def _check_experiment_overrides(argv: list[str]) -> None:
    """Name an unknown ``--config.experiment.KEY`` in one line: ml_collections would fail on
    it with a bare traceback while absl parses the flags."""
    prefix = "--config.experiment."
    as_experiment = ["--config." + a[len(prefix) :] for a in argv[1:] if a.startswith(prefix)]
    try:
        check_override_flags([argv[0], *as_experiment])
    except errors.ConfigError as e:
        raise errors.ConfigError(str(e).replace("--config.", prefix, 1)) from None


if errors.run_main(lambda: _check_experiment_overrides(sys.argv), debug=_DEBUG):
    sys.exit(errors.EXIT_INVALID_INPUT)
# A --config file that is not there: one line now (ml_collections would defer it to a
# garbled message once the config is read).
errors.value_or_exit(lambda: config_file_flag(sys.argv), debug=_DEBUG)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "benchmark.py"),
    "Benchmark preset (configs/benchmark.py).",
)
_MODE = flags.DEFINE_string(
    "mode",
    None,
    "roofline | train | pipeline | backbone | losses | all | memory (or a comma list).",
)
_PARALLEL = flags.DEFINE_list("parallel", None, "Parallel modes: sharding,pmap.")
_DTYPE = flags.DEFINE_list("dtype", None, "Compute dtypes: float32,bfloat16.")
_BATCH = flags.DEFINE_list("batch_sizes", None, "Global batch sizes B of the train step.")
_SEGMENT = flags.DEFINE_list("segment_seconds", None, "Crop lengths (s) of the train step.")
_FRONTENDS = flags.DEFINE_list(
    "frontends",
    None,
    "model.frontend values of the train step, measured side by side: waveform,stft "
    "(default: the experiment config's).",
)
_ROUNDS_TRAIN = flags.DEFINE_integer(
    "rounds", None, "Alternating rounds of the train-step sweep (over --frontends)."
)
_STEPS = flags.DEFINE_integer("steps", None, "Timed steps per measurement.")
_WARMUP = flags.DEFINE_integer("warmup", None, "Untimed steps after compilation.")
_BACKBONE = flags.DEFINE_list("backbone", None, "Backbone shapes to measure: paper,demo.")
_TORCH = flags.DEFINE_string(
    "pytorch_python", None, "Python with torch + asteroid for the PyTorch comparison."
)
_ROUNDS = flags.DEFINE_integer("pytorch_rounds", None, "Alternating JAX/PyTorch rounds.")
_CPUS = flags.DEFINE_list(
    "cpus",
    None,
    "Pin this process (and the PyTorch subprocess) to these CPU cores before JAX starts, e.g. "
    "--cpus=0 for a single-core comparison; PyTorch then uses that many threads.",
)
_PROFILE = flags.DEFINE_string(
    "profile_dir",
    None,
    "Write jax.profiler traces of the CSC step and the backbones here and print a per-layer "
    "and per-op-family breakdown of XLA op time.",
)
_MATMUL = flags.DEFINE_list(
    "matmul_sizes", None, "Sizes n of the roofline's (n, n) @ (n, n) probe, e.g. 512,1024."
)
_REMAT = flags.DEFINE_list(
    "remat", None, "model.remat values --mode=memory compiles each step with: none,block,repeat."
)
_OUT = flags.DEFINE_string("out", "runs/benchmark.json", "Where to write the JSON report.")


def _pin_cpus() -> int | None:
    """Apply --cpus (Linux sched_setaffinity); returns the number of cores, or None."""
    if not _CPUS.value:
        return None
    try:
        cpus = {int(x) for x in _CPUS.value}
        os.sched_setaffinity(0, cpus)
    except (ValueError, OSError) as e:
        have = sorted(os.sched_getaffinity(0))
        raise errors.ConfigError(
            f"--cpus={','.join(_CPUS.value)}: {e} (usable cores: {have})"
        ) from None
    return len(cpus)


def _benchmark(argv) -> None:
    if len(argv) > 1:
        raise errors.ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    pinned = _pin_cpus()  # before JAX sizes its thread pool
    from csc_jax import benchmarking

    config = _CONFIG.value
    settings = benchmarking.settings_from_preset(
        config,
        mode=_MODE.value,
        parallel=_PARALLEL.value,
        dtypes=_DTYPE.value,
        batch_sizes=_BATCH.value,
        segment_seconds=_SEGMENT.value,
        frontends=_FRONTENDS.value,
        rounds=_ROUNDS_TRAIN.value,
        steps=_STEPS.value,
        warmup=_WARMUP.value,
        backbone=_BACKBONE.value,
        pytorch_python=_TORCH.value,
        pytorch_rounds=_ROUNDS.value,
        pytorch_threads=pinned,
        profile_dir=_PROFILE.value,
        matmul_sizes=_MATMUL.value,
        remat=_REMAT.value,
    )
    settings.validate()
    # An unusable --out fails now, not after the measurements.
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    check_output_path(_OUT.value, overwrite=True)
    report = benchmarking.run(config.experiment, settings)
    benchmarking.write_report(report, _OUT.value)
    print()
    print(benchmarking.markdown(report))
    print(f"\nJSON report: {_OUT.value}")


def main(argv):
    sys.exit(errors.run_main(lambda: _benchmark(argv), debug=_DEBUG))


if __name__ == "__main__":
    app.run(main, flags_parser=errors.absl_flags_parser)
