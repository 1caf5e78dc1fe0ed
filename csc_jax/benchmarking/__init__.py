"""Throughput benchmark of the CSC train step, the input pipeline and the separation backbone.

What ``benchmark.py`` measures (``BenchSettings.modes``), one module each:

* ``roofline`` (:mod:`.roofline`): the machine's matmul peak and memory bandwidth, measured
  first in the same process; every step below is then reported as a fraction of that peak;
* ``train`` (:mod:`.train_step`): the real train step, built by
  ``csc_jax.training.setup.build`` as training builds it, on a device-resident batch;
* ``pipeline`` (:mod:`.train_step`): the same step fed by the real input pipeline, and the
  pipeline alone (crops/s);
* ``backbone`` (:mod:`.backbone`): Conv-TasNet alone, optionally against PyTorch/asteroid
  (:mod:`.pytorch`);
* ``losses`` (:mod:`.loss_functions`): value and gradient of each loss of ``csc_jax.losses``;
* ``memory`` (:mod:`.memory`, not part of 'all'): the train step compiled, not run: XLA's
  memory estimate and FLOPs over B, crop length and ``model.remat``.

:mod:`.timing` says how steps are timed and FLOPs, memory and rates counted; :mod:`.profile`
breaks a step's op time down per layer and per op family; :mod:`.report` renders and writes
the report; :mod:`.settings` holds what to measure. :func:`run` measures everything the
settings ask for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from csc_jax.benchmarking.backbone import bench_backbone
from csc_jax.benchmarking.loss_functions import bench_losses
from csc_jax.benchmarking.memory import bench_memory
from csc_jax.benchmarking.profile import profile_breakdown
from csc_jax.benchmarking.pytorch import compare_with_pytorch
from csc_jax.benchmarking.report import markdown, new_report, summary_line, write_report
from csc_jax.benchmarking.roofline import against_peak, measure_roofline
from csc_jax.benchmarking.settings import (
    MODES,
    BackboneShapes,
    BenchSettings,
    backbone_shapes_from_experiment,
    settings_from_preset,
)
from csc_jax.benchmarking.timing import StepTimer
from csc_jax.benchmarking.train_step import (
    bench_pipeline_alone,
    bench_train_step,
    config_variant,
)
from csc_jax.config import validate_config

__all__ = [
    "MODES",
    "BackboneShapes",
    "BenchSettings",
    "backbone_shapes_from_experiment",
    "bench_backbone",
    "bench_losses",
    "bench_memory",
    "bench_pipeline_alone",
    "bench_train_step",
    "markdown",
    "measure_roofline",
    "run",
    "settings_from_preset",
    "write_report",
]


class _Run:
    """One benchmark run: the report being filled and the steps kept for later re-timing."""

    def __init__(self, experiment: Any, settings: BenchSettings, log: Callable[[str], None]):
        self.experiment, self.settings, self.log = experiment, settings, log
        self.report = new_report(experiment, settings)
        data = experiment.data
        # The CSC step at the experiment's own shapes (float32, first parallel mode) is what
        # the PyTorch comparison holds against Conv-TasNet at the demo's backbone shapes.
        self.default_key = (
            settings.parallel[0],
            "float32",
            int(data.batch_size),
            float(data.segment_seconds),
        )
        demo = backbone_shapes_from_experiment(experiment)
        self.want_csc = bool(settings.pytorch_python) and "backbone" in settings.modes
        self.want_csc = self.want_csc and any(x.same_shapes(demo) for x in settings.backbone)
        self.demo_shapes = demo
        self.csc_default: tuple[dict[str, Any], StepTimer] | None = None
        # The PyTorch comparison holds Conv-TasNet against the CSC step whose mixtures go
        # through the same backbone shapes: the 'waveform' front end's step, whatever the
        # experiment's own front end (the 'stft' step has other shapes and frame rates).
        self.csc_waveform: tuple[dict[str, Any], StepTimer] | None = None

    def train_step(
        self, key: tuple[str, str, int, float], frontend: str | None = None, **kwargs: Any
    ) -> Any:
        p, d, b, s = key
        cfg = config_variant(
            self.experiment, parallel=p, dtype=d, batch=b, seconds=s, frontend=frontend
        )
        return bench_train_step(
            cfg, steps=self.settings.steps, warmup=self.settings.warmup, **kwargs
        )

    def roofline(self) -> None:
        s = self.settings
        sizes = ",".join(str(n) for n in s.roofline_matmul_sizes)
        self.log(
            f"roofline: matmul n={sizes} {','.join(s.dtypes)}, stream 2 x "
            f"{s.roofline_stream_mib} MiB ..."
        )
        roof = measure_roofline(
            sizes=s.roofline_matmul_sizes,
            dtypes=s.dtypes,
            stream_mib=s.roofline_stream_mib,
            steps=s.steps,
            warmup=s.warmup,
        )
        self.report["roofline"] = roof
        for dtype, peak in roof["matmul_peak"].items():
            self.log(f"  matmul peak {dtype}: {peak['gflop_per_s']:.1f} GFLOP/s at n={peak['n']}")
        self.log(f"  memory bandwidth: {roof['stream']['gb_per_s']:.1f} GB/s")

    def profile(self, name: str, timer: StepTimer, median_s: float | None = None) -> None:
        settings = self.settings
        if not settings.profile_dir:
            return
        self.log(f"profiling {name} ({settings.profile_steps} steps) ...")
        out = profile_breakdown(
            timer,
            steps=settings.profile_steps,
            trace_dir=os.path.join(settings.profile_dir, name),
        )
        if median_s is not None:  # to scale the traced shares to the step timed without it
            out["timed_ms_per_step"] = median_s * 1e3
        self.report["profiles"][name] = out
        if "error" in out:
            self.log("  " + out["error"])
        else:
            top = ", ".join(f"{k} {100 * f:.0f}%" for k, _, f in out["by_part"][:4])
            self.log(f"  op time {out['op_ms_per_step']:.0f} ms/step: {top}")

    def train_sweep(self) -> None:
        settings, data = self.settings, self.experiment.data
        own = str(self.experiment.model.frontend)
        keep_csc = bool(settings.profile_dir) or (self.want_csc and own == "waveform")
        frontends = settings.frontends or (own,)
        for round_ in range(settings.rounds):
            for p in settings.parallel:
                for d in settings.dtypes:
                    for b in settings.batch_sizes or (int(data.batch_size),):
                        for s in settings.segment_seconds or (float(data.segment_seconds),):
                            for f in frontends:  # innermost: front ends side by side
                                self.log(
                                    f"train step (round {round_ + 1}/{settings.rounds}): "
                                    f"frontend={f} parallel={p} dtype={d} B={b} segment={s}s ..."
                                )
                                key = (p, d, b, float(s))
                                keep = (
                                    keep_csc
                                    and f == own
                                    and key == self.default_key
                                    and self.csc_default is None
                                )
                                r = self.train_step(key, frontend=f, keep_timer=keep)
                                if keep:
                                    self.csc_default, r = r, r[0]
                                r["round"] = round_
                                self.report["results"].append(r)
                                self.log("  " + summary_line(r))
                                if keep:
                                    self.profile("csc_step", self.csc_default[1], _median(r))

    def pipeline(self) -> None:
        settings, data = self.settings, self.experiment.data
        self.log(f"input pipeline alone ({settings.pipeline_batches} batches) ...")
        alone = bench_pipeline_alone(self.experiment, batches=settings.pipeline_batches)
        self.report["pipeline_alone"] = alone
        self.log(f"  {alone['crops_per_s']:.0f} crops/s")
        key = (settings.parallel[0], settings.dtypes[0])
        key += (int(data.batch_size), float(data.segment_seconds))
        p, d, b, s = key
        self.log(
            f"train step with the real pipeline: parallel={p} dtype={d} B={b} segment={s}s ..."
        )
        r = self.train_step(key, real_pipeline=True)
        self.report["results"].append(r)
        self.log("  " + summary_line(r))

    def backbones(self) -> None:
        settings = self.settings
        for shapes in settings.backbone:
            self.log(f"backbone {shapes.name}: {shapes.describe()} ...")
            kept = None
            for dtype in settings.dtypes:
                keep = dtype == "float32" and bool(settings.pytorch_python or settings.profile_dir)
                r = bench_backbone(
                    shapes,
                    dtype=dtype,
                    steps=settings.steps,
                    warmup=settings.warmup,
                    keep_timer=keep,
                )
                if keep:
                    kept, r = r, r[0]
                self.report["results"].append(r)
                self.log(f"  {dtype}: " + summary_line(r))
            if kept is not None:
                self.profile(f"backbone_{shapes.name}", kept[1], _median(kept[0]))
            if kept is not None and settings.pytorch_python:
                self.compare(shapes, kept)

    def compare(self, shapes: BackboneShapes, kept: tuple[dict[str, Any], StepTimer]) -> None:
        settings = self.settings
        csc = None
        if self.want_csc and shapes.same_shapes(self.demo_shapes):
            own = str(self.experiment.model.frontend)
            if own == "waveform" and self.csc_default is not None:
                self.csc_waveform = self.csc_default
            if self.csc_waveform is None:
                p, _, b, s = self.default_key
                self.log(
                    f"CSC train step (waveform front end) for the comparison: parallel={p} B={b} "
                    f"segment={s}s ..."
                )
                self.csc_waveform = self.train_step(
                    self.default_key, frontend="waveform", keep_timer=True
                )
            csc = self.csc_waveform
        self.log(f"  {settings.pytorch_rounds} alternating round(s) JAX / PyTorch ...")
        c = compare_with_pytorch(shapes, settings, kept, csc)
        self.report["pytorch_comparison"].append(c)
        text = (
            f"  PyTorch ({c['pytorch_impl']}): {c['pytorch_median_s'] * 1e3:.1f} ms/step, "
            f"JAX {c['jax_median_s'] * 1e3:.1f} ms/step: JAX/PyTorch step time "
            f"{c['jax_over_pytorch_step_time']:.3f}"
        )
        if "csc_median_s" in c:
            text += (
                f"; CSC step {c['csc_median_s'] * 1e3:.1f} ms = "
                f"{c['csc_audio_s_per_s']:.1f} audio s/s vs PyTorch backbone "
                f"{c['pytorch_audio_s_per_s']:.1f} (ratio "
                f"{c['csc_over_pytorch_audio_throughput']:.3f})"
            )
        self.log(text)

    def losses(self) -> None:
        settings = self.settings
        for dtype in settings.dtypes:
            self.log(f"losses: value_and_grad on {settings.loss_shape} {dtype} ...")
            for r in bench_losses(
                settings.loss_shape, steps=settings.steps, warmup=settings.warmup, dtype=dtype
            ):
                self.report["results"].append(r)
                self.log(f"  {r['name']}: {r['step_time_s']['median'] * 1e3:.2f} ms")

    def memory(self) -> None:
        settings = self.settings
        self.report["results"] += bench_memory(
            self.experiment,
            batch_sizes=settings.batch_sizes,
            segment_seconds=settings.segment_seconds,
            dtypes=settings.dtypes,
            remat=settings.remat,
            parallel=settings.parallel[0],
            log=self.log,
        )


def _median(result: dict[str, Any]) -> float:
    return result["step_time_s"]["median"]


def run(experiment: Any, settings: BenchSettings, log: Callable[[str], None] = print) -> dict:
    """Measure everything ``settings`` asks for on the ``experiment`` config.

    Returns:
      the JSON-serialisable report (:func:`.report.new_report` filled in).

    Raises:
      ConfigError: invalid settings, or an experiment config the CSC step cannot run.
    """
    settings.validate()
    started = time.perf_counter()
    if {"train", "pipeline", "memory"} & set(settings.modes):
        validate_config(experiment)  # before minutes of measurements, not in the middle
    bench = _Run(experiment, settings, log)
    if "roofline" in settings.modes:  # first: the machine before the model figures
        bench.roofline()
    if "train" in settings.modes:
        bench.train_sweep()
    if "pipeline" in settings.modes:
        bench.pipeline()
    if "backbone" in settings.modes:
        bench.backbones()
    if "losses" in settings.modes:
        bench.losses()
    if "memory" in settings.modes:
        bench.memory()
    report = bench.report
    for r in report["results"]:
        if "step_time_s" in r:  # timed measurements (not the compile-only memory mode)
            r["roofline"] = against_peak(r, report["roofline"])
    report["environment"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["total_wall_s"] = time.perf_counter() - started
    return report
