"""Benchmark preset: the CPU demo's train step, its input pipeline and the Conv-TasNet backbone.

Command (quick CPU run; every figure goes to --out as JSON, a Markdown table to stdout):

  python benchmark.py --config configs/benchmark.py --out runs/benchmark.json

The GPU experiment (configs/gpu.py: 2 s crops, B=8, a Conv-TasNet-sized trunk) instead of the
CPU demo, and the Conv-TasNet paper's batch of 4:

  python benchmark.py --config=configs/benchmark.py:gpu --out runs/benchmark_gpu.json

XLA's memory estimate and FLOPs of the train step, compiled on any machine (no GPU needed),
with and without rematerialisation, over batch sizes and crop lengths (docs/gpu_memory.md):

  python benchmark.py --config=configs/benchmark.py:gpu --mode=memory --batch_sizes=8,32

With the PyTorch comparison (torch + asteroid in their own venv, see docs/performance.md):

  python benchmark.py --config configs/benchmark.py --mode=backbone \
      --pytorch_python=/tmp/torchvenv/bin/python --out runs/benchmark_vs_pytorch.json

The roofline (matmul peak, memory bandwidth) next to the train step and the backbone, with
each step's fraction of the matmul peak, its kernel CPU share and page faults, and the op
families of the step's profile:

  python benchmark.py --config configs/benchmark.py --mode=roofline,train,backbone \
      --parallel=sharding --backbone=demo --profile_dir=runs/profile --out runs/roofline.json

Layout: ``experiment`` is the full experiment config (csc_jax.config.base_config(), i.e. the
CPU demo; override with ``--config.experiment.data.batch_size=16`` etc.), ``bench`` says what
to measure, ``backbone`` holds the Conv-TasNet shapes of ``--mode=backbone``.
"""

from pathlib import Path

import ml_collections

from csc_jax.config import ConfigError, base_config, load_config_file

EXPERIMENTS = ("demo", "gpu", "voxceleb")


def get_config(experiment: str | None = None) -> ml_collections.ConfigDict:
    """``experiment``: 'demo' (default; the CPU demo, csc_jax.config.base_config()), 'gpu'
    (configs/gpu.py) or 'voxceleb' (configs/voxceleb.py), chosen as
    ``--config=configs/benchmark.py:gpu``."""
    experiment = experiment or "demo"
    if experiment not in EXPERIMENTS:
        raise ConfigError(
            f"configs/benchmark.py:{experiment}: unknown experiment {experiment!r} "
            f"(have: {', '.join(EXPERIMENTS)})"
        )
    c = ml_collections.ConfigDict()
    c.experiment = (
        base_config()
        if experiment == "demo"
        else load_config_file(str(Path(__file__).with_name(f"{experiment}.py")))
    )

    b = c.bench = ml_collections.ConfigDict()
    # 'roofline' | 'train' | 'pipeline' | 'backbone' | 'losses' | 'all' (those five) | 'memory'
    # (compile only: XLA's memory estimate and FLOPs of the train step), or a comma list.
    b.mode = "all"
    b.parallel = ("sharding", "pmap")
    b.dtype = ("float32",)
    b.batch_sizes = ()  # empty: experiment.data.batch_size
    b.segment_seconds = ()  # empty: experiment.data.segment_seconds
    b.steps = 5  # timed steps per measurement (median/min/max reported)
    b.warmup = 2  # untimed steps after compilation
    b.pipeline_batches = 10
    b.backbone = ("paper", "demo")  # which of the shapes below --mode=backbone measures
    b.pytorch_python = ""  # interpreter with torch + asteroid; '' = no PyTorch comparison
    b.pytorch_rounds = 1  # alternating JAX / PyTorch timing rounds
    b.pytorch_threads = 2
    b.profile_dir = ""  # '' = no profile; else jax.profiler traces + per-layer op-time table
    b.profile_steps = 3
    # mode 'losses': value_and_grad of each csc_jax.losses function on a (B, sources, samples)
    # array: 16 two-source 4 s mixtures at 8 kHz.
    b.loss_shape = (16, 2, 32000)
    # mode 'roofline': (n, n) @ (n, n) at these n (the best rate is the matmul peak each step is
    # compared with), and an in-place axpy over two float32 arrays of this many MiB (memory
    # bandwidth; 4x the 32 MiB L3 of the CPU demo's machine).
    b.roofline_matmul_sizes = (256, 512, 1024, 2048)
    b.roofline_stream_mib = 128
    # mode 'memory': the model.remat values each step is compiled with (docs/gpu_memory.md).
    b.remat = ("none", "block")

    # Conv-TasNet paper's best non-causal model (Luo & Mesgarani 2019, Table 2): N=512, L=16,
    # B=Sc=128, H=512, P=3, X=8, R=3 at 8 kHz on 4 s segments. The paper trained with batch
    # 4 on GPUs; 2 keeps a CPU step to a few seconds.
    c.backbone = ml_collections.ConfigDict()
    c.backbone.paper = ml_collections.ConfigDict(
        dict(
            enc_filters=512,
            enc_kernel=16,
            bottleneck=128,
            hidden=512,
            conv_kernel=3,
            blocks=8,
            repeats=3,
            sample_rate=8000,
            segment_seconds=4.0,
            batch_size=2 if experiment == "demo" else 4,
        )
    )
    # 'demo': filled from experiment.model / .data at run time (benchmark.py), batch =
    # experiment.data.batch_size * experiment.mixing.num_conditions (the mixtures of one CSC
    # step); change it through --config.experiment.* (a config file may also set fields of
    # this dict, which then override the derived values).
    c.backbone.demo = ml_collections.ConfigDict()
    return c
