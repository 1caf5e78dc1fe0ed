"""Time-to-accuracy curves: read from metrics.jsonl's train_seconds, grouped, one machine."""

import json

import numpy as np
import pytest

from csc_jax.errors import ConfigError, DataError
from csc_jax.experiments import time_to_accuracy as tta


def _run(root, name, seconds_per_step, cpu="Test CPU", with_time=True):
    d = root / name
    d.mkdir()
    rows = []
    for step in range(0, 101, 20):
        t = {"train_seconds": step * seconds_per_step} if with_time else {}
        rows.append({"step": step, "loss": 1.0, "si_snri": step / 50, **t})
        rows.append({"step": step, "val/eer_clean": 40 - step / 10, "val/eer_sir0": 45.0, **t})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "run_info.json").write_text(json.dumps({"cpu": cpu, "cores": 2, "backend": "cpu"}))
    return str(d)


def test_curves_against_minutes_and_the_mean_of_seeds(tmp_path):
    fast = [_run(tmp_path, f"fast{i}", 0.6 + 0.6 * i) for i in range(2)]
    slow = [_run(tmp_path, "slow", 6.0)]
    curves = tta.read_curves(fast[0])
    np.testing.assert_allclose(curves["val/eer_clean"][0], np.arange(0, 101, 20) * 0.6 / 60)
    out = tmp_path / "tta.png"
    summary = tta.plot_time_to_accuracy({"fast": fast, "slow": slow}, str(out), title="t")
    assert out.stat().st_size > 1000 and summary["machines"] == ["Test CPU x 2"]
    # The mean covers the span both fast seeds reached (the first one's 1 minute).
    mean = summary["labels"]["fast"]["val/eer_clean"]
    assert mean["minutes"][-1] == pytest.approx(1.0)
    assert summary["labels"]["slow"]["si_snri"]["minutes"][-1] == pytest.approx(10.0)


def test_runs_from_two_machines_or_without_wall_time_are_refused(tmp_path):
    a = _run(tmp_path, "a", 1.0)
    b = _run(tmp_path, "b", 1.0, cpu="Other CPU")
    with pytest.raises(ConfigError, match="different machines"):
        tta.plot_time_to_accuracy({"a": [a], "b": [b]}, str(tmp_path / "x.png"))
    tta.plot_time_to_accuracy(
        {"a": [a], "b": [b]}, str(tmp_path / "x.png"), allow_mixed_machines=True
    )
    old = _run(tmp_path, "old", 1.0, with_time=False)
    with pytest.raises(DataError, match="train_seconds"):
        tta.read_curves(old)
