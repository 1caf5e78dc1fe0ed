"""The benchmark report: its JSON skeleton, the markdown tables benchmark.py prints, the file.

Long because it holds one small renderer per table of the report (train steps, front ends,
pipeline, backbones, PyTorch, losses, memory, roofline, profiles): they share the number
formats and the table helper, and splitting them by table would scatter one output format
over several modules.
"""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any

from csc_jax.benchmarking.profile import FAMILY_NOTES
from csc_jax.benchmarking.roofline import against_peak
from csc_jax.benchmarking.settings import BackboneShapes, BenchSettings
from csc_jax.benchmarking.train_step import frontend_ratios
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
        "roofline": None,
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
        "step", "front end", "input", "parallel", "dtype", "B", "K", "seg (s)", "compile (s)",
        "median ms (min-max)", "examples/s", "audio s/s", "audio s/s/dev", "trunk audio s/s",
        "GFLOP/step", "GFLOP/s", "util.", "XLA temp",
    )  # fmt: skip
    rows = []
    for r in steps:
        tp = r["throughput"]
        rows.append(
            [
                f"CSC {r['method']}",
                r.get("frontend", "waveform"),
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
        "JAX audio s/s", "PyTorch audio s/s", "rounds", "PyTorch", "PyTorch's malloc (mapped)",
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
            c.get("pytorch_allocator", "not recorded"),
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


def _cpu_cells(cpu: dict[str, Any] | None) -> list[str]:
    """user ms, kernel ms, kernel %, minor faults per step (``timing.cpu_per_step``); kernel %
    and faults as 'median step (mean over the timed steps)' where the median is known."""
    if not cpu:
        return ["n/a"] * 4
    kernel = _fmt(cpu["kernel_fraction"], 100)
    faults = f"{cpu['minor_faults_per_step']:.0f}"
    if "kernel_fraction_median_step" in cpu:
        kernel = f"{_fmt(cpu['kernel_fraction_median_step'], 100)} ({kernel})"
        faults = f"{cpu['minor_faults_median_step']:.0f} ({faults})"
    return [
        f"{cpu['user_s_per_step'] * 1e3:.1f}",
        f"{cpu['kernel_s_per_step'] * 1e3:.1f}",
        kernel,
        faults,
    ]


def _peak_line(roofline: dict[str, Any]) -> str:
    stream = roofline["stream"]
    peaks = "; ".join(
        f"{d} {p['gflop_per_s']:.1f} GFLOP/s (n={p['n']})"
        + (
            f", {p['gflop_per_cpu_s']:.1f} GFLOP per CPU second (n={p['n_cpu']})"
            if p.get("gflop_per_cpu_s")
            else ""
        )
        for d, p in roofline["matmul_peak"].items()
    )
    ridge = ", ".join(
        f"{d} {p['gflop_per_s'] / stream['gb_per_s']:.1f}"
        for d, p in roofline["matmul_peak"].items()
    )
    return (
        f"Matmul peak (best size): {peaks}. Memory bandwidth: {stream['gb_per_s']:.1f} GB/s "
        f"(in-place axpy over 2 x {stream['mib_per_array']} MiB float32). Ridge point (FLOP per "
        f"byte above which a kernel can be compute-bound): {ridge}."
    )


def _roofline(roofline: dict[str, Any], env: dict[str, Any]) -> list[str]:
    """The machine's roofline (``roofline.measure_roofline``): one row per probe."""
    header = (
        "roofline probe", "size", "dtype", "median ms (min-max)", "rate", "rate per CPU s",
        "user ms/call", "kernel ms/call", "kernel % median call (mean)",
        "minor faults median call (mean)",
    )  # fmt: skip
    rows = [
        [
            "matmul (n, n) @ (n, n)",
            f"n={r['n']}",
            r["dtype"],
            _ms_range(r["step_time_s"], digits=2),
            f"{r['gflop_per_s']:.1f} GFLOP/s",
            f"{_fmt(r.get('gflop_per_cpu_s'))} GFLOP",
            *_cpu_cells(r["cpu"]),
        ]
        for r in roofline["matmul"]
    ]
    s = roofline["stream"]
    cpu_s = s["cpu"]["user_s_per_step"] + s["cpu"]["kernel_s_per_step"]
    rows.append(
        [
            "stream: y <- a x + y in place",
            f"2 x {s['mib_per_array']} MiB",
            "float32",
            _ms_range(s["step_time_s"], digits=2),
            f"{s['gb_per_s']:.1f} GB/s",
            f"{s['bytes_per_call'] / cpu_s / 1e9:.1f} GB" if cpu_s > 0 else "n/a",
            *_cpu_cells(s["cpu"]),
        ]
    )
    return [
        "Roofline, measured in this process before the model figures (warm-up, "
        "block_until_ready, median of the timed calls); host allocator: "
        f"{env.get('allocator', 'unknown')}.",
        "",
        markdown_table(header, rows),
        "",
        _peak_line(roofline),
        "",
    ]


def _measurement_name(r: dict[str, Any]) -> str:
    if r["kind"] in ("train", "pipeline"):
        where = "pipeline" if r["kind"] == "pipeline" else "device"
        return (
            f"CSC {r['method']} step ({where}, {r['parallel']}, B={r['batch_size']} "
            f"K={r['num_conditions']} {r['segment_seconds']:g} s)"
        )
    if r["kind"] == "backbone":
        return f"backbone {r['shapes']['name']}"
    return f"loss {r.get('name', '?')}"


def _against_roofline(results: list[dict[str, Any]], roofline: dict | None) -> list[str]:
    """Every measured step: achieved FLOP/s against the matmul peak, and its CPU accounting."""
    header = (
        "measurement", "dtype", "median ms (min-max)", "GFLOP/step", "GFLOP/s",
        "% of matmul peak", "GFLOP per CPU s", "% of matmul per CPU s", "user ms/step",
        "kernel ms/step", "kernel % median step (mean)", "minor faults median step (mean)",
    )  # fmt: skip
    rows = []
    for r in (r for r in results if "step_time_s" in r):  # memory results are not timed
        ap = against_peak(r, roofline)
        rows.append(
            [
                _measurement_name(r),
                r.get("dtype", "float32"),
                _ms_range(r["step_time_s"]),
                _fmt(r.get("flops_per_step"), 1e-9),
                _fmt(ap["achieved_gflop_per_s"]),
                _fmt(ap["fraction_of_matmul_peak"], 100),
                _fmt(ap["achieved_gflop_per_cpu_s"]),
                _fmt(ap["fraction_of_matmul_cpu_rate"], 100),
                *_cpu_cells(r.get("cpu")),
            ]
        )
    note = (
        "GFLOP/step: XLA cost analysis of the compiled step (elementwise work included); "
        "% of matmul peak: its GFLOP/s over the roofline's matmul peak of the same dtype"
        + ("" if roofline else " (not measured in this run: n/a)")
        + "; per CPU s: GFLOP over the process's user + kernel CPU seconds, against the "
        "matmul's best such rate (what the cores did while they ran; less sensitive to the "
        "load of a shared machine than the wall-clock rate); CPU times and minor page faults "
        "are this process's (all threads) per timed step (n/a: not recorded)."
    )
    return [markdown_table(header, rows), "", note, ""]


def _op_families(name: str, prof: dict[str, Any], roofline: dict | None) -> list[str]:
    """A profile's op time per op family (``profile.op_family``), with a total row."""
    if "error" in prof or "by_family" not in prof:
        return []
    peak = ((roofline or {}).get("matmul_peak") or {}).get("float32")
    bandwidth = (roofline or {}).get("stream", {}).get("gb_per_s")
    timed = prof.get("timed_ms_per_step")
    total = ["total", prof["op_ms_per_step"], 1.0, prof["matmul_gflop_per_step"]]
    total.append(prof["gb_moved_per_step"])

    def of(rate, ceiling):
        return "n/a" if rate is None or not ceiling else f"{rate / ceiling:.1%}"

    rows = []
    for family, ms, share, gflop, gb in [*prof["by_family"], total]:
        rate = gflop / (ms / 1e3) if ms > 0 and gflop > 0 else None
        speed = gb / (ms / 1e3) if ms > 0 and gb > 0 else None
        rows.append(
            [
                family,
                f"{ms:.1f}",
                f"{share:.1%}",
                "n/a" if timed is None else f"{share * timed:.1f}",
                f"{gflop:.2f}",
                _fmt(rate),
                of(rate, peak and peak["gflop_per_s"]),
                f"{gb:.2f}",
                _fmt(speed),
                of(speed, bandwidth),
            ]
        )
    header = (
        "op family", "ms/step (traced)", "share", "~ms of the timed step", "matmul GFLOP/step",
        "matmul GFLOP/s (traced)", "of float32 matmul peak", "GB moved/step",
        "GB/s (traced)", "of stream GB/s",
    )  # fmt: skip
    notes = "; ".join(f"{k}: {v}" for k, v in FAMILY_NOTES.items())
    return [
        f"Op families of {name}: exclusive XLA op time per step under the profiler, summed "
        "over XLA's threads; ~ms of the timed step = share x the step's median without the "
        "profiler; matmul GFLOP counts the dots of each family only; GB moved = the operands "
        "and outputs of its executed ops (a lower bound of its memory traffic).",
        "",
        markdown_table(header, rows),
        "",
        f"Families: {notes}.",
        "",
    ]


def _frontend_ratios(steps: list[dict[str, Any]]) -> list[str]:
    pairs = frontend_ratios(steps)
    if not pairs:
        return []
    header = ("round", "parallel", "dtype", "B", "K", "seg (s)", "waveform audio s/s",
              "stft audio s/s", "stft / waveform")  # fmt: skip
    rows = [
        [
            p["round"] + 1,
            p["parallel"],
            p["dtype"],
            p["batch_size"],
            p["num_conditions"],
            f"{p['segment_seconds']:g}",
            f"{p['waveform_audio_s_per_s']:.1f}",
            f"{p['stft_audio_s_per_s']:.1f}",
            f"{p['ratio']:.2f}x",
        ]
        for p in pairs
    ]
    return [
        "Front ends side by side (same process, alternating):",
        "",
        markdown_table(header, rows),
        "",
    ]


def markdown(report: dict[str, Any]) -> str:
    """Markdown tables of a report (what benchmark.py prints)."""
    lines = [_environment_line(report["environment"]), ""]
    results = report["results"]
    roofline = report.get("roofline")
    if roofline:
        lines += _roofline(roofline, report["environment"])
    if results:
        lines += _against_roofline(results, roofline)
    steps = [r for r in results if r["kind"] in ("train", "pipeline")]
    if steps:
        lines += _train_steps(steps)
        lines += _frontend_ratios(steps)
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
        lines += _op_families(name, prof, roofline)
    lines.append(f"Total wall time {report.get('total_wall_s', float('nan')):.0f} s.")
    return "\n".join(lines)
