#!/usr/bin/env python3
"""Train and evaluate CSC, the SimCLR baseline and the ablations; write docs/results.md.

Every (variant, seed) run goes to <workdir_root>/<variant>-s<seed>; rerunning the same command
skips finished runs and resumes interrupted ones from their checkpoints, then rewrites the
report. The logic lives in csc_jax/experiments.py.

Example (what `make results` runs):
    python scripts/run_results.py --out docs/results.md --workdir_root runs/results
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/default.py", help="config file (get_config())")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: config's)")
    p.add_argument("--seeds", default="0,1,2", help="seeds of csc and simclr (comma list)")
    p.add_argument(
        "--seeds_all",
        nargs="?",
        const="",
        default="0",
        help="seeds of the ablation variants (comma list, default 0); given without a value:\n"
        "the --seeds list, so every variant runs every seed",
    )
    p.add_argument("--variants", default="", help="comma list of variants (default: all)")
    p.add_argument("--workdir_root", default="runs/results", help="parent of the run workdirs")
    p.add_argument("--out", default="docs/results.md", help="the report (figures next to it)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, REPO)
    from csc_jax import experiments
    from csc_jax.config import ConfigError
    from csc_jax.training.loop import Preempted

    try:
        seeds = experiments.parse_seeds(args.seeds)
        ablation_seeds = experiments.parse_seeds(args.seeds_all) if args.seeds_all else seeds
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        variants = experiments.select_variants(names)
        base = experiments.load_config_file(args.config)
        if args.steps is not None and args.steps < 1:
            raise ValueError(f"--steps={args.steps}: must be >= 1")
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    steps = args.steps if args.steps is not None else int(base.train.steps)
    command = " ".join(
        ["python scripts/run_results.py", f"--config {shlex.quote(args.config)}"]
        + [f"--steps {steps}", f"--seeds {','.join(map(str, seeds))}"]
        + [f"--seeds_all {','.join(map(str, ablation_seeds))}"]
        + ([f"--variants {','.join(v.name for v in variants)}"] if names else [])
        + [f"--workdir_root {shlex.quote(args.workdir_root)}", f"--out {shlex.quote(args.out)}"]
    )
    try:
        experiments.run_results(
            base,
            variants,
            seeds,
            steps,
            args.workdir_root,
            args.out,
            ablation_seeds=ablation_seeds,
            config_label=args.config,
            command=command,
        )
    except ConfigError as e:  # invalid variant config or a workdir holding another run
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except Preempted as e:  # SIGTERM/SIGINT: the run's state is saved; rerun to continue
        print(e.message, file=sys.stderr, flush=True)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
