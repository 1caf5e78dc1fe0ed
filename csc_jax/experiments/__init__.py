"""Results pages: CSC, the SimCLR baseline and the ablations, trained and compared with
intervals over trials and seeds.

* :mod:`.variants`: the registry of compared systems (name + config overrides);
* :mod:`.runner`: trains and evaluates every (variant, seed), resumably; equal wall time;
* :mod:`.statistics`: two-level bootstrap (speakers and seeds), the rule for a finding,
  the convergence (plateau) test;
* :mod:`.report`: the markdown page and its figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from csc_jax.experiments.report import write_report
from csc_jax.experiments.runner import RESULTS_MARKER, RunRecord, run_results
from csc_jax.experiments.variants import (
    VARIANTS,
    Variant,
    parse_seeds,
    run_config,
    select_variants,
    variant_names,
)

__all__ = [
    "RESULTS_MARKER",
    "VARIANTS",
    "RunRecord",
    "Variant",
    "parse_seeds",
    "run_and_report",
    "run_config",
    "run_results",
    "select_variants",
    "variant_names",
    "write_report",
]


def run_and_report(
    base_config,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    steps: int,
    workdir_root: str,
    out_md: str,
    *,
    title: str,
    config_label: str,
    command: str,
    log: Callable = print,
) -> list[RunRecord]:
    """Train and evaluate every (variant, seed), then write the page ``out_md``."""
    records = run_results(
        base_config, variants, seeds, steps, workdir_root, config_label=config_label, log=log
    )
    write_report(
        records,
        out_md,
        variants=variants,
        title=title,
        command=command,
        bootstrap_replicates=int(base_config.eval.bootstrap_replicates),
        log=log,
    )
    return records
