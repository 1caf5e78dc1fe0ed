"""Reference CPU configuration: CSC on the embedded procedural corpus (8 kHz, 1 s crops, K=3,
a small TCN), 600 steps. docs/results.md (CSC vs SimCLR, 3 seeds) is trained with it.

Command of one run:
  python train.py --config configs/default.py --workdir runs/default

Command of its page (what `make results` runs):
  python scripts/run_results.py --config configs/default.py --steps 600 --seeds 0,1,2 \\
      --variants csc,simclr --workdir_root runs/results --out docs/results.md

Trains 600 steps with the validation EER every 100 steps, then runs the verification protocol
(about 12,000 trials, 95 % intervals) against the MFCC and log-mel references. `make demo` runs
the same model for 300 steps (configs/demo.py). Measured cost and results: README "Results"
and docs/results.md.
"""

from csc_jax.config import base_config


def get_config():
    return base_config()
