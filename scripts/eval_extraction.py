"""Target-speaker extraction of a trained model on two-talker mixtures of held-out speakers.

  python scripts/eval_extraction.py --workdir runs/extraction_small [--sir_db 0 5] [--json out.json]

Only for models trained on the embedded procedural corpus (``data.source='synthetic'``): the
mixtures pair its test speakers (``csc_jax.evaluation.extraction``), split into voices of
clearly different mean f0 ("distinct", ratio > --min_f0_ratio) and the rest ("similar").
Prints, per SIR and group: mixtures, mean SI-SNRi over the mixture, the share of mixtures
improved, and the enrollment margin (target enrolled vs. interferer enrolled).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import csc_jax
from csc_jax.data import synthetic
from csc_jax.evaluation import extraction


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--sir_db", type=float, nargs="+", default=[0.0, 5.0])
    parser.add_argument("--min_f0_ratio", type=float, default=1.4)
    parser.add_argument("--json", default="", help="also write the figures here")
    args = parser.parse_args(argv)

    model = csc_jax.load(args.workdir, step=args.step)
    c = model.config
    if c.data.source != "synthetic":
        raise SystemExit(
            f"{args.workdir}: data.source={c.data.source!r}; this probe needs the embedded "
            "corpus (data.source='synthetic')"
        )
    corpus = synthetic.load_or_generate(
        c.data.synthetic, "test", c.data.sample_rate, c.data.cache_dir
    )
    groups = extraction.pitch_pairs(corpus, c.data.synthetic, args.min_f0_ratio)
    rows = []
    print("| SIR dB | voices | mixtures | SI-SNRi dB (mean) | improved | enrollment margin dB |")
    print("|---|---|---|---|---|---|")
    for sir in args.sir_db:
        for group, pairs in groups.items():
            if not pairs:
                continue
            got = extraction.two_talker_extraction(model, corpus, pairs, sir_db=sir)
            row = {
                "sir_db": sir,
                "group": group,
                "mixtures": len(pairs),
                "si_snri_db": float(np.mean(got["si_snri"])),
                "improved": float(np.mean(got["si_snri"] > 0)),
                "margin_db": float(np.mean(got["margin"])),
            }
            rows.append(row)
            print(
                f"| {sir:g} | {group} | {len(pairs)} | {row['si_snri_db']:+.2f} | "
                f"{row['improved']:.0%} | {row['margin_db']:+.2f} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"workdir": args.workdir, "step": model.step, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
