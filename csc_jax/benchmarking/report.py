"""The benchmark report: its JSON skeleton, the markdown tables benchmark.py prints, the file."""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any

from csc_jax.benchmarking.settings import BackboneShapes, BenchSettings
from csc_jax.io_utils import atomic_write_json, machine_info, markdown_table

SCHEMA = 1


def new_report(experiment: Any, settings: BenchSettings) -> dict[str, Any]:
    """An empty report: when, the command, the machine (``io_utils.machine_info``), settings."""
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": [sys.executable] + sys.argv,
        "environment": machine_info(),
        "settings": settings.to_dict(),
        "experiment_config": experiment.to_dict(),
        "results": [],
        "pipeline_alone": None,
        "pytorch_comparison": [],
        "profiles": {},
    }


def write_report(report: dict[str, Any], path: str) -> None:
    """Write the JSON report atomically (creates the parent folder)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_json(path, report)


def summary_line(result: dict[str, Any]) -> str:
    """One log line of a timed result: median/min/max ms per step, audio s/s, compile s."""
    st, tp = result["step_time_s"], result["throughput"]
    return (
        f"median {st['median'] * 1e3:.1f} ms/step (min {st['min'] * 1e3:.1f}, max "
        f"{st['max'] * 1e3:.1f}), {tp['audio_s_per_s']:.1f} audio s/s, compile "
        f"{result['compile']['lower_plus_compile_s']:.1f} s"
    )


def _fmt(x: Any, scale: float = 1.0, digits: int = 1) -> str:
    if x is None or isinstance(x, str):
        return "n/a" if x is None else x
    return f"{x * scale:.{digits}f}"


def _fmt_bytes(x: Any) -> str:
    if not isinstance(x, (int, float)):
        return "n/a"
    return f"{x / 2**20:.0f} MiB"


def _ms_range(st: dict[str, Any], digits: int = 1) -> str:
    """'median (min-max)' of step-time stats in milliseconds."""
    ms = [st[k] * 1e3 for k in ("median", "min", "max")]
    return f"{ms[0]:.{digits}f} ({ms[1]:.{digits}f}-{ms[2]:.{digits}f})"


def _utilisation(tp: dict[str, Any]) -> str:
    util = tp["utilisation"]
    return "unknown" if util is None else f"{util:.1%}"


def _environment_line(env: dict[str, Any]) -> str:
    def loads(values):
        return ", ".join(f"{x:.2f}" for x in values)

    return (
        f"Device: {env['device_kind']} x {env['num_devices']} ({env['backend']}); CPU "
        f"{env['cpu']}, {env['cores']} cores ({env['usable_cores']} usable by this process); "
        f"load average {loads(env['load_average'])} (before), "
        f"{loads(env.get('load_average_after', []))} (after); "
        f"jax {env['jax']}, jaxlib {env['jaxlib']}, flax {env['flax']}."
    )


def _train_steps(steps: list[dict[str, Any]]) -> list[str]:
    header = (
        "step", "input", "parallel", "dtype", "B", "K", "seg (s)", "compile (s)",
        "median ms (min-max)", "examples/s", "audio s/s", "audio s/s/dev", "trunk audio s/s",
        "GFLOP/step", "GFLOP/s", "util.", "XLA temp",
    )  # fmt: skip
    rows = []
    for r in steps:
        tp = r["throughput"]
        rows.append(
            [
                f"CSC {r['method']}",
                "pipeline" if r["kind"] == "pipeline" else "device",
                r["parallel"],
                r["dtype"],
                r["batch_size"],
                r["num_conditions"],
                f"{r['segment_seconds']:g}",
                f"{r['compile']['lower_plus_compile_s']:.1f}",
                _ms_range(r["step_time_s"]),
                f"{tp['examples_per_s']:.2f}",
                f"{tp['audio_s_per_s']:.2f}",
                f"{tp['audio_s_per_s_per_device']:.2f}",
                f"{tp['trunk_audio_s_per_s']:.2f}",
                _fmt(r["flops_per_step"], 1e-9),
                _fmt(tp["achieved_flops_per_s"], 1e-9),
                _utilisation(tp),
                _fmt_bytes(r["memory"]["compiled"].get("temp_size_in_bytes")),
            ]
        )
    peak = {str(r["memory"]["device"]["peak_bytes_in_use"]) for r in steps}
    return [
        markdown_table(header, rows),
        "",
        f"Runtime peak device memory: {', '.join(sorted(peak))}.",
        "audio s/s counts " + "; ".join(sorted({r["counted"] for r in steps})) + "; trunk "
        "audio s/s counts every waveform that goes through the separative encoder.",
        "",
    ]


def _pipeline_alone(pa: dict[str, Any]) -> list[str]:
    header = (
        "input pipeline alone", "workers", "B", "K", "seg (s)", "crops/s", "batches/s",
        "mixture audio s/s",
    )  # fmt: skip
    row = [
        pa["source"],
        pa["num_workers"],
        pa["batch_size"],
        pa["num_conditions"],
        f"{pa['segment_seconds']:g}",
        f"{pa['crops_per_s']:.0f}",
        f"{pa['batches_per_s']:.1f}",
        f"{pa['mixture_audio_s_per_s']:.1f}",
    ]
    return [markdown_table(header, [row]), ""]


def _backbones(results: list[dict[str, Any]]) -> list[str]:
    header = (
        "backbone", "shapes", "dtype", "params", "compile (s)", "median ms (min-max)",
        "audio s/s", "GFLOP/step", "GFLOP/s", "util.",
    )  # fmt: skip
    rows = []
    for r in results:
        s = BackboneShapes(**r["shapes"])
        tp = r["throughput"]
        rows.append(
            [
                s.name,
                s.describe(),
                r["dtype"],
                f"{r['num_params'] / 1e6:.2f} M",
                f"{r['compile']['lower_plus_compile_s']:.1f}",
                _ms_range(r["step_time_s"]),
                f"{tp['audio_s_per_s']:.2f}",
                _fmt(r["flops_per_step"], 1e-9),
                _fmt(tp["achieved_flops_per_s"], 1e-9),
                _utilisation(tp),
            ]
        )
    return [markdown_table(header, rows), ""]


def _pytorch_comparisons(comps: list[dict[str, Any]]) -> list[str]:
    header = (
        "backbone (float32)", "JAX ms/step", "PyTorch ms/step", "JAX / PyTorch step time",
        "JAX audio s/s", "PyTorch audio s/s", "rounds", "PyTorch",
    )  # fmt: skip
    rows = [
        [
            c["shapes"],
            f"{c['jax_median_s'] * 1e3:.1f}",
            f"{c['pytorch_median_s'] * 1e3:.1f}",
            f"{c['jax_over_pytorch_step_time']:.3f}",
            f"{c['jax_audio_s_per_s']:.2f}",
            f"{c['pytorch_audio_s_per_s']:.2f}",
            len(c["rounds"]),
            f"{c['pytorch_impl']} (torch {c['pytorch_version']}, {c['pytorch_threads']} threads)",
        ]
        for c in comps
    ]
    lines = [markdown_table(header, rows), ""]
    for c in comps:
        if "csc_median_s" in c:
            lines += [
                f"Full CSC train step ({c['csc_parallel']}, float32, the experiment's B, K, "
                f"segment): {c['csc_median_s'] * 1e3:.1f} ms/step = "
                f"{c['csc_audio_s_per_s']:.2f} mixture audio s/s vs PyTorch Conv-TasNet at "
                f"the same backbone shapes {c['pytorch_audio_s_per_s']:.2f}: ratio "
                f"{c['csc_over_pytorch_audio_throughput']:.3f} (>= 1 meets the target).",
                "",
            ]
    return lines


def _losses(results: list[dict[str, Any]]) -> list[str]:
    header = (
        "loss (value + grad, jit)", "input", "dtype", "compile (s)", "median ms (min-max)",
        "GFLOP",
    )  # fmt: skip
    rows = [
        [
            r["name"],
            r["reads"],
            r["dtype"],
            f"{r['compile']['lower_plus_compile_s']:.2f}",
            _ms_range(r["step_time_s"], digits=2),
            _fmt(r["flops_per_step"], 1e-9, 2),
        ]
        for r in results
    ]
    return [markdown_table(header, rows), ""]


def _memory(results: list[dict[str, Any]]) -> list[str]:
    header = (
        "dtype", "B", "K", "crop (s)", "remat", "trunk waveforms", "temporaries (GiB)",
        "arguments (GiB)", "total (GiB)", "code (MiB)", "GFLOP/step", "FLOP overhead",
        "compile (s)",
    )  # fmt: skip
    rows = []
    for r in results:
        m, overhead = r["memory"], r.get("flop_overhead")
        remat = r["remat"] if r["remat"] == "none" else f"{r['remat']} ({r['remat_policy']})"
        rows.append(
            [
                r["dtype"],
                r["batch_size"],
                r["num_conditions"],
                f"{r['segment_seconds']:g}",
                remat,
                r["trunk_waveforms"],
                _fmt(m.get("temp_size_in_bytes"), 2**-30, 2),
                _fmt(m.get("argument_size_in_bytes"), 2**-30, 2),
                _fmt(m.get("total_bytes"), 2**-30, 2),
                _fmt(m.get("generated_code_size_in_bytes"), 2**-20),
                _fmt(r["flops_per_step_per_device"], 1e-9),
                "n/a" if overhead is None else f"{overhead:+.1%}",
                f"{r['compile']['lower_plus_compile_s']:.1f}",
            ]
        )
    backends = ", ".join(sorted({r["backend"] for r in results}))
    return [
        markdown_table(header, rows),
        "",
        f"XLA's static estimates of one device's train step compiled (not run) on {backends} "
        "for these shapes; a GPU compile can differ. total = arguments + outputs - aliased + "
        "temporaries. GFLOP: XLA's cost analysis of the unoptimised step with the TCN loops "
        "unrolled; FLOP overhead: against remat 'none' at the same shapes.",
        "",
    ]


def _profile(name: str, prof: dict[str, Any]) -> list[str]:
    if "error" in prof:
        return [f"Profile {name}: {prof['error']}", ""]
    rows = []
    for key, ms, share in prof["by_layer"][:12]:
        where, direction = key.rsplit(" ", 1)
        rows.append([where.removesuffix("/-"), direction, f"{ms:.1f}", f"{share:.1%}"])
    return [
        f"Profile {name}: wall {prof['wall_ms_per_step']:.0f} ms/step under the profiler, "
        f"XLA ops {prof['op_ms_per_step']:.0f} ms/step (sum of op durations), dots "
        f"{prof['dot_share']:.0%}; trace in {prof['trace_dir']}",
        "",
        markdown_table(("model part / layer", "direction", "ms/step", "share"), rows),
        "",
    ]


def markdown(report: dict[str, Any]) -> str:
    """Markdown tables of a report (what benchmark.py prints)."""
    lines = [_environment_line(report["environment"]), ""]
    results = report["results"]
    steps = [r for r in results if r["kind"] in ("train", "pipeline")]
    if steps:
        lines += _train_steps(steps)
    if report.get("pipeline_alone"):
        lines += _pipeline_alone(report["pipeline_alone"])
    backbones = [r for r in results if r["kind"] == "backbone"]
    if backbones:
        lines += _backbones(backbones)
    if report.get("pytorch_comparison"):
        lines += _pytorch_comparisons(report["pytorch_comparison"])
    loss_rows = [r for r in results if r["kind"] == "loss"]
    if loss_rows:
        lines += _losses(loss_rows)
    memory_rows = [r for r in results if r["kind"] == "memory"]
    if memory_rows:
        lines += _memory(memory_rows)
    for name, prof in (report.get("profiles") or {}).items():
        lines += _profile(name, prof)
    lines.append(f"Total wall time {report.get('total_wall_s', float('nan')):.0f} s.")
    return "\n".join(lines)
