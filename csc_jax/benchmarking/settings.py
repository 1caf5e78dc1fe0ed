"""What a benchmark run measures: :class:`BenchSettings`, :class:`BackboneShapes`, and how
both are read from a configs/benchmark.py preset and benchmark.py's flags."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from csc_jax.config import samples
from csc_jax.errors import ConfigError
from csc_jax.models.separator import REMAT_MODES
from csc_jax.training.parallel import MODES as PARALLEL_MODES

MODES = ("roofline", "train", "pipeline", "backbone", "losses")
# Modes that compile without running; asked for by name, not part of 'all'.
COMPILE_ONLY_MODES = ("memory",)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
FRONTENDS = ("waveform", "stft")  # model.frontend values (csc_jax/models/csc.py)


@dataclasses.dataclass(frozen=True)
class BackboneShapes:
    """Shapes of one Conv-TasNet backbone measurement (Conv-TasNet paper notation).

    Attributes:
      name: label in the report ('paper', 'demo', ...).
      enc_filters: N. enc_kernel: L (stride L/2). bottleneck: B (= skip channels Sc).
      hidden: H. conv_kernel: P. blocks: X. repeats: R. n_src: sources separated.
      sample_rate: Hz. segment_seconds: mixture length. batch_size: mixtures per step.
      learning_rate: Adam step size (does not change the cost).
    """

    name: str
    enc_filters: int
    enc_kernel: int
    bottleneck: int
    hidden: int
    conv_kernel: int
    blocks: int
    repeats: int
    sample_rate: int
    segment_seconds: float
    batch_size: int
    n_src: int = 2
    learning_rate: float = 1e-3

    @property
    def segment_samples(self) -> int:
        return samples(self.segment_seconds, self.sample_rate)

    def describe(self) -> str:
        """One line of the shapes for logs and the report, e.g. 'N=512 L=16 ... 2 x 4.0 s'."""
        return (
            f"N={self.enc_filters} L={self.enc_kernel} B={self.bottleneck} H={self.hidden} "
            f"P={self.conv_kernel} X={self.blocks} R={self.repeats}, {self.sample_rate} Hz, "
            f"{self.batch_size} x {self.segment_seconds} s"
        )

    def same_shapes(self, other: BackboneShapes) -> bool:
        """Equal in every field but the name."""
        return dataclasses.replace(self, name="") == dataclasses.replace(other, name="")


def backbone_shapes_from_experiment(config: Any, name: str = "demo") -> BackboneShapes:
    """The CPU demo's backbone shapes: ``config.model`` sizes, its rate and crop length, and
    one mixture per (target, condition) of a CSC step (batch = B * K)."""
    m = config.model
    return BackboneShapes(
        name=name,
        enc_filters=m.enc_filters,
        enc_kernel=m.enc_kernel,
        bottleneck=m.bottleneck,
        hidden=m.hidden,
        conv_kernel=m.conv_kernel,
        blocks=m.blocks,
        repeats=m.repeats,
        sample_rate=int(config.data.sample_rate),
        segment_seconds=float(config.data.segment_seconds),
        batch_size=int(config.data.batch_size * config.mixing.num_conditions),
    )


@dataclasses.dataclass
class BenchSettings:
    """What to measure (see configs/benchmark.py for the preset and benchmark.py for flags).

    Attributes:
      modes: subset of MODES + COMPILE_ONLY_MODES.
      parallel: parallel modes of the train step ('sharding', 'pmap').
      dtypes: compute dtypes ('float32', 'bfloat16').
      batch_sizes: global batch sizes B to sweep (empty = the experiment config's).
      segment_seconds: crop lengths to sweep (empty = the experiment config's).
      frontends: ``model.frontend`` values to sweep (empty = the experiment config's); with
        more than one, each train-step measurement is repeated in ``rounds`` alternating
        rounds over them, in one process, so their ratio is measured side by side.
      rounds: alternating rounds of the train-step sweep.
      steps: timed steps per measurement. warmup: untimed steps before them (after compile).
      pipeline_batches: batches timed by the pipeline-alone measurement.
      backbone: backbone shapes to measure.
      pytorch_python: Python interpreter with torch + asteroid; '' = no PyTorch comparison.
      pytorch_rounds: alternating JAX / PyTorch timing rounds per backbone shape.
      pytorch_threads: torch.set_num_threads for the PyTorch baseline.
      profile_dir: '' = no profile; else write jax.profiler traces of the CSC step at the
        experiment's shapes and of each float32 backbone here, and add a per-layer breakdown
        of op time to the report (``profile.profile_breakdown``).
      profile_steps: steps traced per profile.
      loss_shape: the ``(batch, sources, samples)`` array of ``mode='losses'``.
      roofline_matmul_sizes: n of the roofline's ``(n, n) @ (n, n)`` probe (the best is the
        matmul peak). roofline_stream_mib: MiB of each of the two float32 arrays of its
        memory-bandwidth probe (well above the last-level cache).
      remat: ``model.remat`` values ``mode='memory'`` compiles each step with (its FLOP
        overhead is reported against 'none').
    """

    modes: tuple[str, ...] = MODES
    parallel: tuple[str, ...] = ("sharding",)
    dtypes: tuple[str, ...] = ("float32",)
    batch_sizes: tuple[int, ...] = ()
    segment_seconds: tuple[float, ...] = ()
    frontends: tuple[str, ...] = ()
    rounds: int = 1
    steps: int = 5
    warmup: int = 2
    pipeline_batches: int = 10
    backbone: tuple[BackboneShapes, ...] = ()
    pytorch_python: str = ""
    pytorch_rounds: int = 1
    pytorch_threads: int = 2
    profile_dir: str = ""
    profile_steps: int = 3
    loss_shape: tuple[int, int, int] = (16, 2, 32000)
    roofline_matmul_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    roofline_stream_mib: int = 128
    remat: tuple[str, ...] = ("none", "block")

    def validate(self) -> None:
        """Raise ConfigError (one line naming the setting) for anything that cannot run."""
        bad = sorted(set(self.modes) - set(MODES + COMPILE_ONLY_MODES))
        if bad or not self.modes:
            raise ConfigError(
                f"mode(s) {bad or '(none)'} not in {MODES + COMPILE_ONLY_MODES} (or 'all')"
            )
        if "memory" in self.modes and (not self.remat or set(self.remat) - set(REMAT_MODES)):
            raise ConfigError(f"remat {list(self.remat)}: give one or more of {REMAT_MODES}")
        for p in self.parallel:
            if p not in PARALLEL_MODES:
                raise ConfigError(f"parallel mode {p!r} is not 'sharding' or 'pmap'")
        for d in self.dtypes:
            if d not in DTYPES:
                raise ConfigError(f"dtype {d!r} is not one of {tuple(DTYPES)}")
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")
        if self.pipeline_batches < 1:
            raise ConfigError(f"pipeline_batches must be >= 1, got {self.pipeline_batches}")
        if self.profile_steps < 1:
            raise ConfigError(f"profile_steps must be >= 1, got {self.profile_steps}")
        for f in self.frontends:
            if f not in FRONTENDS:
                raise ConfigError(f"frontend {f!r} is not one of {FRONTENDS}")
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {self.rounds}")
        if self.pytorch_rounds < 1:
            raise ConfigError(f"pytorch_rounds must be >= 1, got {self.pytorch_rounds}")
        if any(b < 1 for b in self.batch_sizes) or any(s <= 0 for s in self.segment_seconds):
            raise ConfigError(
                f"batch_sizes {self.batch_sizes} and segment_seconds {self.segment_seconds} "
                "must be positive"
            )
        if len(self.loss_shape) != 3 or min(self.loss_shape) < 1:
            raise ConfigError(f"loss_shape must be 3 positive sizes, got {self.loss_shape}")
        if "losses" in self.modes and self.loss_shape[1] < 2:
            raise ConfigError(f"loss_shape {self.loss_shape}: needs >= 2 sources for PIT")
        if "roofline" in self.modes and (
            not self.roofline_matmul_sizes
            or min(self.roofline_matmul_sizes) < 1
            or self.roofline_stream_mib < 1
        ):
            raise ConfigError(
                f"roofline_matmul_sizes {self.roofline_matmul_sizes} and roofline_stream_mib "
                f"{self.roofline_stream_mib} must be positive (at least one size)"
            )
        if "backbone" in self.modes and not self.backbone:
            raise ConfigError("mode 'backbone' needs at least one backbone shape")
        if "backbone" in self.modes and self.pytorch_python:
            # Checked now: the comparison runs after the JAX backbone has been measured.
            if shutil.which(self.pytorch_python) is None:
                raise ConfigError(
                    f"pytorch_python {self.pytorch_python!r} is not an executable file"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (the backbone shapes as dicts)."""
        d = dataclasses.asdict(self)
        d["backbone"] = [dataclasses.asdict(s) for s in self.backbone]
        return d


def _numbers(values: Sequence[Any], kind: type, name: str) -> tuple:
    try:
        return tuple(kind(x) for x in values)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {list(values)} are not {kind.__name__}s") from None


def settings_from_preset(
    preset: Any,
    *,
    mode: str | None = None,
    parallel: Sequence[str] | None = None,
    dtypes: Sequence[str] | None = None,
    batch_sizes: Sequence[Any] | None = None,
    segment_seconds: Sequence[Any] | None = None,
    frontends: Sequence[str] | None = None,
    rounds: int | None = None,
    steps: int | None = None,
    warmup: int | None = None,
    backbone: Sequence[str] | None = None,
    pytorch_python: str | None = None,
    pytorch_rounds: int | None = None,
    pytorch_threads: int | None = None,
    profile_dir: str | None = None,
    matmul_sizes: Sequence[Any] | None = None,
    remat: Sequence[str] | None = None,
) -> BenchSettings:
    """BenchSettings from a configs/benchmark.py preset; each keyword that is not None
    replaces the preset's ``bench`` value (benchmark.py passes its flags).

    ``mode`` is a comma list of MODES or 'all'; ``backbone`` names entries of
    ``preset.backbone``; 'demo' starts from :func:`backbone_shapes_from_experiment` of
    ``preset.experiment`` and the preset's entry overrides its fields.

    Raises:
      ConfigError: an unknown backbone name or a value that is not a number.
    """
    b = preset.bench

    def pick(value, preset_value):
        return preset_value if value is None else value

    modes = [m.strip() for m in pick(mode, b.mode).split(",") if m.strip()]
    if "all" in modes:
        modes = list(MODES)
    shapes = []
    for name in pick(backbone, list(b.backbone)):
        if name not in preset.backbone:
            raise ConfigError(
                f"backbone shapes {name!r} are not in the preset (have: "
                f"{', '.join(preset.backbone.keys())})"
            )
        fields = dict(preset.backbone[name].to_dict())
        if name == "demo":
            base = backbone_shapes_from_experiment(preset.experiment, name)
            shapes.append(dataclasses.replace(base, **fields))
        else:
            shapes.append(BackboneShapes(name=name, **fields))
    return BenchSettings(
        modes=tuple(modes),
        parallel=tuple(pick(parallel, list(b.parallel))),
        dtypes=tuple(pick(dtypes, list(b.dtype))),
        batch_sizes=_numbers(pick(batch_sizes, list(b.batch_sizes)), int, "batch_sizes"),
        segment_seconds=_numbers(
            pick(segment_seconds, list(b.segment_seconds)), float, "segment_seconds"
        ),
        frontends=tuple(pick(frontends, list(b.get("frontends", ())))),
        rounds=int(pick(rounds, b.get("rounds", 1))),
        steps=int(pick(steps, b.steps)),
        warmup=int(pick(warmup, b.warmup)),
        pipeline_batches=int(b.pipeline_batches),
        backbone=tuple(shapes),
        pytorch_python=pick(pytorch_python, b.pytorch_python),
        pytorch_rounds=int(pick(pytorch_rounds, b.pytorch_rounds)),
        pytorch_threads=int(pick(pytorch_threads, b.pytorch_threads)),
        profile_dir=pick(profile_dir, b.profile_dir),
        profile_steps=int(b.profile_steps),
        loss_shape=_numbers(b.loss_shape, int, "loss_shape"),
        # .get: presets written before the roofline probes keep working
        roofline_matmul_sizes=_numbers(
            pick(matmul_sizes, list(b.get("roofline_matmul_sizes", (256, 512, 1024, 2048)))),
            int,
            "matmul_sizes",
        ),
        roofline_stream_mib=int(b.get("roofline_stream_mib", 128)),
        remat=tuple(pick(remat, list(b.get("remat", BenchSettings.remat)))),
    )
