"""Time to accuracy: validation EER and training SI-SNRi against training wall-clock minutes.

The curves come from each run's ``metrics.jsonl``: every logged row carries ``train_seconds``
(the training loop's wall time, validation left out; csc_jax/training/loop.py). Runs are
grouped under a label (e.g. one front end, several seeds); each seed is one thin line and the
label's mean over seeds (interpolated on the union of its time points) a thick one. Runs from
different machines are refused unless ``allow_mixed_machines``: wall time only compares on
one machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from csc_jax.errors import ConfigError, DataError

# (metrics.jsonl key, panel title)
PANELS = (
    ("val/eer_clean", "validation EER % (clean)"),
    ("val/eer_sir0", "validation EER % (SIR 0 dB)"),
    ("si_snri", "training SI-SNRi (dB)"),
)


def read_curves(workdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{key: (minutes (n,), values (n,)) float64} of one run, for each key of PANELS present.

    Raises:
      DataError: the run has no metrics.jsonl or its rows have no ``train_seconds`` (a run
        trained before that field was logged).
    """
    from csc_jax.training.metric_log import read_metrics

    rows = read_metrics(workdir)
    if not rows:
        raise DataError(f"{os.path.join(workdir, 'metrics.jsonl')}: no metrics (not a run?)")
    if not any("train_seconds" in r for r in rows):
        raise DataError(
            f"{os.path.join(workdir, 'metrics.jsonl')}: no train_seconds in its rows (trained "
            "before training wall time was logged); train it again"
        )
    out = {}
    for key, _ in PANELS:
        pts = [
            (r["train_seconds"] / 60.0, r[key]) for r in rows if key in r and "train_seconds" in r
        ]
        if pts:
            t, v = np.asarray(pts, np.float64).T
            out[key] = (t, v)
    return out


def machine_of(workdir: str) -> str:
    """'<cpu> x <cores>' (or the device kind) from the run's (or record's) run_info.json; '?'
    if absent."""
    try:
        with open(os.path.join(workdir, "run_info.json")) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return "?"
    return machine_key(info)


def machine_key(info: Mapping) -> str:
    """The machine of a machine_info() dict (csc_jax/io_utils.py): the accelerator's device
    kind, or '<cpu> x <cores>' on CPU. Wall times only compare under one key."""
    device = info.get("device_kind") or info.get("backend") or ""
    if device and device.lower() != "cpu":
        return str(device)
    return f"{info.get('cpu', '?')} x {info.get('cores', '?')}"


def mean_curve(curves: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs of curves sampled at different times: each is linearly interpolated on
    the union of the time points within the span that every run covers."""
    end = min(float(t[-1]) for t, _ in curves)
    start = max(float(t[0]) for t, _ in curves)
    grid = np.unique(np.concatenate([t for t, _ in curves]))
    grid = grid[(grid >= start) & (grid <= end)]
    return grid, np.mean([np.interp(grid, t, v) for t, v in curves], axis=0)


def plot_time_to_accuracy(
    runs: Mapping[str, Sequence[str]],
    out: str,
    *,
    title: str = "",
    allow_mixed_machines: bool = False,
) -> dict:
    """Draw PANELS against training minutes for every labelled group of runs; write ``out``.

    Args:
      runs: {label: [workdir, ...]} (e.g. {'stft': [seed dirs], 'waveform': [seed dirs]}).
      out: PNG path.
      title: figure title (the machine is appended).
      allow_mixed_machines: plot runs whose run_info.json name different machines.

    Returns:
      {'machines': [...], 'labels': {label: {key: {'minutes': [...], 'mean': [...]}}}}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    machines = sorted({machine_of(w) for dirs in runs.values() for w in dirs})
    if len(machines) > 1 and not allow_mixed_machines:
        raise ConfigError(
            f"the runs were trained on different machines ({'; '.join(machines)}): wall time "
            "does not compare across machines (allow_mixed_machines to plot them anyway)"
        )
    summary: dict = {"machines": machines, "labels": {}}
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, dirs) in enumerate(runs.items()):
        colour = colours[i % len(colours)]
        per_run = [read_curves(w) for w in dirs]
        summary["labels"][label] = {}
        for ax, (key, _) in zip(axes, PANELS, strict=True):
            curves = [c[key] for c in per_run if key in c]
            if not curves:
                continue
            for t, v in curves:
                ax.plot(t, v, color=colour, alpha=0.3, linewidth=0.8)
            grid, mean = mean_curve(curves)
            ax.plot(grid, mean, color=colour, linewidth=2, label=f"{label} (n={len(curves)})")
            summary["labels"][label][key] = {"minutes": grid.tolist(), "mean": mean.tolist()}
    for ax, (_, name) in zip(axes, PANELS, strict=True):
        ax.set_title(name)
        ax.set_xlabel("training wall time (min)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{title} ({'; '.join(machines)})".strip(), fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return summary
