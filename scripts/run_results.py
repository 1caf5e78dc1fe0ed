#!/usr/bin/env python3
"""Train and evaluate CSC, the SimCLR baseline and the ablations; write a results page.

Every (variant, seed) run trains in <workdir_root>/<variant>-s<seed> and leaves a compact
record in <results_root>/<campaign>/<variant>-s<seed> (results/README.md). Rerunning the same
command skips recorded runs and resumes interrupted ones from their checkpoints; once every
run has a record the page is written from the records. --only and --time_budget_minutes run a
campaign in pieces; --from_records rebuilds the page from the committed records, no training.
The logic lives in csc_jax/experiments/.

Example (what `make results` runs):
    python scripts/run_results.py --config configs/default.py --seeds 0,1,2 \\
        --variants csc,simclr --out docs/results.md --workdir_root runs/results \\
        --campaign results
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from csc_jax import allocator  # noqa: E402

allocator.ensure()  # before JAX starts

from csc_jax import errors  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/default.py", help="config file (get_config())")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: config's)")
    p.add_argument("--seeds", default="0,1,2", help="seeds of every variant (comma list)")
    p.add_argument("--variants", default="", help="comma list of variants (default: all)")
    p.add_argument("--workdir_root", default="runs/results", help="parent of the run workdirs")
    p.add_argument("--results_root", default="results", help="the results store (committed)")
    p.add_argument(
        "--campaign", default="", help="record folder under --results_root (default: --out's stem)"
    )
    p.add_argument("--only", default="", help="run only these: variant/seed[,variant/seed]")
    p.add_argument(
        "--time_budget_minutes",
        type=float,
        default=None,
        help="start no run after this many minutes (the current one finishes)",
    )
    p.add_argument(
        "--from_records", action="store_true", help="rebuild the page from the records only"
    )
    p.add_argument(
        "--allow_mixed_machines",
        action="store_true",
        help="a page of records from several machines (labelled as such) instead of an error",
    )
    p.add_argument("--out", default="docs/results.md", help="the page (figures next to it)")
    p.add_argument("--title", default="Results: does CSC work?", help="the page's title")
    p.add_argument("--debug", action="store_true", help="tracebacks for expected errors")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def run():
        from csc_jax import config as config_lib
        from csc_jax import experiments
        from csc_jax.experiments import runner

        seeds = experiments.parse_seeds(args.seeds)
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        variants = experiments.select_variants(names)
        base = config_lib.load_config_file(args.config)
        if args.steps is not None and args.steps < 1:
            raise errors.ConfigError(f"--steps={args.steps}: must be >= 1")
        steps = args.steps if args.steps is not None else int(base.train.steps)
        if args.time_budget_minutes is not None and args.time_budget_minutes <= 0:
            raise errors.ConfigError(f"--time_budget_minutes={args.time_budget_minutes}: not > 0")
        campaign = args.campaign or os.path.splitext(os.path.basename(args.out))[0]
        campaign_dir = os.path.join(args.results_root, campaign)
        # The page's command: the campaign itself (pieces and rebuilds give the same page).
        command = " ".join(
            ["python scripts/run_results.py", f"--config {shlex.quote(args.config)}"]
            + [f"--steps {steps}", f"--seeds {','.join(map(str, seeds))}"]
            + ([f"--variants {','.join(v.name for v in variants)}"] if names else [])
            + [f"--workdir_root {shlex.quote(args.workdir_root)}"]
            + [f"--results_root {shlex.quote(args.results_root)}"]
            + [f"--campaign {shlex.quote(campaign)}"]
            + [f"--out {shlex.quote(args.out)}", f"--title {shlex.quote(args.title)}"]
        )
        common = dict(campaign_dir=campaign_dir, title=args.title, command=command)
        if args.from_records:
            experiments.report_from_records(
                base, variants, seeds, steps, args.out,
                allow_mixed_machines=args.allow_mixed_machines, **common,
            )  # fmt: skip
            return
        only = runner.parse_only(args.only, variants, seeds) if args.only else None
        experiments.run_and_report(
            base, variants, seeds, steps, args.workdir_root, args.out,
            config_label=args.config, only=only, time_budget_minutes=args.time_budget_minutes,
            allow_mixed_machines=args.allow_mixed_machines, **common,
        )  # fmt: skip

    from csc_jax.training.preemption import Preempted

    try:
        return errors.run_main(run, debug=args.debug or errors.debug_requested([]))
    except Preempted as e:  # SIGTERM/SIGINT: the run's state is saved; rerun to continue
        print(e.message, file=sys.stderr, flush=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
