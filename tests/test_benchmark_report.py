"""The benchmark report's markdown tables and its JSON file (on a hand-made report; the
complete report of a real run is checked in test_benchmark.py)."""

import json

import numpy as np

from csc_jax.benchmarking import report as rep

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
    # Every table (csc_jax.io_utils.markdown_table): a rule under the header, equal widths.
    tables = [i for i, line in enumerate(lines) if line.startswith("|---")]
    assert len(tables) == 3
    for i in tables:
        width = lines[i].count("|")
        assert lines[i - 1].count("|") == width
        j = i + 1
        while j < len(lines) and lines[j].startswith("| "):
            assert lines[j].count("|") == width, lines[j]
            j += 1
        assert j > i + 1  # at least one row


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
