"""Training metrics: JSON lines + TensorBoard, the progress bar and training_curves.png.

Rows are ``{"step": s, **metrics}`` in ``<workdir>/metrics.jsonl``; training metrics and the
evaluators' metrics (``val/eer_clean`` ...) of the same step are separate rows that
:func:`read_metrics` merges.
"""

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
    "val/eer_clean": "val EER",
    "val/eer_sir0": "val EER SIR0",
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

    def write(self, step: int, metrics: dict, tensorboard_prefix: str = "train/") -> None:
        """Append one row; TensorBoard tags are ``tensorboard_prefix + key``."""
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": int(step), **metrics}) + "\n")
            f.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"{tensorboard_prefix}{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
    """Rows of <workdir>/metrics.jsonl, one per step: rows of the same step are merged (a
    resumed run's repeated step keeps the latest values). A torn last line (a crash while
    writing) is ignored."""
    path = os.path.join(workdir, "metrics.jsonl")
    rows: dict[int, dict] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    rows.setdefault(row["step"], {}).update(row)
    return [rows[s] for s in sorted(rows)]


def plot_training_curves(workdir: str, path: str | None = None) -> str | None:
    """Plot loss terms against step into <workdir>/training_curves.png; returns the path."""
    rows = read_metrics(workdir)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = set().union(*rows)
    keys = [k for k in ("loss", "sep_loss", "csc_loss", "nt_xent", "si_snri") if k in present]
    val = sorted(k for k in present if k.startswith("val/eer"))
    panels = keys + (["validation EER %"] if val else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=False):
        pts = [(r["step"], r[k]) for r in rows if k in r]
        ax.plot(*zip(*pts, strict=True))
        ax.set_title(k)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if val:
        ax = axes[0][-1]
        for k in val:
            pts = [(r["step"], r[k]) for r in rows if k in r]
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, label=k.split("eer_", 1)[-1])
        ax.set_title("validation EER %")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = path or os.path.join(workdir, "training_curves.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
