"""Reports of the verification protocol: results.json, results.md tables, DET plots."""

from __future__ import annotations

import os

from csc_jax import metrics
from csc_jax.io_utils import atomic_write, atomic_write_json, markdown_table


def format_table(results: dict) -> str:
    """Markdown tables: EER % (minDCF) per system x condition, then SI-SNRi where available."""
    conds = list(next(iter(results.values())).keys())
    rows = [
        [name] + [f"{row[c]['eer']:.2f} ({row[c]['min_dcf']:.3f})" for c in conds]
        for name, row in results.items()
    ]
    table = "EER % (minDCF, p_target=0.01)\n\n" + markdown_table(["system", *conds], rows)
    sep = {n: r for n, r in results.items() if any("si_snri" in v for v in r.values())}
    if sep:
        sconds = [c for c in conds if c != "clean"]
        srows = [[name] + [f"{row[c]['si_snri']:.2f}" for c in sconds] for name, row in sep.items()]
        table += "\n\nSI-SNRi dB of the extracted target (target trials)\n\n"
        table += markdown_table(["system", *sconds], srows)
    return table


def write_reports(results: dict, curves: dict, outdir: str, meta: dict | None = None) -> None:
    """results.json, results.md and det_<condition>.png in ``outdir`` (atomic writes)."""
    os.makedirs(outdir, exist_ok=True)
    atomic_write_json(
        os.path.join(outdir, "results.json"), {"meta": meta or {}, "results": results}
    )
    atomic_write(os.path.join(outdir, "results.md"), format_table(results) + "\n")
    for cname, c in curves.items():
        slug = cname.replace(" ", "").replace(".", "p")
        metrics.plot_det(c, os.path.join(outdir, f"det_{slug}.png"), title=f"DET, {cname}")
