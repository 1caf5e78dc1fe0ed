"""How the benchmark times and counts: step-time statistics, compilation, FLOPs, peak rates."""

import jax
import jax.numpy as jnp
import pytest

from csc_jax.benchmarking import timing


def test_step_time_stats():
    st = timing.step_time_stats([3.0, 1.0, 2.0, 10.0])
    assert (st["median"], st["min"], st["max"], st["n"]) == (2.5, 1.0, 10.0, 4)
    assert st["mean"] == 4.0
    with pytest.raises(ValueError):
        timing.step_time_stats([])


def test_cpu_per_step_gives_the_steady_state_besides_the_mean():
    """One step that maps and faults a whole block (a one-time heap growth) moves the mean over
    the timed steps but not the median step: the steady state the allocator is judged by."""
    steady = {"user_s": 2.0, "kernel_s": 0.01, "minor_faults": 3000.0}
    growth = {"user_s": 2.0, "kernel_s": 2.0, "minor_faults": 560000.0}
    per_step = [steady, growth, steady, steady]
    cpu = timing.cpu_per_step(per_step)
    assert cpu["kernel_fraction"] == pytest.approx(2.03 / 10.03)
    assert cpu["kernel_fraction_median_step"] == pytest.approx(0.01 / 2.01)
    assert cpu["minor_faults_per_step"] == (3 * 3000 + 560000) / 4
    assert cpu["minor_faults_median_step"] == 3000


def test_cost_analysis_flops_forms():
    assert timing.cost_analysis_flops({"flops": 5.0, "bytes accessed": 1.0}) == 5.0
    assert timing.cost_analysis_flops([{"flops": 2.0}, {"flops": 3.0}]) == 5.0  # older JAX: list
    assert timing.cost_analysis_flops(None) is None
    assert timing.cost_analysis_flops([{}]) is None
    assert timing.cost_analysis_flops({"bytes accessed": 1.0}) is None


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
    got_name, got_peak, _ = timing.peak_flops_per_device(kind, dtype)
    assert (got_name, got_peak) == (name, peak)


def test_throughput_utilisation():
    tp = timing.throughput(
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
        timing.throughput(0.0, examples=1, mixtures=1, audio_s=1, flops_per_device=None,
                          num_devices=1, device_kind="cpu", dtype="float32")  # fmt: skip


def test_compile_first_step_and_timer_on_a_tiny_step():
    """lower_and_compile + first_step + StepTimer, as the train-step and backbone benchmarks
    use them: phases timed, FLOPs counted, and the state carried from call to call."""

    def step(state, batch):
        return state + jnp.sum(batch["x"] @ batch["x"]), {"loss": jnp.mean(batch["x"])}

    batch = {"x": jnp.ones((8, 8), jnp.float32)}
    state = jnp.zeros((), jnp.float32)
    compiled, times = timing.lower_and_compile(jax.jit(step).lower, state, batch)
    assert set(times) == {"lower_s", "compile_s", "lower_plus_compile_s"}
    assert times["lower_plus_compile_s"] == pytest.approx(times["lower_s"] + times["compile_s"])
    assert timing.compiled_flops(compiled) >= 2 * 8**3  # the matmul, on XLA:CPU
    state, out, seconds = timing.first_step(compiled, state, batch)
    assert float(state) == 8 * 8 * 8 and float(out["loss"]) == 1.0 and seconds >= 0
    timer = timing.StepTimer(compiled, state, lambda: batch)
    times = timer.time(3, 2)
    assert len(times) == 3 and min(times) > 0
    assert timer.cpu["minor_faults_median_step"] >= 0  # one reading per timed step
    assert float(timer.state) == 6 * 8 * 8 * 8  # first + 2 warmup + 3 timed steps
    assert timing.compiled_memory(compiled)["available"] in (True, False)
    assert timing.device_peak_memory(jax.devices()[:1])["peak_bytes_in_use"] == "n/a"  # CPU
