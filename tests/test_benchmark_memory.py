"""benchmark.py --mode=memory: the train step compiled, not run, on the tiny config."""

import json
import os
import subprocess
import sys

import jax
import pytest
from _train_worker import subprocess_env
from conftest import make_tiny_config

from csc_jax import benchmarking as bm
from csc_jax.benchmarking import memory
from csc_jax.config import ConfigError, load_config_file
from csc_jax.training import setup

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    # Compiled in a child process with the fast-compile flags (LLVM code generation, not
    # the HLO buffer assignment that memory_analysis reports, is most of the compile time).
    # Two repeats of two blocks, so the TCN's activations are most of the step's temporaries
    # and its scans run more than one iteration.
    root = tmp_path_factory.mktemp("memory")
    out = root / "report.json"
    code = f"""
import sys
sys.path.insert(0, {TESTS_DIR!r})
from _train_worker import subprocess_env
from conftest import make_tiny_config
from csc_jax import benchmarking as bm
from csc_jax.io_utils import atomic_write_json
config = make_tiny_config({str(root)!r}, **{{"model.repeats": 2, "model.hidden": 64}})
settings = bm.BenchSettings(
    modes=("memory",), batch_sizes=(4, 8), segment_seconds=(0.1,), remat=("none", "block")
)
atomic_write_json({str(out)!r}, bm.run(config, settings, log=lambda _: None))
"""
    env = subprocess_env(fast_compile=True)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def _by(report, b, remat):
    (r,) = [x for x in report["results"] if x["batch_size"] == b and x["remat"] == remat]
    return r


def test_memory_mode_reports_every_step_it_compiles(report):
    assert [(r["batch_size"], r["remat"]) for r in report["results"]] == [
        (4, "none"),
        (4, "block"),
        (8, "none"),
        (8, "block"),
    ]
    for r in report["results"]:
        assert r["kind"] == "memory" and r["backend"] == "cpu"
        m = r["memory"]
        assert m["available"] and m["temp_size_in_bytes"] > 0
        assert m["total_bytes"] >= m["temp_size_in_bytes"]
        assert r["flops_per_step_per_device"] > 0
        assert r["trunk_waveforms"] == 3 * r["batch_size"] * 2  # 'components': 3 passes, K=2


def test_temporaries_grow_with_the_batch(report):
    for remat in ("none", "block"):
        small, big = _by(report, 4, remat), _by(report, 8, remat)
        assert big["memory"]["temp_size_in_bytes"] > small["memory"]["temp_size_in_bytes"]


def test_remat_lowers_the_temporaries_and_costs_flops(report):
    for b in (4, 8):
        none, block = _by(report, b, "none"), _by(report, b, "block")
        assert block["memory"]["temp_size_in_bytes"] < 0.75 * none["memory"]["temp_size_in_bytes"]
        assert none["flop_overhead"] == 0.0
        # The recomputed forward pass is counted (the loop unrolled for the count).
        assert block["flop_overhead"] > 0.0


def test_markdown_has_the_memory_table(report):
    text = bm.markdown(report)
    assert "temporaries (GiB)" in text and "FLOP overhead" in text
    assert "block (nothing)" in text and "compiled (not run) on cpu" in text


def test_abstract_inputs_allocate_nothing(tmp_path):
    config = make_tiny_config(tmp_path)
    program = setup.build(config, devices=jax.local_devices()[:1], with_data=False)
    state, batch = memory.abstract_step_inputs(program)
    leaves = jax.tree.leaves((state, batch))
    assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)
    assert batch["target"].shape == (4, 2, 800)


def test_flop_overhead_is_none_without_a_reference():
    rows = [
        {
            "parallel": "sharding",
            "dtype": "float32",
            "batch_size": 4,
            "segment_seconds": 1.0,
            "remat": "block",
            "flops_per_step_per_device": 10.0,
        }
    ]
    memory.flop_overhead(rows)
    assert rows[0]["flop_overhead"] is None


def test_settings_take_remat_from_the_preset_and_flags():
    preset = load_config_file(os.path.join(REPO, "configs", "benchmark.py:gpu"))
    settings = bm.settings_from_preset(preset, mode="memory")
    assert settings.modes == ("memory",) and settings.remat == ("none", "block")
    settings = bm.settings_from_preset(preset, mode="memory", remat=["repeat"])
    assert settings.remat == ("repeat",)
    settings.validate()
    with pytest.raises(ConfigError, match="remat"):
        bm.BenchSettings(modes=("memory",), remat=("layer",)).validate()
    assert "memory" not in bm.settings_from_preset(preset, mode="all").modes
