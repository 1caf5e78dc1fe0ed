"""CPU demo: CSC on the embedded procedural corpus (8 kHz, 1 s crops, K=3).

Command:
  python train.py --config configs/default.py --workdir runs/default

Measured cost and result: see README "Results" (filled from a measured run).
"""

from csc_jax.config import base_config


def get_config():
    return base_config()
