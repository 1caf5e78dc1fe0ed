"""CPU demo: CSC on the embedded procedural corpus (8 kHz, 1 s crops, K=3, a small TCN).

Command (what `make demo` runs):
  python train.py --config configs/default.py --workdir runs/demo

Trains 600 steps with the validation EER every 100 steps, then runs the verification protocol
(about 12,000 trials, 95 % intervals) against the MFCC and log-mel references. Measured cost,
result and how far from convergence it is: README "Results".
"""

from csc_jax.config import base_config


def get_config():
    return base_config()
