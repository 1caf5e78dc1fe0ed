"""Does CSC work? Baselines, ablations and a reproducible results table.

A registry of variants (name + config overrides) that share everything else -- encoder,
speaker branch, data, on-device augmentation, training budget and evaluation -- and
:func:`run_results`, which trains and evaluates every (variant, seed) into
``<workdir_root>/<variant>-s<seed>`` and writes a Markdown report with the table, a summary
computed from the numbers, the exact commands, timings and figures.

Resumable: a run whose workdir holds a finished evaluation of the same config (the marker
file ``RESULTS_MARKER`` written after its evaluation, plus ``eval/results.json``) is not run
again; an interrupted run resumes from its latest checkpoint (``csc_jax.training.loop``).

Reference rows ('untrained', 'log-mel') do not depend on training; they are reported once,
from the evaluation of the first seed of the ``csc`` run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import platform
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from csc_jax import config as config_lib

RESULTS_MARKER = "results_run.json"  # written into a run's workdir after its evaluation
# Keys that cannot change a run's numbers (ignored when deciding whether a run is finished).
_IGNORED_KEYS = ("train.progress_bar",)
_MAX_PNG_BYTES = 200_000


@dataclasses.dataclass(frozen=True)
class Variant:
    """One system of the comparison.

    Attributes:
      name: row label and workdir prefix.
      overrides: ``{"dotted.key": value}`` applied on top of the base config.
      description: one line for the report.
      primary: run with the full seed list (csc and simclr); ablations use ``ablation_seeds``.
    """

    name: str
    overrides: Mapping[str, Any]
    description: str
    primary: bool = False


VARIANTS: tuple[Variant, ...] = (
    Variant("csc", {}, "CSC as defined in docs/method.md (the base config)", primary=True),
    Variant(
        "simclr",
        {"method": "simclr"},
        "SimCLR baseline: NT-Xent between two conditions of a target, in-batch negatives",
        primary=True,
    ),
    Variant(
        "csc-no-xattn",
        {"model.use_cross_attention": False},
        "CSC with a mean-pooled global vector instead of cross-attention",
    ),
    Variant("csc-no-sep", {"loss.lambda_sep": 0.0}, "CSC without the separation loss"),
    Variant("csc-no-csc", {"loss.lambda_csc": 0.0}, "CSC without the contrastive loss"),
    Variant(
        "csc-K1", {"mixing.num_conditions": 1}, "CSC with one interfering condition per target"
    ),
    Variant(
        "csc-sep0.1",
        {"loss.lambda_sep": 0.1},
        "CSC with the separation loss weighted 0.1 (loss balance; csc-no-sep was better than csc)",
    ),
)


def variant_names() -> list[str]:
    return [v.name for v in VARIANTS]


def select_variants(names: Sequence[str] | None) -> list[Variant]:
    """Variants by name in registry order (None or empty: all); unknown names raise."""
    if not names:
        return list(VARIANTS)
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(variant_names())}"
        )
    return [v for v in VARIANTS if v.name in set(names)]


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2); raises ValueError on an empty list, junk or duplicates."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as e:
        raise ValueError(f"seeds must be a comma-separated list of integers, got {text!r}") from e
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"duplicate seeds in {text!r}")
    return seeds


def load_config_file(path: str):
    """The ConfigDict returned by ``get_config()`` of a config file (e.g. configs/default.py)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    spec = importlib.util.spec_from_file_location("_results_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise config_lib.ConfigError(f"config file {path} has no get_config()")
    return module.get_config()


def _set(config, key: str, value) -> None:
    node = config
    *path, last = key.split(".")
    for p in path:
        if p not in node:
            raise config_lib.ConfigError(f"variant override {key!r}: unknown config key")
        node = node[p]
    if last not in node:
        raise config_lib.ConfigError(f"variant override {key!r}: unknown config key")
    node[last] = value


def run_config(base_config, variant: Variant, seed: int, steps: int | None = None):
    """A validated copy of ``base_config`` with the variant's overrides, seed and steps."""
    config = base_config.copy_and_resolve_references()
    for key, value in variant.overrides.items():
        _set(config, key, value)
    config.seed = int(seed)
    if steps is not None:
        config.train.steps = int(steps)
    config.train.eval_at_end = True
    config_lib.validate_config(config)
    return config


def _flat_json(config) -> dict:
    """Flattened, JSON-normalised (tuples -> lists) config without the ignored keys."""
    d = config.to_dict() if hasattr(config, "to_dict") else config
    flat = config_lib.flatten(json.loads(json.dumps(d)))
    return {k: v for k, v in flat.items() if k not in _IGNORED_KEYS}


def override_args(config, base_config) -> list[str]:
    """``--config.KEY=VALUE`` arguments that turn ``base_config`` into ``config``."""
    new, old = _flat_json(config), _flat_json(base_config)
    args = []
    for key in sorted(new):
        if new[key] == old.get(key):
            continue
        value = new[key]
        text = f"({', '.join(map(str, value))},)" if isinstance(value, list) else str(value)
        args.append(shlex.quote(f"--config.{key}={text}"))
    return args


# ---------------------------------------------------------------- running


@dataclasses.dataclass
class RunRecord:
    """One finished (variant, seed) run."""

    variant: str
    seed: int
    workdir: str
    config: dict
    results: dict  # results.json's 'results': {system: {condition: {eer, min_dcf[, si_snri]}}}
    train_seconds: float
    eval_seconds: float
    status: str  # 'ran' (from scratch), 'resumed' (from a checkpoint) or 'skipped' (done before)
    command: str = ""

    @property
    def total_seconds(self) -> float:
        return self.train_seconds + self.eval_seconds


def finished_run(workdir: str, config) -> dict | None:
    """The marker of a finished evaluation of ``config`` in ``workdir``, else None."""
    marker = os.path.join(workdir, RESULTS_MARKER)
    results = os.path.join(workdir, "eval", "results.json")
    if not (os.path.isfile(marker) and os.path.isfile(results)):
        return None
    try:
        with open(marker) as f:
            done = json.load(f)
    except (OSError, ValueError):
        return None
    saved = _flat_json(config_lib.flat_with_defaults(done.get("config", {})))
    if saved != _flat_json(config):
        return None
    return done


def _latest_checkpoint(workdir: str) -> int | None:
    d = os.path.join(workdir, "checkpoints")
    steps = [int(n) for n in os.listdir(d) if n.isdigit()] if os.path.isdir(d) else []
    return max(steps) if steps else None


def _read_results(workdir: str) -> dict:
    path = os.path.join(workdir, "eval", "results.json")
    with open(path) as f:
        return json.load(f)["results"]


def run_one(
    config, workdir: str, variant: str, command: str = "", log: Callable = print
) -> RunRecord:
    """Train (or resume) and evaluate one run; skip it if ``workdir`` already finished it."""
    from csc_jax.evaluation import verification
    from csc_jax.training import loop as loop_lib
    from csc_jax.training import metric_log

    done = finished_run(workdir, config)
    if done is not None:
        log(f"[results] {variant} seed {config.seed}: finished before, skipped ({workdir})")
        return RunRecord(
            variant,
            int(config.seed),
            workdir,
            done["config"],
            _read_results(workdir),
            float(done["train_seconds"]),
            float(done["eval_seconds"]),
            "skipped",
            command,
        )
    marker = os.path.join(workdir, RESULTS_MARKER)
    if os.path.exists(marker):  # a stale marker of another config must not survive a crash
        os.remove(marker)
    resumed_from = _latest_checkpoint(workdir)
    log(
        f"[results] {variant} seed {config.seed}: training {config.train.steps} steps in "
        f"{workdir}" + (f" (resuming from step {resumed_from})" if resumed_from else "")
    )
    t0 = time.time()
    model, state = loop_lib.train(config, workdir)
    t1 = time.time()
    metric_log.plot_training_curves(workdir)
    verification.evaluate_workdir(config, workdir, model=model, params=state.params)
    t2 = time.time()
    record = RunRecord(
        variant,
        int(config.seed),
        workdir,
        json.loads(json.dumps(config.to_dict())),
        _read_results(workdir),
        t1 - t0,
        t2 - t1,
        "resumed" if resumed_from else "ran",
        command,
    )
    tmp = marker + ".tmp"
    with open(tmp, "w") as f:
        json.dump(
            {
                "config": record.config,
                "train_seconds": record.train_seconds,
                "eval_seconds": record.eval_seconds,
                "resumed_from_step": resumed_from,
                "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
            f,
            indent=2,
        )
    os.replace(tmp, marker)
    log(f"[results] {variant} seed {config.seed}: train {t1 - t0:.0f} s, eval {t2 - t1:.0f} s")
    return record


def plan(
    variants: Sequence[Variant], seeds: Sequence[int], ablation_seeds: Sequence[int]
) -> list[tuple[Variant, int]]:
    """(variant, seed) pairs, seed-major, so every variant gets its first seed early."""
    pairs = []
    for seed in sorted(set(seeds) | set(ablation_seeds)):
        for v in variants:
            if seed in (seeds if v.primary else ablation_seeds):
                pairs.append((v, seed))
    return pairs


def run_results(
    base_config,
    variants: Sequence[Variant] = VARIANTS,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int | None = None,
    workdir_root: str = "runs/results",
    out_md: str = "docs/results.md",
    *,
    ablation_seeds: Sequence[int] = (0,),
    config_label: str = "configs/default.py",
    command: str | None = None,
    log: Callable = print,
) -> list[RunRecord]:
    """Train and evaluate every (variant, seed), then write the report ``out_md``.

    Args:
      base_config: the shared config (e.g. ``load_config_file('configs/default.py')``).
      variants: which variants (default: all of VARIANTS).
      seeds: seeds of the primary variants (csc, simclr).
      steps: training steps of every run (None: ``base_config.train.steps``).
      workdir_root: runs go to ``<workdir_root>/<variant>-s<seed>``.
      out_md: the report; figures go to ``<dirname(out_md)>/<stem of out_md>/``.
      ablation_seeds: seeds of the other variants.
      config_label: how the report's commands name the base config file.
      command: the command line that produced the report (shown in it).
      log: progress printer.

    Returns:
      One RunRecord per run, in the order run.
    """
    if not variants:
        raise ValueError("no variants to run")
    if steps is None:
        steps = int(base_config.train.steps)
    t_start = time.time()
    records = []
    for variant, seed in plan(variants, seeds, ablation_seeds):
        config = run_config(base_config, variant, seed, steps)
        workdir = os.path.join(workdir_root, f"{variant.name}-s{seed}")
        cmd = " ".join(
            ["python train.py", f"--config {config_label}", f"--workdir {workdir}"]
            + override_args(config, base_config)
        )
        records.append(run_one(config, workdir, variant.name, cmd, log))
    write_report(
        records,
        out_md,
        variants=variants,
        steps=steps,
        command=command,
        session_seconds=time.time() - t_start,
        log=log,
    )
    return records


# ---------------------------------------------------------------- aggregation


@dataclasses.dataclass
class Row:
    """One table row: a system of one variant, with per-seed results."""

    label: str
    variant: str
    system: str
    per_seed: dict[int, dict]  # seed -> {condition: {eer, min_dcf[, si_snri]}}

    def values(self, cond: str, key: str) -> np.ndarray:
        return np.array(
            [r[cond][key] for _, r in sorted(self.per_seed.items()) if key in r[cond]], float
        )

    def stat(self, cond: str, key: str = "eer") -> dict:
        """n, mean, std (sample, ddof=1; 0 for one seed), min, max over seeds."""
        x = self.values(cond, key)
        if x.size == 0:
            return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
        std = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
        return {
            "n": int(x.size),
            "mean": float(x.mean()),
            "std": std,
            "min": float(x.min()),
            "max": float(x.max()),
        }


def separates(config: dict) -> bool:
    """Whether a run's model is trained to separate (so 'csc+extract' is meaningful)."""
    return config["method"] == "csc" and float(config["loss"]["lambda_sep"]) > 0


def build_rows(records: Sequence[RunRecord]) -> tuple[list[str], list[Row], list[Row], str]:
    """(conditions, trained rows, reference rows, where the references come from)."""
    if not records:
        raise ValueError("no finished runs to report")
    first = records[0]
    system0 = first.config["method"]
    conds = list(first.results[system0].keys())
    rows: dict[str, Row] = {}
    for rec in records:
        system = rec.config["method"]
        for sysname, label in ((system, rec.variant), ("csc+extract", f"{rec.variant}+extract")):
            if sysname not in rec.results:
                continue
            if sysname == "csc+extract" and not separates(rec.config):
                continue
            got = list(rec.results[sysname].keys())
            if got != conds:
                raise ValueError(
                    f"{rec.workdir}: conditions {got} differ from {conds} of {first.workdir}; "
                    "all runs must share the evaluation config"
                )
            row = rows.setdefault(label, Row(label, rec.variant, sysname, {}))
            row.per_seed[rec.seed] = rec.results[sysname]
    csc_runs = sorted((r for r in records if r.variant == "csc"), key=lambda r: r.seed)
    ref_run = csc_runs[0] if csc_runs else records[0]
    refs = [
        Row(name, ref_run.variant, name, {ref_run.seed: ref_run.results[name]})
        for name in ("untrained", "log-mel")
        if name in ref_run.results
    ]
    return conds, list(rows.values()), refs, f"{ref_run.variant} seed {ref_run.seed}"


def _cell(stat: dict, dcf: float, digits: int = 2) -> str:
    if stat["n"] == 0:
        return "-"
    spread = f" ± {stat['std']:.{digits}f}" if stat["n"] > 1 else ""
    return f"{stat['mean']:.{digits}f}{spread} ({dcf:.3f})"


def eer_table(conds: Sequence[str], rows: Sequence[Row]) -> str:
    lines = [
        "| system | seeds | " + " | ".join(conds) + " |",
        "|---|---" + "|---" * len(conds) + "|",
    ]
    for row in rows:
        cells = [_cell(row.stat(c), row.stat(c, "min_dcf")["mean"]) for c in conds]
        lines.append(f"| {row.label} | {len(row.per_seed)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sisnri_table(conds: Sequence[str], rows: Sequence[Row]) -> str | None:
    sconds = [c for c in conds if c != "clean"]
    sep = [r for r in rows if r.system == "csc+extract"]
    if not sep or not sconds:
        return None
    lines = [
        "| system | seeds | " + " | ".join(sconds) + " |",
        "|---|---" + "|---" * len(sconds) + "|",
    ]
    for row in sep:
        cells = []
        for c in sconds:
            s = row.stat(c, "si_snri")
            spread = f" ± {s['std']:.2f}" if s["n"] > 1 else ""
            cells.append("-" if s["n"] == 0 else f"{s['mean']:.2f}{spread}")
        lines.append(f"| {row.label} | {len(row.per_seed)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(a: Row, b: Row, cond: str) -> dict:
    """Is ``a`` better (lower EER) than ``b`` beyond the seed spread at ``cond``?

    The criterion: the difference of the means exceeds the sum of the two sample standard
    deviations (and, reported alongside, whether the seed ranges overlap). Needs >= 2 seeds
    on both sides; otherwise ``verdict`` is 'undetermined'.
    """
    sa, sb = a.stat(cond), b.stat(cond)
    diff = sb["mean"] - sa["mean"]  # > 0: a has the lower EER
    spread = sa["std"] + sb["std"]
    overlap = not (sa["max"] < sb["min"] or sb["max"] < sa["min"])
    if sa["n"] < 2 or sb["n"] < 2:
        verdict = "undetermined"
    elif diff > spread:
        verdict = "better"
    elif -diff > spread:
        verdict = "worse"
    else:
        verdict = "within spread"
    return {"diff": diff, "spread": spread, "overlap": overlap, "verdict": verdict}


def _fmt(stat: dict) -> str:
    return f"{stat['mean']:.2f}" + (f" ± {stat['std']:.2f}" if stat["n"] > 1 else "")


def summary(conds: Sequence[str], rows: Sequence[Row], refs: Sequence[Row], steps: int) -> str:
    """One paragraph written from the numbers (never from expectations)."""
    by_label = {r.label: r for r in rows}
    parts = []
    for cond in [c for c in ("SIR 0 dB", "SIR 5 dB") if c in conds] or conds[-1:]:
        best = min(rows, key=lambda r: r.stat(cond)["mean"])
        ref_txt = ", ".join(f"{r.label} {r.stat(cond)['mean']:.2f} %" for r in refs)
        parts.append(
            f"At {cond} the lowest EER is **{best.label}** ({_fmt(best.stat(cond))} %, "
            f"{best.stat(cond)['n']} seed(s))" + (f"; references: {ref_txt}." if refs else ".")
        )
    csc, simclr = by_label.get("csc"), by_label.get("simclr")
    if csc is not None and simclr is not None:
        cmp = {c: compare(csc, simclr, c) for c in conds}
        if any(v["verdict"] == "undetermined" for v in cmp.values()):
            parts.append(
                "Whether CSC beats SimCLR beyond the seed spread cannot be judged: it needs "
                f"at least 2 seeds of each (csc has {len(csc.per_seed)}, simclr "
                f"{len(simclr.per_seed)})."
            )
        else:
            better = [c for c, v in cmp.items() if v["verdict"] == "better"]
            worse = [c for c, v in cmp.items() if v["verdict"] == "worse"]
            within = [c for c, v in cmp.items() if v["verdict"] == "within spread"]
            key = next((c for c in ("SIR 0 dB", "SIR 5 dB") if c in cmp), conds[-1])
            k = cmp[key]
            outcome = {
                "better": "CSC beats SimCLR beyond the seed spread",
                "worse": "SimCLR beats CSC beyond the seed spread",
                "within spread": "CSC does not beat SimCLR beyond the seed spread",
            }[k["verdict"]]
            parts.append(
                f"**{outcome} at {key}**: mean EER difference (simclr - csc) "
                f"{k['diff']:+.2f} points vs. std_csc + std_simclr = {k['spread']:.2f} "
                f"({len(csc.per_seed)} vs. {len(simclr.per_seed)} seeds; seed ranges "
                f"{'overlap' if k['overlap'] else 'do not overlap'}). Over all {len(conds)} "
                f"conditions CSC is better beyond the spread in {len(better)}"
                + (f" ({', '.join(better)})" if better else "")
                + f", worse in {len(worse)}"
                + (f" ({', '.join(worse)})" if worse else "")
                + f" and within the spread in {len(within)}."
            )
            extract = by_label.get("csc+extract")
            if extract is not None and compare(extract, simclr, key)["verdict"] != "undetermined":
                x = compare(extract, simclr, key)
                word = {"better": "beats", "worse": "is beaten by"}.get(x["verdict"])
                parts.append(
                    "Scored through target extraction, csc+extract "
                    + (
                        f"{word} SimCLR beyond the seed spread"
                        if word
                        else "is within the seed spread of SimCLR"
                    )
                    + f" at {key} (difference {x['diff']:+.2f} vs. spread {x['spread']:.2f})."
                )
    if refs:
        trained_best = {c: min(r.stat(c)["mean"] for r in rows) for c in conds}
        ref_best = {c: min(r.stat(c)["mean"] for r in refs) for c in conds}
        beat = [c for c in conds if trained_best[c] < ref_best[c]]
        parts.append(
            f"The best trained system has a lower EER than both references in {len(beat)} of "
            f"{len(conds)} conditions"
            + (
                f" (not in: {', '.join(c for c in conds if c not in beat)})"
                if beat != conds
                else ""
            )
            + "."
        )
    ablations = [
        r for r in rows if r.system != "csc+extract" and r.variant not in ("csc", "simclr")
    ]
    if csc is not None and ablations:
        cond = "SIR 0 dB" if "SIR 0 dB" in conds else conds[-1]
        ref = csc.stat(cond)
        items = []
        for r in ablations:
            s = r.stat(cond)
            out = s["mean"] < ref["min"] or s["mean"] > ref["max"]
            where = "outside" if out else "inside"
            items.append(f"{r.label} {s['mean'] - ref['mean']:+.2f} ({where})")
        parts.append(
            f"Ablations at {cond}, EER change vs. csc (mean inside/outside csc's seed range "
            f"{ref['min']:.2f}-{ref['max']:.2f} %): " + "; ".join(items) + "."
        )
    parts.append(f"All runs: {steps} training steps on the same data and augmentation.")
    return " ".join(parts)


# ---------------------------------------------------------------- figures


def _save_small(fig, path: str, dpi: int = 90) -> str:
    """Save a matplotlib Figure as PNG, lowering the resolution until it is < 200 KB."""
    while True:
        fig.savefig(path, dpi=dpi)
        if os.path.getsize(path) < _MAX_PNG_BYTES or dpi <= 40:
            return path
        dpi = int(dpi * 0.75)


def plot_variant_curves(variant: str, workdirs: Sequence[str], path: str) -> str | None:
    """Loss terms vs. step for one variant: mean over seeds (line) and min-max band."""
    from matplotlib.figure import Figure

    from csc_jax.training.metric_log import read_metrics

    runs = [{r["step"]: r for r in read_metrics(w)} for w in workdirs]
    runs = [r for r in runs if r]
    if not runs:
        return None
    steps = sorted(set.intersection(*(set(r) for r in runs)))
    if not steps:
        return None
    keys = [
        k
        for k in ("loss", "sep_loss", "csc_loss", "nt_xent", "si_snri")
        if all(k in r[steps[0]] for r in runs)
    ]
    fig = Figure(figsize=(2.9 * len(keys), 2.5))
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, k in zip(axes, keys, strict=True):
        y = np.array([[r[s][k] for s in steps] for r in runs], float)
        ax.plot(steps, y.mean(0), linewidth=1.2)
        if len(runs) > 1:
            ax.fill_between(steps, y.min(0), y.max(0), alpha=0.25, linewidth=0)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{variant}: mean over {len(runs)} seed(s), band = min-max", fontsize=9)
    fig.tight_layout()
    return _save_small(fig, path)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


def det_scores(runs: Sequence[RunRecord], cond_name: str) -> tuple[dict, np.ndarray]:
    """Scores of every system of ``runs`` at one condition, as the protocol computes them.

    Rebuilds exactly the protocol's corrupted test audio (same trials, same per-trial seeds
    ``[eval.seed, condition index, trial index]``), restores each run's final checkpoint and
    scores: '<variant>' (and '<variant>+extract' for a separating CSC run) for every run, plus
    'untrained' and 'log-mel' built as ``verification.evaluate_workdir`` builds them, from the
    first run's config. Returns ({system: scores}, labels).
    """
    import jax

    from csc_jax.data import sources
    from csc_jax.evaluation import conditions as cond_lib
    from csc_jax.evaluation import verification
    from csc_jax.evaluation.embedders import LogMelEmbedder
    from csc_jax.inference.batched import BatchedModel
    from csc_jax.training import checkpointing

    configs = [ml_collections.ConfigDict(r.config) for r in runs]
    cfg = configs[0]
    ev = cfg.eval
    conds = cond_lib.conditions_from_config(ev)
    names = [c.name for c in conds]
    if cond_name not in names:
        raise ValueError(f"condition {cond_name!r} is not evaluated (conditions: {names})")
    ci = names.index(cond_name)
    source, trials = verification.load_eval_set(cfg)
    length = int(round(ev.seconds * cfg.data.sample_rate))
    audio = verification._Audio(source, length)
    labels = np.array([t.label for t in trials])
    enroll_keys = sorted({t.enroll for t in trials})
    enroll_wave = np.stack([audio(k) for k in enroll_keys])
    enroll_row = {k: i for i, k in enumerate(enroll_keys)}
    rows = np.array([enroll_row[t.enroll] for t in trials])
    tests = verification.corrupted_tests(audio, trials, conds[ci], ci, ev.seed)

    def score(embedder, extract: bool) -> np.ndarray:
        enroll = embedder.embed(enroll_wave)
        if extract:
            vectors = embedder.global_vectors(enroll_wave)
            test = embedder.embed(embedder.extract(tests, vectors[rows]))
        else:
            test = embedder.embed(tests)
        return _cosine(enroll[rows], test)

    out = {}
    for run, rc in zip(runs, configs, strict=True):
        model, params, _ = checkpointing.restore_params(rc, run.workdir)
        emb = BatchedModel(model, params, rc.eval.batch_size)
        out[run.variant] = score(emb, False)
        if separates(run.config) and rc.eval.extraction_scoring:
            out[f"{run.variant}+extract"] = score(emb, True)
        if run is runs[0]:
            untrained = model.init(
                jax.random.PRNGKey(rc.seed + 1),
                np.zeros((1, rc.mixing.num_conditions, 1600), np.float32),
            )["params"]
            out["untrained"] = score(BatchedModel(model, untrained, rc.eval.batch_size), False)
    train_source = sources.make_source(cfg, "train")
    rng = np.random.default_rng(ev.seed)
    ref_idx = rng.permutation(len(train_source))[: min(200, len(train_source))]
    reference = np.stack([cond_lib.fit_length(train_source[int(i)], length) for i in ref_idx])
    out["log-mel"] = score(LogMelEmbedder(cfg.data.sample_rate, reference), False)
    return out, labels


def plot_combined_det(runs: Sequence[RunRecord], cond_name: str, path: str) -> dict:
    """One DET plot of all systems of ``runs`` at ``cond_name``; returns {system: EER %}."""
    from csc_jax import metrics

    scores, labels = det_scores(runs, cond_name)
    curves = {name: metrics.det_curve(s, labels)[:2] for name, s in scores.items()}
    metrics.plot_det(curves, path, title=f"DET, {cond_name} (seed {runs[0].seed})")
    if os.path.getsize(path) >= _MAX_PNG_BYTES:
        raise RuntimeError(f"{path} is {os.path.getsize(path)} bytes (limit {_MAX_PNG_BYTES})")
    return {name: 100.0 * metrics.eer(s, labels)[0] for name, s in scores.items()}


# ---------------------------------------------------------------- report


def machine_info() -> dict:
    """CPU model, core counts, OS, Python, jax version and backend."""
    import jax

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "os": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": f"{jax.default_backend()} ({jax.devices()[0].device_kind})",
    }


def _rel(path: str, start: str) -> str:
    return os.path.relpath(path, start or ".").replace(os.sep, "/")


def write_report(
    records: Sequence[RunRecord],
    out_md: str,
    *,
    variants: Sequence[Variant] = VARIANTS,
    steps: int | None = None,
    command: str | None = None,
    session_seconds: float | None = None,
    log: Callable = print,
) -> str:
    """Write ``out_md`` and its figures (``<dirname(out_md)>/<stem>/*.png``, e.g.
    docs/results/ for docs/results.md); returns the text."""
    out_dir = os.path.dirname(os.path.abspath(out_md))
    # One figure folder per report, so two reports in docs/ never overwrite each other's PNGs.
    fig_dir = os.path.join(out_dir, os.path.splitext(os.path.basename(out_md))[0])
    os.makedirs(fig_dir, exist_ok=True)
    conds, rows, refs, ref_from = build_rows(records)
    if steps is None:
        steps = int(records[0].config["train"]["steps"])
    described = {v.name: v for v in variants}

    # Figures.
    curve_paths = []
    for v in dict.fromkeys(r.variant for r in records):
        path = plot_variant_curves(
            v,
            [r.workdir for r in records if r.variant == v],
            os.path.join(fig_dir, f"curves_{v}.png"),
        )
        if path:
            curve_paths.append((v, path))
    det_note, det_path = "", None
    first_of = {}
    for r in sorted(records, key=lambda r: r.seed):
        first_of.setdefault(r.variant, r)
    det_runs = [first_of[v] for v in ("csc", "simclr") if v in first_of]
    if det_runs and conds:
        det_cond = "SIR 0 dB" if "SIR 0 dB" in conds else conds[-1]
        slug = det_cond.replace(" ", "").replace(".", "p")
        det_path = os.path.join(fig_dir, f"det_{slug}.png")
        log(f"[results] DET at {det_cond}: re-scoring {', '.join(r.workdir for r in det_runs)}")
        eers = plot_combined_det(det_runs, det_cond, det_path)
        table_eer = {}
        for r in det_runs:
            table_eer[r.variant] = r.results[r.config["method"]][det_cond]["eer"]
            if f"{r.variant}+extract" in eers:
                table_eer[f"{r.variant}+extract"] = r.results["csc+extract"][det_cond]["eer"]
        for name in ("untrained", "log-mel"):
            if name in det_runs[0].results:
                table_eer[name] = det_runs[0].results[name][det_cond]["eer"]
        agree = all(abs(eers[k] - v) < 1e-6 for k, v in table_eer.items() if k in eers)
        det_note = (
            f"The DET plot re-scores the trials at {det_cond} from the final checkpoints of "
            + ", ".join(f"{r.variant} seed {r.seed}" for r in det_runs)
            + " with the protocol's own corrupted audio; EER % from these scores: "
            + ", ".join(f"{k} {v:.2f}" for k, v in eers.items())
            + (
                " (identical to the evaluation's results.json)."
                if agree
                else " (the evaluation's results.json has "
                + ", ".join(f"{k} {v:.2f}" for k, v in table_eer.items())
                + "; the difference comes from re-scoring outside the training process)."
            )
        )

    info = machine_info()
    total = sum(r.total_seconds for r in records)
    lines = ["# Results: does CSC work?", ""]
    lines += [
        "Generated by `csc_jax/experiments.py` (`make results`); every number below is read "
        "from the runs' `eval/results.json` and `metrics.jsonl`. Rerunning the command "
        "skips finished runs and rewrites this page.",
        "",
        "## Summary",
        "",
        summary(conds, rows, refs, steps),
        "",
        "## Speaker verification",
        "",
        f"EER % as mean ± sample std over seeds (minDCF mean, p_target = "
        f"{records[0].config['eval']['p_target']}). The test side of each trial is clean, has "
        "coloured noise at the given SNR, or one interfering speaker at the given SIR. "
        f"Reference rows (untrained, log-mel) do not depend on training: from {ref_from}.",
        "",
        eer_table(conds, list(rows) + list(refs)),
        "",
    ]
    no_sep = [
        r.variant
        for r in records
        if r.config["method"] == "csc" and not separates(r.config) and r.seed == records[0].seed
    ]
    lines += [
        "`<variant>+extract`: the test side is first passed through target extraction "
        "conditioned on the enrollment's global vector, then embedded; reported only for "
        "variants trained to separate"
        + (
            f" (not for {', '.join(dict.fromkeys(no_sep))}: untrained extraction head)"
            if no_sep
            else ""
        )
        + ".",
        "",
    ]
    st = sisnri_table(conds, rows)
    if st:
        lines += ["SI-SNRi dB of the extracted target (target trials), mean ± std:", "", st, ""]
    csc_row = next((r for r in rows if r.label == "csc"), None)
    simclr_row = next((r for r in rows if r.label == "simclr"), None)
    if csc_row and simclr_row:
        lines += [
            "CSC vs. SimCLR per condition (criterion: |mean difference| > std_csc + std_simclr):",
            "",
            "| condition | EER simclr - csc | std_csc + std_simclr | ranges overlap | verdict |",
            "|---|---|---|---|---|",
        ]
        for c in conds:
            k = compare(csc_row, simclr_row, c)
            verdict = {"better": "CSC better", "worse": "SimCLR better"}.get(
                k["verdict"], k["verdict"]
            )
            lines.append(
                f"| {c} | {k['diff']:+.2f} | {k['spread']:.2f} | "
                f"{'yes' if k['overlap'] else 'no'} | {verdict} |"
            )
        lines.append("")
    lines += ["## Variants", "", "| variant | seeds | overrides | what |", "|---|---|---|---|"]
    for v in dict.fromkeys(r.variant for r in records):
        seeds_v = sorted(r.seed for r in records if r.variant == v)
        var = described.get(v)
        ov = ", ".join(f"`{k}={val}`" for k, val in (var.overrides.items() if var else ())) or "-"
        lines.append(
            f"| {v} | {','.join(map(str, seeds_v))} | {ov} | {var.description if var else ''} |"
        )
    lines += ["", "## Figures", ""]
    if det_path:
        lines += [f"![DET]({_rel(det_path, out_dir)})", "", det_note, ""]
    for v, p in curve_paths:
        lines += [f"Training curves, {v}: ![{v}]({_rel(p, out_dir)})", ""]
    lines += [
        "## Reproduce",
        "",
        "This page was produced by (`make results` runs the script with its defaults: "
        "configs/default.py, its training steps, seeds 0,1,2 for csc and simclr, seed 0 for the "
        "ablations):",
        "",
        "```bash",
        command or "make results",
        "```",
        "",
        "Each run is equivalent to one `train.py` command (train, then the verification "
        "protocol; same workdir layout):",
        "",
        "```bash",
        *[r.command for r in records if r.command],
        "```",
        "",
        "## Cost",
        "",
        f"Steps per run: {steps}. Machine: {info['cpu']}, {info['cores']} cores "
        f"({info['usable_cores']} usable), {info['os']}; Python {info['python']}, "
        f"jax {info['jax']}, backend {info['backend']}. Wall times include compilation; "
        "the CPU may be shared with other jobs.",
        "",
        "| run | status | train s | eval s | total s |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r.variant}-s{r.seed} | {r.status} | {r.train_seconds:.0f} | "
            f"{r.eval_seconds:.0f} | {r.total_seconds:.0f} |"
        )
    lines += [
        f"| **total** | | {sum(r.train_seconds for r in records):.0f} | "
        f"{sum(r.eval_seconds for r in records):.0f} | {total:.0f} |",
        "",
        "`skipped`: finished by an earlier invocation (its recorded times are shown); "
        "`resumed`: continued from a checkpoint (times of the finishing invocation only)."
        + (
            f" This invocation took {session_seconds:.0f} s in all."
            if session_seconds is not None
            else ""
        ),
        "",
    ]
    text = "\n".join(lines)
    with open(out_md, "w") as f:
        f.write(text)
    log(f"[results] wrote {out_md} and {fig_dir}/")
    return text
