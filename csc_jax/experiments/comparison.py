"""Paired comparison of one variant's committed records against another's (or against a
hand-crafted reference they hold), from any two campaigns: for example one system before and
after a change whose old records stay in the repo. The command is scripts/compare_records.py;
the statistics are csc_jax/experiments/statistics.py's, as on the results pages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from csc_jax.evaluation.report import fmt_interval
from csc_jax.experiments import statistics, store
from csc_jax.io_utils import markdown_table


def compare_record_sets(
    a: tuple[str, str],
    b: tuple[str, str] | str,
    seeds: Sequence[int],
    *,
    extract: bool = False,
) -> str:
    """Paired comparison of one variant's records against another's, from two campaigns (for
    example the same system before and after a change whose old records stay in the repo).

    Args:
      a, b: (campaign folder, variant); the records ``<campaign>/<variant>-s<seed>``. ``b``
        may instead name a hand-crafted reference that a's records hold ('mfcc', 'log-mel';
        :func:`store.is_reference`): a's variant against it on the same trials.
      seeds: the seeds of both (each side's records of these seeds).
      extract: compare the systems scored through extraction ('csc+extract') instead.

    The bootstrap's replicates and seed are side a's first record's ``eval.bootstrap_replicates``
    and ``eval.seed``, as its page used them.

    Returns:
      A markdown table: mean EER % [95 %] of each side and of ``a - b`` per condition, the
      two-level bootstrap of csc_jax/experiments/statistics.py over the shared trials.

    Raises:
      ValueError: the two sides were scored on different trials (another evaluation config),
        or ``b`` names no hand-crafted reference of a's records.
    """
    reference = b if isinstance(b, str) else None
    sides = []
    for campaign, variant in (a,) if reference else (a, b):
        dirs = [os.path.join(campaign, store.record_name(variant, s)) for s in seeds]
        sides.append((f"{os.path.basename(os.path.normpath(campaign))}/{variant}", dirs))
    records = [store.read_record(d) for _, dirs in sides for d in dirs]
    labels, clusters, per_run = store.load_run_scores(records)
    if reference:
        if reference not in per_run[0] or not store.is_reference(reference):
            have = ", ".join(r for r in per_run[0] if store.is_reference(r))
            raise ValueError(
                f"{reference!r}: not a hand-crafted reference of {sides[0][1][0]} (it has "
                f"{have}; the untrained model depends on the seed: compare its records)"
            )
        sides.append((reference, []))
    name_of = "csc+extract" if extract else None
    replicates = int(records[0].config["eval"]["bootstrap_replicates"])
    ev_seed = int(records[0].config["eval"]["seed"])
    conds = list(records[0].results[records[0].system])
    header = ["system"] + conds
    rows = {label: [label] for label, _ in sides}
    diff_row = [f"{sides[0][0]} - {sides[1][0]}"]
    for cond in conds:
        systems, trials = [], None
        for i, (label, _) in enumerate(sides):
            if reference and i == 1:  # one score set: references do not depend on the seed
                scores, _ = per_run[0][reference][cond]
                systems.append(statistics.SeedScores(label, [scores], [-1]))
                continue
            runs = per_run[i * len(seeds) : (i + 1) * len(seeds)]
            system = name_of or records[i * len(seeds)].system
            per_seed = [run[system][cond][0] for run in runs]
            trials = runs[0][system][cond][1]
            systems.append(statistics.SeedScores(label, per_seed, list(seeds)))
        sub_labels = labels[trials]
        sub_clusters = clusters[trials] if clusters is not None else None
        means, diffs = statistics.compare(
            systems, sub_labels, sub_clusters, replicates=replicates, seed=ev_seed
        )
        for label, _ in sides:
            rows[label].append(fmt_interval(means[label].value, means[label].ci))
        d = diffs[(sides[0][0], sides[1][0])]
        verdict = {"A": f"**{sides[0][0]} better**", "B": f"**{sides[1][0]} better**"}
        diff_row.append(f"{fmt_interval(d.value, d.ci)} {verdict.get(d.verdict, 'no finding')}")
    return markdown_table(header, list(rows.values()) + [diff_row])
