"""The benchmark report's markdown tables and its JSON file (on a hand-made report; the
complete report of a real run is checked in test_benchmark.py)."""

import json

import numpy as np

from csc_jax.benchmarking import report as rep
from csc_jax.benchmarking.profile import FAMILIES
from csc_jax.benchmarking.train_step import frontend_ratios

ENV = {
    "device_kind": "cpu", "num_devices": 1, "backend": "cpu", "cpu": "Test CPU", "cores": 4,
    "usable_cores": 2, "load_average": [1.0, 2.0, 3.0], "load_average_after": [1.5, 2.0, 3.0],
    "jax": "0.1", "jaxlib": "0.2", "flax": "0.3",
}  # fmt: skip
STATS = {"median": 0.002, "min": 0.001, "max": 0.004, "n": 3}


def _report():
    return {
        "environment": ENV,
        "results": [
            {
                "kind": "loss",
                "name": "si_snr",
                "reads": "x vs y",
                "dtype": "float32",
                "compile": {"lower_plus_compile_s": 0.5},
                "step_time_s": STATS,
                "flops_per_step": None,
            }
        ],
        "pipeline_alone": {
            "source": "synthetic",
            "num_workers": 0,
            "batch_size": 4,
            "num_conditions": 2,
            "segment_seconds": 0.1,
            "crops_per_s": 1000.4,
            "batches_per_s": 62.5,
            "mixture_audio_s_per_s": 50.0,
        },
        "pytorch_comparison": [],
        "profiles": {
            "csc_step": {"error": "cannot read the trace in t: x"},
            "backbone_demo": {
                "wall_ms_per_step": 20.0,
                "op_ms_per_step": 10.0,
                "dot_share": 0.5,
                "by_layer": [["trunk/Dense bwd", 6.0, 0.6], ["(model, top level)/- fwd", 4.0, 0.4]],
                "trace_dir": "t",
            },
        },
        "total_wall_s": 12.3,
    }


def test_markdown_tables():
    text = rep.markdown(_report())
    lines = text.splitlines()
    assert lines[0] == (
        "Device: cpu x 1 (cpu); CPU Test CPU, 4 cores (2 usable by this process); load average "
        "1.00, 2.00, 3.00 (before), 1.50, 2.00, 3.00 (after); jax 0.1, jaxlib 0.2, flax 0.3."
    )
    assert "| synthetic | 0 | 4 | 2 | 0.1 | 1000 | 62.5 | 50.0 |" in lines
    assert "| si_snr | x vs y | float32 | 0.50 | 2.00 (1.00-4.00) | n/a |" in lines
    assert "Profile csc_step: cannot read the trace in t: x" in lines
    assert "| trunk/Dense | bwd | 6.0 | 60.0% |" in lines
    assert "| (model, top level) | fwd | 4.0 | 40.0% |" in lines  # '/-' (no layer) dropped
    assert lines[-1] == "Total wall time 12 s."
    # No roofline measured: the steps' table says so, and CPU figures not recorded are n/a.
    na = " | ".join(["n/a"] * 9)
    assert f"| loss si_snr | float32 | 2.0 (1.0-4.0) | {na} |" in lines
    _check_tables(lines, 4)


def _check_tables(lines, count):
    """Every table (csc_jax.io_utils.markdown_table): a rule under the header, equal widths."""
    tables = [i for i, line in enumerate(lines) if line.startswith("|---")]
    assert len(tables) == count
    for i in tables:
        width = lines[i].count("|")
        assert lines[i - 1].count("|") == width
        j = i + 1
        while j < len(lines) and lines[j].startswith("| "):
            assert lines[j].count("|") == width, lines[j]
            j += 1
        assert j > i + 1  # at least one row


def test_roofline_against_peak_and_op_family_tables():
    cpu = {"user_s_per_step": 0.2, "kernel_s_per_step": 0.05, "kernel_fraction": 0.2,
           "minor_faults_per_step": 1234.0}  # fmt: skip
    # A step row also has the median step's share (the steady state): shown first.
    step_cpu = dict(cpu, kernel_fraction_median_step=0.01, minor_faults_median_step=12.0)
    probe = {"step_time_s": STATS, "cpu": cpu}
    report = _report()
    report["environment"] = dict(ENV, allocator="glibc tuned (in force): X")
    report["roofline"] = {
        "matmul": [dict(probe, n=512, dtype="float32", gflop_per_s=80.0, gflop_per_cpu_s=40.0)],
        "matmul_peak": {
            "float32": {"gflop_per_s": 80.0, "n": 512, "gflop_per_cpu_s": 40.0, "n_cpu": 512}
        },
        "stream": dict(probe, mib_per_array=128, gb_per_s=20.0, bytes_per_call=0.5e9),
    }
    report["results"].append(
        dict(
            report["results"][0],
            name="csc_loss",
            step_time_s={"median": 0.5, "min": 0.4, "max": 0.6, "n": 3},
            flops_per_step=10e9,
            cpu=step_cpu,  # recorded for train, pipeline and backbone steps
        )
    )
    families = [[f, 0.0, 0.0, 0.0, 0.0] for f in FAMILIES]
    families[0] = ["1x1 Dense", 6.0, 0.6, 0.24, 0.03]
    families[-1] = ["other", 4.0, 0.4, 0.0, 0.04]
    report["profiles"]["backbone_demo"].update(
        by_family=families,
        matmul_gflop_per_step=0.24,
        gb_moved_per_step=0.07,
        timed_ms_per_step=500.0,
    )
    lines = rep.markdown(report).splitlines()
    # The roofline first, with the allocator that was in force.
    assert (
        lines[2].startswith("Roofline, measured in this process")
        and "tuned (in force)" in (lines[2])
    )
    assert (
        "| matmul (n, n) @ (n, n) | n=512 | float32 | 2.00 (1.00-4.00) | 80.0 GFLOP/s | "
        "40.0 GFLOP | 200.0 | 50.0 | 20.0 | 1234 |" in lines
    )
    assert any(
        line.startswith("| stream: y <- a x + y in place | 2 x 128 MiB |") and "| 2.0 GB |" in line
        for line in lines
    )  # 0.5 GB per call over 0.25 CPU s
    assert any(
        "float32 80.0 GFLOP/s (n=512), 40.0 GFLOP per CPU second (n=512)" in line
        and "20.0 GB/s" in line
        for line in lines
    )
    # Each step against the peak: 10 GFLOP in 0.5 s = 20 GFLOP/s = 25% of 80; in 0.25 CPU s
    # = 40 GFLOP per CPU s = 100% of the matmul's 40.
    assert (
        "| loss csc_loss | float32 | 500.0 (400.0-600.0) | 10.0 | 20.0 | 25.0 | 40.0 | 100.0 | "
        "200.0 | 50.0 | 1.0 (20.0) | 12 (1234) |" in lines
    )
    # Op families: ms, share, share x the timed 500 ms, matmul GFLOP and rate vs the peak,
    # GB moved and rate vs the stream bandwidth (20 GB/s).
    assert "| 1x1 Dense | 6.0 | 60.0% | 300.0 | 0.24 | 40.0 | 50.0% | 0.03 | 5.0 | 25.0% |" in lines
    assert "| depthwise conv | 0.0 | 0.0% | 0.0 | 0.00 | n/a | n/a | 0.00 | n/a | n/a |" in lines
    assert "| total | 10.0 | 100.0% | 500.0 | 0.24 | 24.0 | 30.0% | 0.07 | 7.0 | 35.0% |" in lines
    assert any(line.startswith("Families: 1x1 Dense: ") for line in lines)
    _check_tables(lines, 6)  # roofline, against it, pipeline, losses, per layer, families


def test_write_report_creates_the_folder_and_serialises_numpy(tmp_path):
    path = tmp_path / "new" / "bench.json"
    report = {"results": [{"value": np.float32(1.5), "n": np.int64(3), "shape": (2, 3)}]}
    rep.write_report(report, str(path))
    assert json.loads(path.read_text()) == {"results": [{"value": 1.5, "n": 3, "shape": [2, 3]}]}
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]  # no temporary left


def test_summary_line():
    result = {
        "step_time_s": STATS,
        "throughput": {"audio_s_per_s": 40.04},
        "compile": {"lower_plus_compile_s": 3.21},
    }
    assert rep.summary_line(result) == (
        "median 2.0 ms/step (min 1.0, max 4.0), 40.0 audio s/s, compile 3.2 s"
    )


def test_frontend_ratios_pair_the_two_front_ends_of_the_same_round_and_settings():
    def step(frontend, round_, rate, batch=8):
        return {
            "kind": "train",
            "frontend": frontend,
            "round": round_,
            "parallel": "sharding",
            "dtype": "float32",
            "batch_size": batch,
            "num_conditions": 3,
            "segment_seconds": 1.0,
            "throughput": {"audio_s_per_s": rate},
        }

    steps = [
        step("waveform", 0, 25.0),
        step("stft", 0, 130.0),
        step("waveform", 1, 20.0),
        step("stft", 1, 120.0),
        step("stft", 1, 99.0, batch=4),  # no waveform partner: no pair
    ]
    pairs = frontend_ratios(steps)
    assert [(p["round"], p["ratio"]) for p in pairs] == [(0, 5.2), (1, 6.0)]
    text = "\n".join(rep._frontend_ratios(steps))
    assert "5.20x" in text and "6.00x" in text and "stft / waveform" in text
