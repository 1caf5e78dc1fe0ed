"""Reports of the verification protocol: results.json, results.md, scores.npz, DET plots.

* results.json: ``{"meta", "results", "paired"}`` (EER in %, intervals as [lo, hi]);
* results.md: EER % [95 % interval] (minDCF) per system and condition; the paired EER
  differences of the trained model against each reference; SI-SNRi of extraction;
* scores.npz: every system's trial scores per condition with the trial labels and clusters,
  so runs scored on the same trials can be compared pairwise later (csc_jax.experiments).
"""

from __future__ import annotations

import io
import os

import numpy as np

from csc_jax import metrics
from csc_jax.io_utils import atomic_write, atomic_write_json, markdown_table


def fmt_interval(value: float, ci, digits: int = 2) -> str:
    """'12.34 [11.20, 13.51]'."""
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def format_table(results: dict, paired: dict | None = None) -> str:
    """Markdown: EER % [95 % CI] (minDCF) per system x condition, paired differences, SI-SNRi."""
    conds = list(next(iter(results.values())).keys())
    rows = [
        [name]
        + [
            f"{fmt_interval(row[c]['eer'], row[c]['eer_ci'])} ({row[c]['min_dcf']:.3f})"
            for c in conds
        ]
        for name, row in results.items()
    ]
    counts = {(r[conds[0]]["trials"], r[conds[0]]["targets"]) for r in results.values()}
    note = ", ".join(f"{n} trials ({t} target)" for n, t in sorted(counts, reverse=True))
    table = f"EER % [95 % CI] (minDCF, p_target=0.01); {note}\n\n"
    table += markdown_table(["system", *conds], rows)
    if paired:
        prow = [
            [name] + [fmt_interval(d[c]["diff"], d[c]["ci"]) for c in conds]
            for name, d in paired.items()
        ]
        table += "\n\nPaired EER difference, points [95 % CI] (negative: the first is better)\n\n"
        table += markdown_table(["systems", *conds], prow)
    sep = {n: r for n, r in results.items() if any("si_snri" in v for v in r.values())}
    if sep:
        sconds = [c for c in conds if c != "clean"]
        srows = [[name] + [f"{row[c]['si_snri']:.2f}" for c in sconds] for name, row in sep.items()]
        table += "\n\nSI-SNRi dB of the extracted target (target trials)\n\n"
        table += markdown_table(["system", *sconds], srows)
    return table


def save_scores(path: str, scored: dict, eval_set) -> None:
    """scores.npz: labels, enroll_speaker, and '<system>|<condition>|scores' / '|trials'."""
    arrays = {"labels": eval_set.labels, "enroll_speaker": eval_set.enroll_speaker.astype(str)}
    for name, by_cond in scored.items():
        for cond, row in by_cond.items():
            arrays[f"{name}|{cond}|scores"] = np.asarray(row["scores"], np.float64)
            arrays[f"{name}|{cond}|trials"] = np.asarray(row["trials"], np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


def load_scores(path: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels, enroll_speaker, {system: {condition: (scores, trials)}}) from scores.npz."""
    with np.load(path, allow_pickle=False) as z:
        labels, clusters = z["labels"], z["enroll_speaker"]
        out: dict = {}
        for key in z.files:
            if key.endswith("|scores"):
                name, cond, _ = key.split("|")
                out.setdefault(name, {})[cond] = (z[key], z[f"{name}|{cond}|trials"])
    return labels, clusters, out


def write_reports(results, paired, scored, eval_set, outdir: str, meta: dict | None = None):
    """results.json, results.md, scores.npz and det_<condition>.png in ``outdir``."""
    os.makedirs(outdir, exist_ok=True)
    payload = {"meta": meta or {}, "results": results, "paired": paired}
    atomic_write_json(os.path.join(outdir, "results.json"), payload)
    atomic_write(os.path.join(outdir, "results.md"), format_table(results, paired) + "\n")
    save_scores(os.path.join(outdir, "scores.npz"), scored, eval_set)
    conds = list(next(iter(scored.values())))
    for cond in conds:
        curves = {}
        for name, by_cond in scored.items():
            labels = eval_set.labels[by_cond[cond]["trials"]]
            fpr, fnr, _ = metrics.det_curve(by_cond[cond]["scores"], labels)
            curves[name] = (fpr, fnr)
        slug = cond.replace(" ", "").replace(".", "p")
        metrics.plot_det(curves, os.path.join(outdir, f"det_{slug}.png"), title=f"DET, {cond}")
