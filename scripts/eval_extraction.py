"""Target-speaker extraction of a trained model on two-talker mixtures of held-out speakers.

  python scripts/eval_extraction.py --workdir runs/extraction_small [--sir_db 0 5] [--json out.json]
  python scripts/eval_extraction.py --workdir runs/demo --max_pairs 200   # a 120-speaker test split

Only for models trained on the embedded procedural corpus (``data.source='synthetic'``): the
mixtures pair its test speakers (``csc_jax.evaluation.extraction``), split into voices of
clearly different mean f0 ("distinct", ratio > --min_f0_ratio) and the rest ("similar").
Prints, per SIR and group: mixtures, mean SI-SNRi over the mixture, the share of mixtures
improved, and the enrollment margin (target enrolled vs. interferer enrolled). For the 'stft'
front end also the ideal amplitude mask's SI-SNRi on the same mixtures: the ceiling of a
magnitude mask with the mixture's phase at the model's window and hop.
--max_pairs draws that many pairs per group (seeded, the same for every model); the default
takes all ordered pairs, which for the demo's 120 test speakers is 14,280 mixtures.
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
    parser.add_argument("--max_pairs", type=int, default=0, help="pairs per group (0: all)")
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
    groups = {g: extraction.sample_pairs(p, args.max_pairs) for g, p in groups.items()}
    ideal = c.model.frontend == "stft"
    rows = []
    head = "| SIR dB | voices | mixtures | SI-SNRi dB (mean) | improved | enrollment margin dB |"
    print(head + (" ideal mask SI-SNRi dB |" if ideal else ""))
    print("|---|---|---|---|---|---|" + ("---|" if ideal else ""))
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
            line = (
                f"| {sir:g} | {group} | {len(pairs)} | {row['si_snri_db']:+.2f} | "
                f"{row['improved']:.0%} | {row['margin_db']:+.2f} |"
            )
            if ideal:
                w, h = c.model.stft_window, c.model.stft_hop
                best = extraction.ideal_mask_extraction(corpus, pairs, sir, w, h)["si_snri"]
                row["ideal_mask_si_snri_db"] = float(np.mean(best))
                line += f" {row['ideal_mask_si_snri_db']:+.2f} |"
            rows.append(row)
            print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"workdir": args.workdir, "step": model.step, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
