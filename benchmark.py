"""Throughput benchmark: python benchmark.py --config configs/benchmark.py [--out bench.json]

Measures the CSC train step (compile time, step time, examples/s, audio s/s, FLOPs, memory)
on device-resident synthetic batches and with the real input pipeline, the input pipeline
alone, and the Conv-TasNet separation backbone (optionally against PyTorch/asteroid). All
logic is in csc_jax/benchmarking.py; flags given here override the preset's ``bench`` fields.
"""

import dataclasses
import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/benchmark.py", "Benchmark preset (configs/benchmark.py)."
)
_MODE = flags.DEFINE_string(
    "mode", None, "train | pipeline | backbone | losses | all (or a comma list)."
)
_PARALLEL = flags.DEFINE_list("parallel", None, "Parallel modes: sharding,pmap.")
_DTYPE = flags.DEFINE_list("dtype", None, "Compute dtypes: float32,bfloat16.")
_BATCH = flags.DEFINE_list("batch_sizes", None, "Global batch sizes B of the train step.")
_SEGMENT = flags.DEFINE_list("segment_seconds", None, "Crop lengths (s) of the train step.")
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
    "breakdown of XLA op time.",
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
        raise app.UsageError(f"--cpus={','.join(_CPUS.value)}: {e} (usable cores: {have})") from e
    return len(cpus)


def _pick(flag, preset):
    return preset if flag.value is None else flag.value


def settings_from(config, pinned_cores=None):
    """BenchSettings from the preset and the command-line flags (flags win)."""
    from csc_jax import benchmarking

    b = config.bench
    mode = _pick(_MODE, b.mode)
    modes = [m.strip() for m in mode.split(",") if m.strip()]
    if "all" in modes:
        modes = list(benchmarking.MODES)
    names = _pick(_BACKBONE, list(b.backbone))
    shapes = []
    for name in names:
        if name not in config.backbone:
            raise app.UsageError(
                f"backbone shapes {name!r} are not in the preset (have: "
                f"{', '.join(config.backbone.keys())})"
            )
        base = (
            benchmarking.backbone_shapes_from_experiment(config.experiment, name)
            if name == "demo"
            else None
        )
        fields = dict(config.backbone[name].to_dict())
        if base is not None:
            shapes.append(dataclasses.replace(base, **fields))
        else:
            shapes.append(benchmarking.BackboneShapes(name=name, **fields))
    return benchmarking.BenchSettings(
        modes=tuple(modes),
        parallel=tuple(_pick(_PARALLEL, list(b.parallel))),
        dtypes=tuple(_pick(_DTYPE, list(b.dtype))),
        batch_sizes=tuple(int(x) for x in _pick(_BATCH, list(b.batch_sizes))),
        segment_seconds=tuple(float(x) for x in _pick(_SEGMENT, list(b.segment_seconds))),
        steps=int(_pick(_STEPS, b.steps)),
        warmup=int(_pick(_WARMUP, b.warmup)),
        pipeline_batches=int(b.pipeline_batches),
        backbone=tuple(shapes),
        pytorch_python=_pick(_TORCH, b.pytorch_python),
        pytorch_rounds=int(_pick(_ROUNDS, b.pytorch_rounds)),
        pytorch_threads=int(pinned_cores or b.pytorch_threads),
        profile_dir=_pick(_PROFILE, b.profile_dir),
        profile_steps=int(b.profile_steps),
        loss_shape=tuple(int(x) for x in b.loss_shape),
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    pinned = _pin_cpus()  # before JAX sizes its thread pool
    from csc_jax import benchmarking

    config = _CONFIG.value
    settings = settings_from(config, pinned)
    try:
        settings.validate()
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    report = benchmarking.run(config.experiment, settings)
    benchmarking.write_report(report, _OUT.value)
    print()
    print(benchmarking.markdown(report))
    print(f"\nJSON report: {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
