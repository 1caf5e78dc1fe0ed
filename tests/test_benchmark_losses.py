"""The value-and-gradient benchmark of every loss of csc_jax.losses."""

import math

import pytest

from csc_jax.benchmarking.loss_functions import bench_losses, loss_cases


def test_losses_value_and_grad_at_the_issue_shape():
    """Every loss compiles with its gradient on a (16, 2, 32000) batch on CPU (time reported
    by benchmark.py --mode=losses, not asserted here)."""
    rows = bench_losses((16, 2, 32000), steps=1, warmup=0)
    assert [r["name"] for r in rows] == list(loss_cases((16, 2, 32000)))
    for r in rows:
        assert r["shape"] == [16, 2, 32000] and math.isfinite(r["value"])
        assert r["step_time_s"]["n"] == 1 and r["step_time_s"]["median"] > 0
    by_name = {r["name"]: r["value"] for r in rows}
    # Independent random signals: SI-SNR far below 0 dB, so the negated loss is positive.
    assert by_name["si_snr"] > 10 and by_name["pit_si_snr_loss"] > 10
    # Random 32000-d vectors are near-orthogonal: csc_loss ~ log 2, NT-Xent ~ log(2B - 1).
    assert by_name["csc_loss"] == pytest.approx(math.log(2), abs=0.05)
    assert by_name["nt_xent"] == pytest.approx(math.log(31), abs=0.1)
