"""Throughput benchmark: a smoke run on the tiny config (fields and types, not speed), the
CLI, the pure helpers, and the PyTorch-baseline plumbing (with a stand-in interpreter; torch is
not a dependency of csc-jax)."""

import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys

import jax
import pytest
from conftest import make_tiny_config

from csc_jax import benchmarking as bm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    config = make_tiny_config(shared_cache)
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
    )
    logged = []
    report = bm.run(config, settings, log=logged.append)
    out = tmp_path / "bench.json"
    bm.write_report(report, str(out))
    report = json.loads(out.read_text())  # what a reader of the file sees

    env = report["environment"]
    for key in ("jax", "jaxlib", "flax", "device_kind", "backend", "cpu_model"):
        assert isinstance(env[key], str) and env[key]
    assert env["num_devices"] >= 1 and len(env["load_average"]) == 3
    assert env["cpu_affinity"] and all(isinstance(c, int) for c in env["cpu_affinity"])
    assert report["experiment_config"]["model"]["enc_filters"] == 16

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

    names = [r["name"] for r in report["results"][4:]]
    assert names == ["si_snr", "pit_si_snr_loss", "csc_loss", "nt_xent", "cross_attention_pool"]
    table = bm.markdown(report)
    assert "| loss (value + grad, jit) |" in table and "| pit_si_snr_loss |" in table
    assert "| CSC csc | device | sharding |" in table and "| CSC csc | pipeline |" in table
    assert "input pipeline alone" in table and "JAX / PyTorch step time" in table
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

    bad = subprocess.run(
        cmd[:3] + ["--mode=nonsense", f"--out={out}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "nonsense" in bad.stderr


def test_losses_value_and_grad_at_the_issue_shape():
    """Every loss compiles with its gradient on a (16, 2, 32000) batch on CPU (time reported
    by benchmark.py --mode=losses, not asserted here)."""
    rows = bm.bench_losses((16, 2, 32000), steps=1, warmup=0)
    assert [r["name"] for r in rows] == list(bm._loss_cases((16, 2, 32000)))
    for r in rows:
        assert r["shape"] == [16, 2, 32000] and math.isfinite(r["value"])
        assert r["step_time_s"]["n"] == 1 and r["step_time_s"]["median"] > 0
    by_name = {r["name"]: r["value"] for r in rows}
    # Independent random signals: SI-SNR far below 0 dB, so the negated loss is positive.
    assert by_name["si_snr"] > 10 and by_name["pit_si_snr_loss"] > 10
    # Random 32000-d vectors are near-orthogonal: csc_loss ~ log 2, NT-Xent ~ log(2B - 1).
    assert by_name["csc_loss"] == pytest.approx(math.log(2), abs=0.05)
    assert by_name["nt_xent"] == pytest.approx(math.log(31), abs=0.1)


def test_op_name_attribution():
    f = bm._op_areas
    assert f(
        "jit(train_step)/transpose(jvp(CSCModel))/CSCModel.bottom_up/trunk/TCN_0/TCNBlock_3/"
        "GlobalLayerNorm_1/mul"
    ) == ("trunk", "GlobalLayerNorm", "bwd")
    assert f("jit(step)/jvp(ConvTasNetBackbone)/SeparatorTrunk_0/TCN_0/TCNBlock_1/Dense_1/dot") == (
        "SeparatorTrunk",
        "Dense",
        "fwd",
    )
    assert f("jit(train_step)/jvp(CSCModel)/CSCModel.global_vector/attention/key/dot") == (
        "attention",
        "key",
        "fwd",
    )
    assert f("jit(train_step)/vmap()/mix_example/xor")[0].startswith("(outside the model")


def test_step_time_stats():
    st = bm.step_time_stats([3.0, 1.0, 2.0, 10.0])
    assert (st["median"], st["min"], st["max"], st["n"]) == (2.5, 1.0, 10.0, 4)
    assert st["mean"] == 4.0
    with pytest.raises(ValueError):
        bm.step_time_stats([])


def test_cost_analysis_flops_forms():
    assert bm.cost_analysis_flops({"flops": 5.0, "bytes accessed": 1.0}) == 5.0
    assert bm.cost_analysis_flops([{"flops": 2.0}, {"flops": 3.0}]) == 5.0  # older JAX: list
    assert bm.cost_analysis_flops(None) is None
    assert bm.cost_analysis_flops([{}]) is None
    assert bm.cost_analysis_flops({"bytes accessed": 1.0}) is None


@pytest.mark.parametrize(
    "kind,dtype,name,peak",
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", "NVIDIA H100 SXM", 989.4e12),
        ("NVIDIA H100 PCIe", "bfloat16", "NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H100 PCIe", "float32", "NVIDIA H100 PCIe", 378e12),  # TF32 at default precision
        ("NVIDIA H200", "bfloat16", "NVIDIA H200", 989.4e12),
        ("NVIDIA A100-SXM4-80GB", "bfloat16", "NVIDIA A100", 312e12),
        ("TPU v4", "bfloat16", "TPU v4", 275e12),
        ("TPU v5 lite", "bfloat16", "TPU v5e", 197e12),
        ("TPU v5", "bfloat16", "TPU v5p", 459e12),
        ("TPU v5", "float32", "unknown", None),
        ("NVIDIA H200 NVL", "bfloat16", "unknown", None),
        ("cpu", "float32", "unknown", None),
    ],
)
def test_peak_flops_lookup(kind, dtype, name, peak):
    got_name, got_peak, _ = bm.peak_flops_per_device(kind, dtype)
    assert (got_name, got_peak) == (name, peak)


def test_throughput_utilisation():
    tp = bm.throughput(
        0.5,
        examples=8,
        mixtures=24,
        audio_s=24.0,
        flops_per_device=1e12,
        num_devices=2,
        device_kind="NVIDIA H100 PCIe",
        dtype="bfloat16",
    )
    assert tp["examples_per_s"] == 16 and tp["audio_s_per_s"] == 48
    assert tp["audio_s_per_s_per_device"] == 24
    assert tp["achieved_flops_per_s_per_device"] == 2e12
    assert tp["achieved_flops_per_s"] == 4e12
    assert tp["utilisation"] == pytest.approx(2e12 / 756e12)
    with pytest.raises(ValueError):
        bm.throughput(0.0, examples=1, mixtures=1, audio_s=1, flops_per_device=None,
                      num_devices=1, device_kind="cpu", dtype="float32")  # fmt: skip


def test_settings_validation():
    with pytest.raises(ValueError, match="bogus"):
        bm.BenchSettings(modes=("bogus",)).validate()
    with pytest.raises(ValueError, match="parallel"):
        bm.BenchSettings(modes=("train",), parallel=("dp",)).validate()
    with pytest.raises(ValueError, match="backbone"):
        bm.BenchSettings(modes=("backbone",)).validate()
    with pytest.raises(ValueError, match="steps"):
        bm.BenchSettings(modes=("train",), steps=0).validate()
    with pytest.raises(ValueError, match="loss_shape"):
        bm.BenchSettings(modes=("losses",), loss_shape=(16, 1, 100)).validate()


def test_pytorch_script_presets_match_the_jax_shapes():
    """The PyTorch script's presets are the shapes benchmark.py measures in JAX."""
    spec = importlib.util.spec_from_file_location("ptb", bm.PYTORCH_SCRIPT)
    ptb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ptb)  # imports torch only inside main()
    from configs.benchmark import get_config
    from csc_jax.config import base_config

    demo = bm.backbone_shapes_from_experiment(base_config())
    paper = bm.BackboneShapes(name="paper", **get_config().backbone.paper.to_dict())
    for shapes in (demo, paper):
        args = ptb.parse_args([f"--preset={shapes.name}"])
        for field in dataclasses.asdict(shapes):
            if field != "name":
                assert getattr(args, field) == getattr(shapes, field), (shapes.name, field)
        # benchmark.py passes every shape field explicitly; the parser takes them all.
        cmd = bm.pytorch_command("python", shapes, steps=3, warmup=1, threads=2)
        parsed = ptb.parse_args(cmd[2:])
        assert parsed.batch_size == shapes.batch_size and parsed.steps == 3
        assert parsed.device == "cpu"
        on_gpu = bm.pytorch_command("python", shapes, steps=3, warmup=1, threads=2, device="cuda")
        assert ptb.parse_args(on_gpu[2:]).device == "cuda"
    # The PyTorch side runs where JAX runs: cuda only when JAX's default backend is a GPU.
    assert bm.pytorch_device() == ("cuda" if jax.default_backend() == "gpu" else "cpu")
