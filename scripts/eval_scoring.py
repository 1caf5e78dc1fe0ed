"""Score finished runs under several test-side scoring modes with the eval protocol.

    python scripts/eval_scoring.py --modes plain,attend runs/results/csc-s0 runs/results/csc-s1

Modes (csc_jax.evaluation.verification.run_protocol): ``plain`` = the K=1 embedding of the test
(the default protocol's row), ``extract`` = embed the test after target extraction conditioned
on the enrollment, ``attend`` = the test's frames pooled by the enrollment's cross-attention
query. Same trials, conditions and corrupted audio as ``eval.py``; prints EER % per run, mode
and condition and writes them as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workdirs", nargs="+", help="training workdirs (config.json + checkpoints/)")
    p.add_argument("--modes", default="plain,attend", help="comma list: plain,extract,attend")
    p.add_argument("--out", default=None, help="JSON file for every figure")
    args = p.parse_args(argv)

    from csc_jax.evaluation import verification
    from csc_jax.evaluation.embedders import ModelEmbedder
    from csc_jax.inference import read_config

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    report = {}
    for workdir in args.workdirs:
        t0 = time.time()
        config = read_config(workdir)
        model, params, step = verification.restore_params(config, workdir)
        embedder = ModelEmbedder(model, params, config.eval.batch_size)
        source, trials = verification.load_eval_set(config)
        systems = {m: (embedder, m) for m in modes}
        results = verification.run_protocol(systems, source, trials, config)
        report[workdir] = {"step": step, "results": results}
        print(f"{workdir} (step {step}, {len(trials)} trials, {time.time() - t0:.0f} s)")
        print(verification.format_table(results), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
