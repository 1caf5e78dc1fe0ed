"""Results pages: CSC, the SimCLR baseline and the ablations, trained and compared with
intervals over trials and seeds.

* :mod:`.variants`: the registry of compared systems (name + config overrides);
* :mod:`.runner`: trains and evaluates every (variant, seed), resumably, in pieces; equal
  wall time;
* :mod:`.store`: the compact committed record of each run (scores as ranks), atomic writes;
* :mod:`.statistics`: two-level bootstrap (speakers and seeds), the rule for a finding,
  the convergence (plateau) test;
* :mod:`.report`: the markdown page and its figures, from records only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from csc_jax.errors import ConfigError
from csc_jax.experiments import store
from csc_jax.experiments.report import write_report
from csc_jax.experiments.runner import RESULTS_MARKER, plan, record_config_problem, run_results
from csc_jax.experiments.store import RunRecord
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
    "report_from_records",
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
    campaign_dir: str,
    title: str,
    config_label: str,
    command: str,
    only: set | None = None,
    time_budget_minutes: float | None = None,
    allow_mixed_machines: bool = False,
    log: Callable = print,
) -> list[RunRecord]:
    """Run every (variant, seed) without a record, then write the page ``out_md`` from the
    records once every pair has one (else say what is missing and write no page)."""
    records, left = run_results(
        base_config, variants, seeds, steps, workdir_root, campaign_dir=campaign_dir,
        config_label=config_label, only=only, time_budget_minutes=time_budget_minutes, log=log,
    )  # fmt: skip
    missing = len(plan(variants, seeds)) - len(records)
    if missing:
        log(f"[results] {missing} run(s) without a record: page {out_md} not written")
        return records
    report_from_records(
        base_config, variants, seeds, steps, out_md, campaign_dir=campaign_dir, title=title,
        command=command, allow_mixed_machines=allow_mixed_machines, log=log,
    )  # fmt: skip
    return records


def report_from_records(
    base_config,
    variants: Sequence[Variant],
    seeds: Sequence[int],
    steps: int,
    out_md: str,
    *,
    campaign_dir: str,
    title: str,
    command: str,
    allow_mixed_machines: bool = False,
    log: Callable = print,
) -> str:
    """Write ``out_md`` from the campaign's records alone (no training); returns the text.

    Raises ConfigError naming the (variant, seed) pairs without a record, or the first record
    whose config is not that (variant, seed) of ``base_config`` at ``steps`` (the page names
    this command, so its records must be what the command runs).
    """
    planned = plan(variants, seeds)
    pairs = [(v.name, s) for v, s in planned]
    dirs = store.require_records(campaign_dir, pairs)
    for (variant, seed), record_dir in zip(planned, dirs, strict=True):
        problem = record_config_problem(record_dir, base_config, variant, seed, steps)
        if problem:
            raise ConfigError(problem)
    records = [store.read_record(d) for d in dirs]
    return write_report(
        records,
        out_md,
        variants=variants,
        title=title,
        command=command,
        bootstrap_replicates=int(base_config.eval.bootstrap_replicates),
        allow_mixed_machines=allow_mixed_machines,
        log=log,
    )
