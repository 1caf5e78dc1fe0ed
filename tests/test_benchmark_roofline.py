"""The roofline probes (matmul FLOP/s, memory bandwidth) at tiny sizes, and a measured step's
fraction of the matmul peak."""

import pytest

from csc_jax.benchmarking.roofline import against_peak, measure_roofline

CPU_KEYS = {
    "user_s_per_step", "kernel_s_per_step", "kernel_fraction", "minor_faults_per_step",
    "kernel_fraction_median_step", "minor_faults_median_step",
}  # fmt: skip


def test_probes_at_tiny_sizes():
    roof = measure_roofline(
        sizes=(16, 64), dtypes=("float32", "bfloat16"), stream_mib=1, steps=3, warmup=1
    )
    assert [(r["dtype"], r["n"]) for r in roof["matmul"]] == [
        ("float32", 16), ("float32", 64), ("bfloat16", 16), ("bfloat16", 64)
    ]  # fmt: skip
    for r in roof["matmul"]:
        assert r["gflop"] == pytest.approx(2 * r["n"] ** 3 / 1e9)
        assert r["step_time_s"]["n"] == 3 and r["step_time_s"]["median"] > 0
        assert r["gflop_per_s"] == pytest.approx(r["gflop"] / r["step_time_s"]["median"])
        assert r["gflop_per_s"] > 0 and set(r["cpu"]) == CPU_KEYS
        cpu_s = r["cpu"]["user_s_per_step"] + r["cpu"]["kernel_s_per_step"]
        if cpu_s > 0:  # per CPU second (getrusage may round a tiny call's time to 0)
            assert r["gflop_per_cpu_s"] == pytest.approx(r["gflop"] / cpu_s)
        assert r["compile"]["lower_plus_compile_s"] >= 0
    for dtype in ("float32", "bfloat16"):
        peak = roof["matmul_peak"][dtype]
        rates = [r["gflop_per_s"] for r in roof["matmul"] if r["dtype"] == dtype]
        assert peak["gflop_per_s"] == max(rates) and peak["n"] in (16, 64)
        per_cpu = [r["gflop_per_cpu_s"] or 0.0 for r in roof["matmul"] if r["dtype"] == dtype]
        assert (peak["gflop_per_cpu_s"] or 0.0) == max(per_cpu)
    stream = roof["stream"]
    assert stream["mib_per_array"] == 1 and stream["bytes_per_call"] == 3 * 2**20
    assert stream["gb_per_s"] > 0 and set(stream["cpu"]) == CPU_KEYS
    assert stream["gb_per_s"] == pytest.approx(
        stream["bytes_per_call"] / stream["step_time_s"]["median"] / 1e9
    )


def test_against_peak():
    roof = {"matmul_peak": {"float32": {"gflop_per_s": 100.0, "n": 512, "gflop_per_cpu_s": 50.0}}}
    cpu = {"user_s_per_step": 0.8, "kernel_s_per_step": 0.2}
    step = {"flops_per_step": 5e9, "step_time_s": {"median": 0.5}, "dtype": "float32", "cpu": cpu}
    assert against_peak(step, roof) == {
        "achieved_gflop_per_s": 10.0,
        "matmul_peak_gflop_per_s": 100.0,
        "fraction_of_matmul_peak": pytest.approx(0.1),
        "achieved_gflop_per_cpu_s": 5.0,  # 5 GFLOP in 1 CPU second
        "matmul_peak_gflop_per_cpu_s": 50.0,
        "fraction_of_matmul_cpu_rate": pytest.approx(0.1),
    }
    assert against_peak(dict(step, cpu={}), roof)["achieved_gflop_per_cpu_s"] is None
    # No peak of that dtype, no roofline at all, or no FLOPs: None, not a guess.
    bf16 = dict(step, dtype="bfloat16")
    assert against_peak(bf16, roof)["fraction_of_matmul_peak"] is None
    assert against_peak(step, None)["achieved_gflop_per_s"] == 10.0
    assert against_peak(dict(step, flops_per_step=None), roof)["achieved_gflop_per_s"] is None
