"""The PyTorch comparison: asteroid's Conv-TasNet timed in its own interpreter.

torch is not a dependency of csc-jax: ``scripts/pytorch_convtasnet_baseline.py`` runs under
the interpreter named by ``BenchSettings.pytorch_python`` and prints its figures as one JSON
line, which :func:`run_pytorch_baseline` reads back. :func:`compare_with_pytorch` alternates
JAX and PyTorch timing rounds so both see the same machine load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

import jax

from csc_jax.benchmarking.settings import BackboneShapes, BenchSettings
from csc_jax.benchmarking.timing import StepTimer, step_time_stats

REPO_ROOT = str(Path(__file__).resolve().parents[2])
PYTORCH_SCRIPT = os.path.join(REPO_ROOT, "scripts", "pytorch_convtasnet_baseline.py")


def pytorch_device() -> str:
    """The torch device matching JAX's default backend: 'cuda' on GPUs, else 'cpu'."""
    return "cuda" if jax.default_backend() == "gpu" else "cpu"


def pytorch_command(
    python: str,
    shapes: BackboneShapes,
    *,
    steps: int,
    warmup: int,
    threads: int,
    device: str = "cpu",
) -> list[str]:
    """Command line of scripts/pytorch_convtasnet_baseline.py for ``shapes``."""
    return [
        python,
        PYTORCH_SCRIPT,
        f"--name={shapes.name}",
        f"--enc_filters={shapes.enc_filters}",
        f"--enc_kernel={shapes.enc_kernel}",
        f"--bottleneck={shapes.bottleneck}",
        f"--hidden={shapes.hidden}",
        f"--conv_kernel={shapes.conv_kernel}",
        f"--blocks={shapes.blocks}",
        f"--repeats={shapes.repeats}",
        f"--n_src={shapes.n_src}",
        f"--sample_rate={shapes.sample_rate}",
        f"--segment_seconds={shapes.segment_seconds}",
        f"--batch_size={shapes.batch_size}",
        f"--learning_rate={shapes.learning_rate}",
        f"--steps={steps}",
        f"--warmup={warmup}",
        f"--threads={threads}",
        f"--device={device}",
    ]


def run_pytorch_baseline(
    python: str, shapes: BackboneShapes, *, steps: int, warmup: int, threads: int
) -> dict[str, Any]:
    """Run the PyTorch baseline in its own interpreter (torch lives in a separate venv), on
    the GPU when JAX runs on one; returns the script's JSON figures."""
    cmd = pytorch_command(
        python, shapes, steps=steps, warmup=warmup, threads=threads, device=pytorch_device()
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(
            f"PyTorch baseline failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def compare_with_pytorch(
    shapes: BackboneShapes,
    settings: BenchSettings,
    backbone: tuple[dict[str, Any], StepTimer],
    csc: tuple[dict[str, Any], StepTimer] | None = None,
) -> dict[str, Any]:
    """Alternating rounds: JAX backbone, PyTorch backbone (subprocess), [CSC train step].

    Every round re-times the already compiled JAX executables, then runs the PyTorch baseline
    at the same shapes, so all of them see the same machine load; the summary takes the
    median over rounds of each round's median step time.

    Args:
      shapes: backbone shapes (float32).
      settings: steps, warmup, rounds, PyTorch interpreter and threads.
      backbone: (result, timer) of ``bench_backbone(..., keep_timer=True)``.
      csc: (result, timer) of the CSC train step whose mixtures have these backbone shapes
        (``bench_train_step(..., keep_timer=True)``), or None.

    Returns:
      dict with per-round figures and 'jax_over_pytorch_step_time' (> 1: JAX slower), and
      with ``csc``: 'csc_over_pytorch_audio_throughput' (>= 1: the full CSC step processes at
      least as many seconds of mixture audio per second as PyTorch's plain Conv-TasNet).
    """
    rounds = []
    for _ in range(settings.pytorch_rounds):
        row: dict[str, Any] = {"load_average_before": list(os.getloadavg())}
        row["jax_backbone_s"] = step_time_stats(backbone[1].time(settings.steps, settings.warmup))
        torch_r = run_pytorch_baseline(
            settings.pytorch_python,
            shapes,
            steps=settings.steps,
            warmup=settings.warmup,
            threads=settings.pytorch_threads,
        )
        row["pytorch"] = torch_r
        if csc is not None:
            row["csc_step_s"] = step_time_stats(csc[1].time(settings.steps, settings.warmup))
        rounds.append(row)

    def median_of(key):
        return statistics.median(r[key]["median"] for r in rounds)

    jax_s = median_of("jax_backbone_s")
    torch_s = statistics.median(r["pytorch"]["step_time_s"]["median"] for r in rounds)
    audio = shapes.batch_size * shapes.segment_seconds
    out = {
        "shapes": shapes.name,
        "shape_fields": dataclasses.asdict(shapes),
        "rounds": rounds,
        "jax_median_s": jax_s,
        "pytorch_median_s": torch_s,
        "jax_over_pytorch_step_time": jax_s / torch_s,
        "jax_audio_s_per_s": audio / jax_s,
        "pytorch_audio_s_per_s": audio / torch_s,
        "pytorch_impl": rounds[0]["pytorch"].get("implementation"),
        "pytorch_version": rounds[0]["pytorch"].get("torch"),
        # What the PyTorch process mapped; it inherits this process's LD_PRELOAD.
        "pytorch_allocator": rounds[0]["pytorch"].get("allocator", "not recorded"),
        "pytorch_threads": settings.pytorch_threads,
        "pytorch_num_params": rounds[0]["pytorch"].get("num_params"),
        "jax_num_params": backbone[0]["num_params"],
        "jax_flops_forward": backbone[0].get("flops_forward"),
        "pytorch_flops_forward": rounds[0]["pytorch"].get("flops_forward"),
    }
    if csc is not None:
        csc_s = median_of("csc_step_s")
        csc_audio = csc[0]["audio_s_per_step"]
        out.update(
            csc_parallel=csc[0]["parallel"],
            csc_median_s=csc_s,
            csc_audio_s_per_s=csc_audio / csc_s,
            csc_over_pytorch_audio_throughput=(csc_audio / csc_s) / (audio / torch_s),
        )
    return out
