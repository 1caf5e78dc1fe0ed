"""The results page of a comparison: tables with intervals, paired verdicts, convergence,
figures, commands and cost, all read from the runs' records (never typed in, never from run
workdirs), so a page is rebuilt from the committed store alone.

Inputs per run, from its record (csc_jax/experiments/store.py): ``eval_results.json``,
``scores.npz`` (per-trial score ranks of every system), ``metrics.jsonl`` (losses and the
validation EER), ``config.json``, ``record.json`` (status, command, seconds, commit) and
``run_info.json`` (the machine); per campaign, an optional ``NOTES.md`` that the page shows
under "Notes". Records from different machines are refused unless
``allow_mixed_machines``, and then the page says which run ran where. Statistics:
csc_jax/experiments/statistics.py (two-level bootstrap, the rule for a finding).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from csc_jax import metrics
from csc_jax.errors import ConfigError
from csc_jax.evaluation.report import fmt_interval
from csc_jax.experiments import statistics, store
from csc_jax.experiments.store import RunRecord
from csc_jax.experiments.time_to_accuracy import machine_of
from csc_jax.experiments.variants import Variant, separates
from csc_jax.io_utils import atomic_write, markdown_table

_MAX_PNG_BYTES = 200_000
REFERENCES = ("untrained", "log-mel", "mfcc")
# A campaign folder's notes, shown on its page under "Notes" (:func:`campaign_notes`).
NOTES_FILE = "NOTES.md"
VERDICT = {"A": "**{a} better**", "B": "**{b} better**", "=": "no finding"}


def _systems(records, per_run, cond: str, extract: bool) -> tuple[list, np.ndarray]:
    """SeedScores of every variant (its trained system, or '+extract') and of the references
    at ``cond``, and the trial indices they share."""
    by_variant: dict[str, statistics.SeedScores] = {}
    trials = None
    for r, by_sys in zip(records, per_run, strict=True):
        name = "csc+extract" if extract else r.system
        if extract and not separates(r.config):
            continue
        if name not in by_sys:
            continue
        sc, tr = by_sys[name][cond]
        trials = tr if trials is None else trials
        label = f"{r.variant}+extract" if extract else r.variant
        entry = by_variant.setdefault(label, statistics.SeedScores(label, [], []))
        entry.per_seed.append(sc)
        entry.seeds.append(r.seed)
    systems = list(by_variant.values())
    if not extract and records:
        first = per_run[0]
        # The untrained model depends on the seed: the first variant's runs give its seeds.
        own = [
            (r, b) for r, b in zip(records, per_run, strict=True) if r.variant == records[0].variant
        ]
        untrained = [b["untrained"][cond][0] for _, b in own if "untrained" in b]
        if untrained:
            seeds = [r.seed for r, b in own if "untrained" in b]
            systems.append(statistics.SeedScores("untrained", untrained, seeds))
        for name in first:
            if store.is_reference(name):
                systems.append(statistics.SeedScores(name, [first[name][cond][0]], [-1]))
    return systems, trials


def _save_small(fig, path: str, dpi: int = 90) -> str:
    """Save a matplotlib Figure as PNG, lowering the resolution until it is < 200 KB."""
    while True:
        fig.savefig(path, dpi=dpi)
        if os.path.getsize(path) < _MAX_PNG_BYTES or dpi <= 40:
            return path
        dpi = int(dpi * 0.75)


def plot_variant_curves(variant: str, workdirs: Sequence[str], path: str) -> str | None:
    """Losses and the validation EER vs. step for one variant: mean over seeds and range."""
    from matplotlib.figure import Figure

    from csc_jax.training.metric_log import read_metrics

    runs = [read_metrics(w) for w in workdirs]
    runs = [r for r in runs if r]
    if not runs:
        return None
    keys = [
        k
        for k in (
            "loss",
            "sep_loss",
            "csc_loss",
            "nt_xent",
            "si_snri",
            "val/eer_clean",
            "val/eer_sir0",
        )
        if all(any(k in row for row in r) for r in runs)
    ]
    fig = Figure(figsize=(2.9 * len(keys), 2.5))
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, k in zip(axes, keys, strict=True):
        series = [{row["step"]: row[k] for row in r if k in row} for r in runs]
        steps = sorted(set.intersection(*(set(s) for s in series)))
        y = np.array([[s[t] for t in steps] for s in series], float)
        ax.plot(steps, y.mean(0), linewidth=1.2, marker="o" if k.startswith("val") else None, ms=2)
        if len(runs) > 1:
            ax.fill_between(steps, y.min(0), y.max(0), alpha=0.25, linewidth=0)
        ax.set_title(k + (" (%)" if k.startswith("val") else ""), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{variant}: mean over {len(runs)} seed(s), band = min-max", fontsize=9)
    fig.tight_layout()
    return _save_small(fig, path)


def _convergence_rows(records: Sequence[RunRecord]) -> list[list[str]]:
    from csc_jax.training.metric_log import read_metrics

    rows = []
    for variant in dict.fromkeys(r.variant for r in records):
        runs = [r for r in records if r.variant == variant]
        for key in ("val/eer_clean", "val/eer_sir0"):
            flats, slopes = [], []
            for r in runs:
                pts = [(row["step"], row[key]) for row in read_metrics(r.record_dir) if key in row]
                if len(pts) < 3:
                    continue
                p = statistics.plateau(*zip(*pts, strict=True))
                flats.append(p["flat"])
                slopes.append(p["slope_per_1k"])
            if not flats:
                rows.append([variant, key, "no validation curve", "-"])
                continue
            rows.append(
                [
                    variant,
                    key,
                    f"{sum(flats)} of {len(flats)} seeds flat",
                    ", ".join(f"{s:+.2f}" for s in slopes),
                ]
            )
    return rows


def write_report(
    records: Sequence[RunRecord],
    out_md: str,
    *,
    variants: Sequence[Variant],
    title: str,
    command: str,
    bootstrap_replicates: int = 1000,
    allow_mixed_machines: bool = False,
    log: Callable = print,
) -> str:
    """Write ``out_md`` and its figures (``<dirname>/<stem>/*.png``) from ``records`` (read
    from the store); returns the text.

    Raises:
      ConfigError: the records come from more than one machine and not
        ``allow_mixed_machines`` (a variant's CPU and GPU runs are never pooled silently).
    """
    if not records:
        raise ValueError("no finished runs to report")
    machines = {f"{r.variant}-s{r.seed}": machine_of(r.record_dir) for r in records}
    if len(set(machines.values())) > 1 and not allow_mixed_machines:
        raise ConfigError(
            "the records come from different machines ("
            + "; ".join(f"{k}: {m}" for k, m in machines.items())
            + "): pooling them mixes machines (--allow_mixed_machines labels the page instead)"
        )
    mixed = len(set(machines.values())) > 1
    # Rows in the registry's order (runs are recorded in the order they ran).
    order = {v.name: i for i, v in enumerate(variants)}
    records = sorted(records, key=lambda r: (order.get(r.variant, len(order)), r.seed))
    out_dir = os.path.dirname(os.path.abspath(out_md))
    fig_dir = os.path.join(out_dir, os.path.splitext(os.path.basename(out_md))[0])
    os.makedirs(fig_dir, exist_ok=True)
    labels, clusters, per_run = store.load_run_scores(records)
    conds = list(records[0].results[records[0].system])
    primary = records[0].variant
    ev_seed = int(records[0].config["eval"]["seed"])

    eer_rows, diff_rows, verdicts = {}, {}, {}
    extract_rows = {}
    for cond in conds:
        systems, trials = _systems(records, per_run, cond, extract=False)
        means, diffs = statistics.compare(
            systems, labels[trials], clusters[trials], replicates=bootstrap_replicates, seed=ev_seed
        )
        for s in systems:
            eer_rows.setdefault(s.name, {"seeds": s.seeds})[cond] = means[s.name]
        for (a, b), d in diffs.items():
            if a == primary:
                diff_rows.setdefault(f"{a} - {b}", {})[cond] = d
                verdicts.setdefault(b, {})[cond] = d.verdict
        ext, ext_trials = _systems(records, per_run, cond, extract=True)
        if ext:
            emeans, _ = statistics.compare(
                ext, labels[ext_trials], clusters[ext_trials],
                replicates=bootstrap_replicates, seed=ev_seed,
            )  # fmt: skip
            for s in ext:
                extract_rows.setdefault(s.name, {"seeds": s.seeds, "n": len(ext_trials)})[cond] = (
                    emeans[s.name]
                )

    def cell(e: statistics.Estimate) -> str:
        seeds = f" ({min(e.per_seed):.1f}-{max(e.per_seed):.1f})" if len(e.per_seed) > 1 else ""
        return fmt_interval(e.value, e.ci, 2) + seeds

    table = markdown_table(
        ["system", "seeds", *conds],
        [
            [name, ",".join(str(s) for s in row["seeds"]) if row["seeds"][0] >= 0 else "-"]
            + [cell(row[c]) for c in conds]
            for name, row in eer_rows.items()
        ],
    )

    def dcell(name: str, d: statistics.Estimate) -> str:
        a, b = name.split(" - ", 1)
        return f"{fmt_interval(d.value, d.ci)} {VERDICT[d.verdict].format(a=a, b=b)}"

    dtable = markdown_table(
        ["difference", *conds],
        [[name] + [dcell(name, d[c]) for c in conds] for name, d in diff_rows.items()],
    )

    # Figures: curves per variant, DET of the first seed of each variant + references.
    curve_links = []
    for v in dict.fromkeys(r.variant for r in records):
        path = plot_variant_curves(
            v,
            [r.record_dir for r in records if r.variant == v],
            os.path.join(fig_dir, f"curves_{v}.png"),
        )
        if path:
            curve_links.append(f"![{v}]({_rel(path, out_dir)})")
    det_links = []
    for cond in [c for c in ("clean", "SIR 0 dB") if c in conds]:
        systems, trials = _systems(records, per_run, cond, extract=False)
        curves = {s.name: metrics.det_curve(s.per_seed[0], labels[trials])[:2] for s in systems}
        slug = cond.replace(" ", "")
        path = os.path.join(fig_dir, f"det_{slug}.png")
        metrics.plot_det(curves, path, title=f"DET, {cond} (first seed of each system)")
        det_links.append(f"![DET {cond}]({_rel(path, out_dir)})")

    info = _run_info(records[0].record_dir)
    campaign = os.path.dirname(records[0].record_dir)
    notes = campaign_notes(campaign)
    notes_from = f"From `{os.path.basename(campaign)}/{NOTES_FILE}` in the results store:"
    n_trials, n_target = len(labels), int(np.sum(labels))
    described = {v.name: v for v in variants}
    lines = [
        f"# {title}",
        "",
        "Generated by `csc_jax/experiments` (`scripts/run_results.py`); every number is read "
        "from the runs' records (results/README.md): `eval_results.json`, `scores.npz` and "
        "`metrics.jsonl`.",
        "",
        "## Summary",
        "",
        _summary(diff_rows, conds, primary),
        "",
        *(["## Notes", "", notes_from, "", notes, ""] if notes else []),
        *(
            [
                "**Mixed machines:** these runs ran on "
                + "; ".join(sorted(set(machines.values())))
                + " (see Cost); seeds of one variant from different machines are pooled.",
                "",
            ]
            if mixed
            else []
        ),
        "## Speaker verification",
        "",
        f"{n_trials} trials ({n_target} target) over {len(set(clusters.tolist()))} enrollment "
        "speakers; the test side is clean, has coloured noise at the SNR shown, or one "
        "interfering speaker at the SIR shown. EER % as the mean over seeds [95 % interval] "
        "(range of the seeds): the interval is a two-level bootstrap over enrollment speakers "
        "and seeds (csc_jax/experiments/statistics.py).",
        "",
        table,
        "",
        "Paired EER differences, points [95 % interval]; rule: a system is better only when "
        "the interval excludes 0. References (log-mel, mfcc) do not depend on training.",
        "",
        dtable,
        "",
    ]
    if extract_rows:
        lines += [
            f"Scored through target extraction (on a fixed subset of "
            f"{next(iter(extract_rows.values()))['n']} trials, its own intervals):",
            "",
            markdown_table(
                ["system", *conds],
                [[n] + [cell(r[c]) for c in conds] for n, r in extract_rows.items()],
            ),
            "",
        ]
    lines += [
        "## Convergence",
        "",
        "Slope of a least-squares line through the validation EER over the last half of "
        "training, EER points per 1000 steps per seed; 'flat' = its 95 % interval does not lie "
        "below 0 (no further decrease detectable).",
        "",
        markdown_table(["variant", "curve", "plateau", "slopes"], _convergence_rows(records)),
        "",
        "## Variants",
        "",
        markdown_table(
            ["variant", "seeds", "steps", "overrides", "what"],
            [
                [
                    v,
                    ",".join(str(r.seed) for r in records if r.variant == v),
                    ",".join(str(r.config["train"]["steps"]) for r in records if r.variant == v),
                    ", ".join(f"`{k}={x}`" for k, x in described[v].overrides.items()) or "-",
                    described[v].description,
                ]
                for v in dict.fromkeys(r.variant for r in records)
                if v in described
            ],
        ),
        "",
        "## Figures",
        "",
        *[f"{link}\n" for link in det_links + curve_links],
        "## Reproduce",
        "",
        "```bash",
        command,
        "```",
        "",
        "Each run is one `train.py` command (train with the validation EER, then the protocol):",
        "",
        "```bash",
        *[r.command for r in records if r.command],
        "```",
        "",
        "## Cost",
        "",
        (
            f"Machine: {info.get('cpu')}, {info.get('usable_cores')} usable cores, "
            f"{info.get('os')}; jax {info.get('jax')} ({info.get('backend')}); allocator: "
            f"{info.get('allocator')}."
            if not mixed
            else "Machines: per run in the table below (the runs' run_info.json)."
        ),
        "",
        "`training s`: the training loop's wall time without validation (the last "
        "`train_seconds` of the run's metrics.jsonl; n/a for runs trained before it was "
        "logged); `train + validation s`: the whole train.py call before the evaluation (for a "
        "resumed run, only the call that finished it).",
        "",
        markdown_table(
            ["run", "status", "steps", "training s", "train + validation s", "eval s", "commit"]
            + (["machine"] if mixed else []),
            [
                [
                    f"{r.variant}-s{r.seed}",
                    r.status,
                    r.config["train"]["steps"],
                    _training_seconds(r.record_dir),
                    f"{r.train_seconds:.0f}",
                    f"{r.eval_seconds:.0f}",
                    (r.commit[:7] + ("+dirty" if r.commit.endswith("+dirty") else "")) or "?",
                ]
                + ([machines[f"{r.variant}-s{r.seed}"]] if mixed else [])
                for r in records
            ],  # fmt: skip
        ),
        "",
    ]
    text = "\n".join(lines)
    atomic_write(out_md, text)
    log(f"[results] wrote {out_md} and {fig_dir}/")
    return text


def campaign_notes(campaign_dir: str) -> str:
    """The campaign's committed notes (``<campaign>/NOTES.md``, markdown; '' if none): what a
    page says besides its tables (e.g. what was tried for a condition it does not win), kept
    with the records so that a rebuilt page keeps it."""
    path = os.path.join(campaign_dir, NOTES_FILE)
    if not os.path.isfile(path):
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def _rel(path: str, start: str) -> str:
    return os.path.relpath(path, start or ".").replace(os.sep, "/")


def _summary(diff_rows: dict, conds: Sequence[str], primary: str) -> str:
    """One paragraph written from the verdicts (never from expectations)."""
    parts = []
    for name, by_cond in diff_rows.items():
        other = name.split(" - ", 1)[1]
        better = [c for c in conds if by_cond[c].verdict == "A"]
        worse = [c for c in conds if by_cond[c].verdict == "B"]
        none = [c for c in conds if by_cond[c].verdict == "="]
        text = f"**{primary} vs {other}:** "
        text += (
            f"{primary} better in {', '.join(better)}" if better else f"{primary} better in none"
        )
        if worse:
            text += f"; {other} better in {', '.join(worse)}"
        if none:
            text += f"; no finding in {', '.join(none)}"
        parts.append(text + ".")
    return " ".join(parts)


def _run_info(record_dir: str) -> dict:
    """The record's run_info.json ({} when absent)."""
    import json

    try:
        with open(os.path.join(record_dir, "run_info.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _training_seconds(workdir: str) -> str:
    """The last logged ``train_seconds`` of a run (training without validation), or 'n/a'."""
    from csc_jax.training.metric_log import read_metrics

    rows = [r for r in read_metrics(workdir) if "train_seconds" in r]
    return f"{rows[-1]['train_seconds']:.0f}" if rows else "n/a"
