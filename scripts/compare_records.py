#!/usr/bin/env python3
"""Paired comparison of two sets of committed run records, no training.

Each side is CAMPAIGN_FOLDER:VARIANT (its records CAMPAIGN_FOLDER/VARIANT-s<seed>); both sides
must have been scored on the same trials. --b may instead be a hand-crafted reference the
records hold (mfcc, log-mel): the variant against it, e.g. --a results/transfer:csc-plain --b mfcc.
Prints mean EER % [95 %] of each side and of A - B
per condition, over the seeds (two-level bootstrap, csc_jax/experiments/statistics.py).

Example (docs/method.md, deviation 10: extraction conditioned on another crop's clean target
vector against the mixture's own global vector, the same stft runs otherwise):
    python scripts/compare_records.py --a results/frontends:csc \\
        --b results/frontends-global:csc --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from csc_jax.errors import ConfigError  # noqa: E402
from csc_jax.experiments.comparison import compare_record_sets  # noqa: E402


def _side(text: str) -> tuple[str, str]:
    folder, sep, variant = text.rpartition(":")
    if not sep or not folder or not variant:
        raise ConfigError(f"{text!r}: expected CAMPAIGN_FOLDER:VARIANT, e.g. results/frontends:csc")
    return folder, variant


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="CAMPAIGN_FOLDER:VARIANT")
    p.add_argument(
        "--b",
        required=True,
        help="CAMPAIGN_FOLDER:VARIANT, or a hand-crafted reference (mfcc, log-mel)",
    )
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--extract", action="store_true", help="compare the '+extract' systems")
    args = p.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        b = args.b if ":" not in args.b else _side(args.b)
        table = compare_record_sets(_side(args.a), b, seeds, extract=args.extract)
    except (ConfigError, ValueError, OSError) as e:
        print(f"compare_records: {e}", file=sys.stderr)
        return 2
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
