#!/usr/bin/env python3
"""Time to accuracy: validation EER (clean, SIR 0 dB) and training SI-SNRi against training
wall-clock minutes, for groups of runs trained on the same machine, in one PNG.

Example (the front ends of docs/frontends.md, 3 seeds each):
    python scripts/plot_time_to_accuracy.py --out docs/time_to_accuracy.png \\
        --run stft=runs/frontends/csc-s0,runs/frontends/csc-s1,runs/frontends/csc-s2 \\
        --run waveform=runs/frontends/waveform-time-s0,runs/frontends/waveform-time-s1,\\
runs/frontends/waveform-time-s2

The logic lives in csc_jax/experiments/time_to_accuracy.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from csc_jax import errors  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--run",
        action="append",
        required=True,
        help="LABEL=WORKDIR[,WORKDIR...] (repeat for each group, e.g. one per front end)",
    )
    p.add_argument("--out", default="docs/time_to_accuracy.png", help="the PNG to write")
    p.add_argument("--title", default="Time to accuracy", help="figure title")
    p.add_argument(
        "--allow_mixed_machines", action="store_true", help="plot runs from several machines"
    )
    p.add_argument("--debug", action="store_true", help="tracebacks for expected errors")
    return p.parse_args(argv)


def groups(specs: list[str]) -> dict[str, list[str]]:
    """['stft=a,b', 'waveform=c'] -> {'stft': ['a', 'b'], 'waveform': ['c']}."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        label, sep, dirs = spec.partition("=")
        if not sep or not label or not dirs:
            raise errors.ConfigError(f"--run {spec!r}: expected LABEL=WORKDIR[,WORKDIR...]")
        out.setdefault(label, []).extend(d for d in dirs.split(",") if d)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)

    def run() -> None:
        from csc_jax.experiments.time_to_accuracy import plot_time_to_accuracy

        summary = plot_time_to_accuracy(
            groups(args.run),
            args.out,
            title=args.title,
            allow_mixed_machines=args.allow_mixed_machines,
        )
        print(f"wrote {args.out} ({'; '.join(summary['machines'])})")
        for label, curves in summary["labels"].items():
            for key, c in curves.items():
                if c["minutes"]:
                    print(
                        f"  {label} {key}: {c['mean'][-1]:.2f} at {c['minutes'][-1]:.1f} min "
                        f"(mean of the runs)"
                    )
        print(json.dumps({"machines": summary["machines"]}))

    return errors.run_main(run, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
