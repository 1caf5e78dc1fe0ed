"""Metric logging (JSON lines + TensorBoard), progress bar and training-curve plots."""

from __future__ import annotations

import json
import os
import sys

from tqdm.auto import tqdm

_SHORT = {
    "loss": "loss",
    "sep_loss": "sep",
    "csc_loss": "csc",
    "nt_xent": "ntx",
    "si_snri": "SI-SNRi",
    "audio_sec_per_sec": "audio s/s",
}


def short(metrics: dict) -> dict:
    """The few metrics shown on the progress bar, rounded."""
    return {_SHORT[k]: f"{v:.3g}" for k, v in metrics.items() if k in _SHORT}


def progress(start: int, total: int, enabled: bool = True):
    """tqdm bar over training steps (plain text when stdout is not a terminal)."""
    return tqdm(
        total=total,
        initial=start,
        desc="train",
        unit="step",
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=2.0 if sys.stderr.isatty() else 30.0,
    )


class MetricWriter:
    """Appends ``{"step": s, **metrics}`` to <workdir>/metrics.jsonl and to TensorBoard."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if enabled:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:  # TensorBoard is optional; JSON lines always work
                self._tb = None

    def write(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(step), **metrics}) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
    """Rows of <workdir>/metrics.jsonl; a resumed run's repeated steps keep the latest row."""
    path = os.path.join(workdir, "metrics.jsonl")
    rows: dict[int, dict] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    rows[row["step"]] = row
    return [rows[s] for s in sorted(rows)]


def plot_training_curves(workdir: str, path: str | None = None) -> str | None:
    """Plot loss terms against step into <workdir>/training_curves.png; returns the path."""
    rows = read_metrics(workdir)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "sep_loss", "csc_loss", "nt_xent", "si_snri") if k in rows[0]]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, k in zip(axes[0], keys, strict=True):
        ax.plot(steps, [r[k] for r in rows])
        ax.set_title(k)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = path or os.path.join(workdir, "training_curves.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
