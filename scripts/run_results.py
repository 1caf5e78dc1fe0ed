#!/usr/bin/env python3
"""Train and evaluate CSC, the SimCLR baseline and the ablations; write a results page.

Every (variant, seed) run goes to <workdir_root>/<variant>-s<seed>; rerunning the same command
skips finished runs and resumes interrupted ones from their checkpoints, then rewrites the
page. The logic lives in csc_jax/experiments/.

Example (what `make results` runs):
    python scripts/run_results.py --config configs/default.py --seeds 0,1,2 \\
        --variants csc,simclr --out docs/results.md --workdir_root runs/results
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
    p.add_argument("--out", default="docs/results.md", help="the page (figures next to it)")
    p.add_argument("--title", default="Results: does CSC work?", help="the page's title")
    p.add_argument("--debug", action="store_true", help="tracebacks for expected errors")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def run():
        from csc_jax import config as config_lib
        from csc_jax import experiments

        seeds = experiments.parse_seeds(args.seeds)
        names = [n.strip() for n in args.variants.split(",") if n.strip()]
        variants = experiments.select_variants(names)
        base = config_lib.load_config_file(args.config)
        if args.steps is not None and args.steps < 1:
            raise errors.ConfigError(f"--steps={args.steps}: must be >= 1")
        steps = args.steps if args.steps is not None else int(base.train.steps)
        command = " ".join(
            ["python scripts/run_results.py", f"--config {shlex.quote(args.config)}"]
            + [f"--steps {steps}", f"--seeds {','.join(map(str, seeds))}"]
            + ([f"--variants {','.join(v.name for v in variants)}"] if names else [])
            + [f"--workdir_root {shlex.quote(args.workdir_root)}"]
            + [f"--out {shlex.quote(args.out)}", f"--title {shlex.quote(args.title)}"]
        )
        experiments.run_and_report(
            base,
            variants,
            seeds,
            steps,
            args.workdir_root,
            args.out,
            title=args.title,
            config_label=args.config,
            command=command,
        )

    from csc_jax.training.preemption import Preempted

    try:
        return errors.run_main(run, debug=args.debug or errors.debug_requested([]))
    except Preempted as e:  # SIGTERM/SIGINT: the run's state is saved; rerun to continue
        print(e.message, file=sys.stderr, flush=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
