"""Throughput benchmark end to end: a smoke run on the tiny config (fields and types, not
speed) with the PyTorch comparison against a stand-in interpreter (torch is not a dependency of
csc-jax), and the benchmark.py command line. The parts have their own tests:
test_benchmark_{settings,timing,losses,profile,pytorch,report}.py and test_convtasnet.py."""

import json
import math
import os
import subprocess
import sys

import pytest
from _train_worker import subprocess_env
from conftest import make_tiny_config

from csc_jax import benchmarking as bm

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS_DIR)


def _tiny_backbone(config) -> bm.BackboneShapes:
    return bm.backbone_shapes_from_experiment(config, "demo")


def _fake_pytorch(tmp_path, median_s: float) -> str:
    """An executable that answers like scripts/pytorch_convtasnet_baseline.py (fixed JSON).

    It stands in for the torch interpreter so the comparison plumbing (subprocess, parsing,
    ratios) is tested without torch; the numbers it prints are the test's, not a measurement.
    """
    payload = {
        "implementation": "stand-in",
        "torch": "none",
        "num_params": 1,
        "flops_forward": 1000,
        "step_time_s": {"median": median_s, "min": median_s, "max": median_s, "n": 1},
    }
    path = tmp_path / "fake_python"
    path.write_text(f"#!/bin/sh\necho 'ignored line'\necho '{json.dumps(payload)}'\n")
    path.chmod(0o755)
    return str(path)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def test_smoke_run_writes_complete_report(shared_cache, tmp_path):
    # Run in a child process with the fast-compile flags: the smoke run compiles a dozen
    # programs (both parallel modes, backbone, losses, profile) whose speed it does not check.
    out, log = tmp_path / "bench.json", tmp_path / "log.txt"
    code = f"""
import sys
sys.path.insert(0, {TESTS_DIR!r})
from conftest import make_tiny_config
from test_benchmark import _fake_pytorch, _tiny_backbone
from pathlib import Path
from csc_jax import benchmarking as bm
tmp_path = Path({str(tmp_path)!r})
config = make_tiny_config({str(shared_cache)!r})
settings = bm.BenchSettings(
    modes=bm.MODES,
    parallel=("sharding", "pmap"),
    dtypes=("float32",),
    steps=2,
    warmup=1,
    pipeline_batches=2,
    backbone=(_tiny_backbone(config),),
    pytorch_python=_fake_pytorch(tmp_path, 0.5),
    pytorch_rounds=2,
    profile_dir=str(tmp_path / "profile"),
    profile_steps=1,
    loss_shape=(4, 2, 800),
    roofline_matmul_sizes=(16, 32),
    roofline_stream_mib=1,
)
logged = []
report = bm.run(config, settings, log=logged.append)
bm.write_report(report, {str(out)!r})
Path({str(log)!r}).write_text("\\n".join(logged))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=subprocess_env(fast_compile=True),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())  # what a reader of the file sees
    logged = log.read_text().splitlines()

    env = report["environment"]  # csc_jax.io_utils.machine_info()
    for key in ("jax", "jaxlib", "flax", "optax", "numpy", "device_kind", "backend", "cpu"):
        assert isinstance(env[key], str) and env[key]
    assert env["num_devices"] >= 1 and len(env["load_average"]) == 3
    assert len(env["load_average_after"]) == 3
    assert env["cpu_affinity"] and all(isinstance(c, int) for c in env["cpu_affinity"])
    assert env["usable_cores"] == len(env["cpu_affinity"]) and env["cores"] >= 1
    assert report["experiment_config"]["model"]["enc_filters"] == 16

    roof = report["roofline"]  # measured first, in the same process (test_benchmark_roofline.py)
    assert roof["matmul_peak"]["float32"]["n"] in (16, 32) and roof["stream"]["gb_per_s"] > 0
    peak = roof["matmul_peak"]["float32"]["gflop_per_s"]
    for r in report["results"]:
        ap = r["roofline"]  # every step against the matmul peak
        assert ap["matmul_peak_gflop_per_s"] == peak
        assert ap["fraction_of_matmul_peak"] == pytest.approx(ap["achieved_gflop_per_s"] / peak)
    cpu_keys = {
    "user_s_per_step", "kernel_s_per_step", "kernel_fraction", "minor_faults_per_step",
    "kernel_fraction_median_step", "minor_faults_median_step",
}  # fmt: skip
    for r in report["results"][:4]:  # train .. backbone: CPU time, so a rate per CPU second
        assert set(r["cpu"]) == cpu_keys and r["roofline"]["achieved_gflop_per_cpu_s"] > 0

    kinds = [r["kind"] for r in report["results"]]
    assert kinds == ["train", "train", "pipeline", "backbone"] + ["loss"] * 5
    for r in report["results"][:4]:
        st = r["step_time_s"]
        assert st["n"] == 2
        assert 0 < st["min"] <= st["median"] <= st["max"]
        for key in ("lower_s", "compile_s", "lower_plus_compile_s", "first_step_s"):
            assert _is_number(r["compile"][key]) and r["compile"][key] >= 0
        assert _is_number(r["flops_per_step"]) and r["flops_per_step"] > 0  # XLA:CPU counts
        tp = r["throughput"]
        for key in ("steps_per_s", "examples_per_s", "audio_s_per_s", "achieved_flops_per_s"):
            assert _is_number(tp[key]) and tp[key] > 0
        assert tp["audio_s_per_s"] == pytest.approx(r["audio_s_per_step"] / st["median"])
        assert tp["utilisation"] is None and tp["peak_device"] == "unknown"  # CPU
        assert r["memory"]["device"]["peak_bytes_in_use"] == "n/a"  # CPU: no memory_stats
        assert r["memory"]["compiled"]["available"] in (True, False)
    for r in report["results"][:3]:
        assert [r["batch_size"], r["num_conditions"]] == [4, 2]
        assert r["audio_s_per_step"] == pytest.approx(4 * 2 * 0.1)
        assert r["mixtures_per_step"] == 8
        passes = 3 if r["stream_weights"] == "components" else 1  # 2 component passes each
        assert r["trunk_audio_s_per_step"] == pytest.approx(passes * 4 * 2 * 0.1)
        assert r["throughput"]["trunk_audio_s_per_s"] == pytest.approx(
            r["trunk_audio_s_per_step"] / r["step_time_s"]["median"]
        )
        assert r["first_loss_finite"] is True
    assert {r["parallel"] for r in report["results"][:2]} == {"sharding", "pmap"}
    backbone = report["results"][3]
    assert backbone["num_params"] > 0 and _is_number(backbone["flops_forward"])
    assert math.isfinite(backbone["first_loss"]) and math.isfinite(backbone["last_loss"])

    pa = report["pipeline_alone"]
    assert pa["crops_per_s"] > 0 and pa["crops_per_batch"] == 2 * 4 * 2
    assert pa["batches_per_s"] == pytest.approx(pa["crops_per_s"] / 16)
    assert pa["setup_s"] > 0

    (cmp_,) = report["pytorch_comparison"]
    assert len(cmp_["rounds"]) == 2 and cmp_["pytorch_median_s"] == 0.5
    assert cmp_["jax_over_pytorch_step_time"] == pytest.approx(cmp_["jax_median_s"] / 0.5)
    # The tiny experiment's mixtures have the backbone's shapes, so the CSC step is compared.
    audio = 4 * 2 * 0.1
    assert cmp_["csc_over_pytorch_audio_throughput"] == pytest.approx(
        (audio / cmp_["csc_median_s"]) / (audio / 0.5)
    )

    profiles = report["profiles"]
    assert set(profiles) == {"csc_step", "backbone_demo"}
    for name, part in (("csc_step", "trunk"), ("backbone_demo", "SeparatorTrunk")):
        prof = profiles[name]
        assert "error" not in prof, prof
        assert prof["op_ms_per_step"] > 0 and 0 <= prof["dot_share"] <= 1
        parts = {row[0] for row in prof["by_part"]}
        assert part in parts, parts
        assert sum(row[2] for row in prof["by_layer"]) == pytest.approx(1.0)
        # Op families (test_benchmark_profile.py): they add up to the op total.
        assert sum(row[1] for row in prof["by_family"]) == pytest.approx(prof["op_ms_per_step"])
        assert prof["timed_ms_per_step"] > 0
    # The CSC step's real op names land in their families: every family of the step has time.
    csc = {row[0]: row[1] for row in profiles["csc_step"]["by_family"]}
    for family in ("1x1 Dense", "depthwise conv", "gLN", "framing / overlap-add", "attention",
                   "loss", "mixing", "optimizer"):  # fmt: skip
        assert csc[family] > 0, (family, csc)
    for _, family, op_name, *_ in profiles["csc_step"]["top_ops"]:
        for scope, expected in (("DepthwiseConv1D", "depthwise conv"), ("GlobalLayerNorm", "gLN"),
                                ("/attention/", "attention"), ("mix_", "mixing")):  # fmt: skip
            if scope in op_name:
                assert family == expected, (op_name, family)

    names = [r["name"] for r in report["results"][4:]]
    assert names == ["si_snr", "pit_si_snr_loss", "csc_loss", "nt_xent", "cross_attention_pool"]
    table = bm.markdown(report)
    assert "| loss (value + grad, jit) |" in table and "| pit_si_snr_loss |" in table
    assert "| CSC csc | waveform | device | sharding |" in table
    assert "| CSC csc | waveform | pipeline |" in table
    assert "input pipeline alone" in table and "JAX / PyTorch step time" in table
    assert table.splitlines()[2].startswith("Roofline, measured in this process")
    assert "| % of matmul peak |" in table and "| op family |" in table
    assert any("crops/s" in line for line in logged)


def test_cli_writes_json_and_table(shared_cache, tmp_path):
    config = make_tiny_config(shared_cache)
    preset = tmp_path / "tiny_benchmark.py"
    preset.write_text(
        "import json\nimport ml_collections\n"
        "from configs.benchmark import get_config as preset\n\n"
        "def get_config():\n    c = preset()\n"
        f"    c.experiment = ml_collections.ConfigDict(json.loads({json.dumps(json.dumps(config.to_dict()))}))\n"  # noqa: E501
        "    return c\n"
    )
    out = tmp_path / "cli.json"
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, os.path.join(REPO, "benchmark.py"), f"--config={preset}"]
    cmd += ["--mode=backbone", "--backbone=demo", "--steps=1", "--warmup=0", f"--out={out}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    (r,) = report["results"]
    assert r["kind"] == "backbone" and r["shapes"]["enc_filters"] == 16
    assert r["shapes"]["batch_size"] == 4 * 2  # demo backbone batch = B * K
    assert "| backbone | shapes |" in proc.stdout

    loss_run = subprocess.run(
        cmd[:3] + ["--mode=losses", "--steps=1", "--warmup=0", f"--out={out}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loss_run.returncode == 0, loss_run.stderr[-3000:]
    assert "| csc_loss | global vectors (16, K=2, D=32000)" in loss_run.stdout
    assert [r["kind"] for r in json.loads(out.read_text())["results"]] == ["loss"] * 5

    # Invalid settings, flags or overrides: one 'error:' line, exit status 2, no traceback.
    for flag, named in (
        ("--mode=nonsense", "nonsense"),
        ("--backbone=nonsense", "nonsense"),
        ("--config.experiment.data.nonsense=1", "data.nonsense"),
        ("--cpus=nonsense", "--cpus=nonsense"),
    ):
        bad = subprocess.run(
            cmd[:3] + [flag, f"--out={out}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert bad.returncode == 2, (flag, bad.stderr[-3000:])
        last = bad.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and named in last, (flag, bad.stderr)
        assert "Traceback" not in bad.stderr, bad.stderr


def test_pytorch_comparison_uses_the_waveform_step_when_the_default_is_stft(
    shared_cache, tmp_path, monkeypatch
):
    """Conv-TasNet's shapes are the waveform front end's: with an 'stft' experiment the CSC
    step held against PyTorch is the waveform step, not the experiment's own."""
    import csc_jax.benchmarking as bench_pkg

    config = make_tiny_config(shared_cache)
    config.model.frontend = "stft"
    config.data.sample_rate = 16000
    settings = bm.BenchSettings(
        modes=("train", "backbone"),
        backbone=(_tiny_backbone(config),),
        pytorch_python=_fake_pytorch(tmp_path, 0.5),
    )
    run = bench_pkg._Run(config, settings, log=lambda *_: None)
    asked = []
    monkeypatch.setattr(
        run, "train_step", lambda key, frontend=None, **kw: asked.append(frontend) or ("r", "t")
    )
    seen = []
    row = {"pytorch_impl": "x", "pytorch_median_s": 1.0, "jax_median_s": 1.0}
    row["jax_over_pytorch_step_time"] = 1.0

    def fake_compare(shapes, s, kept, csc):
        seen.append(csc)
        return row

    monkeypatch.setattr(bench_pkg, "compare_with_pytorch", fake_compare)
    run.compare(settings.backbone[0], ({}, None))
    assert asked == ["waveform"] and seen == [("r", "t")]
