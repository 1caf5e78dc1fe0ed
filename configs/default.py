"""CPU demo: CSC on the embedded procedural corpus (8 kHz, 1 s crops, K=3).

Command (what `make demo` runs):
  python train.py --config configs/default.py --workdir runs/demo

Measured cost on the 2-core CPU: `make demo` from a fresh clone took 12 min 4 s in all
(install from a warm pip cache, corpus generation, 600 steps in 10 min 19 s at ~1.0 s/step,
evaluation 62 s). Result (EER %, 400 trials): clean 23.5, SNR 0 dB 27.0, SIR 0 dB 36.0
(untrained 39.5 / 50.0 / 48.5, log-mel 26.0 / 44.0 / 40.0); full table in README "Results".
"""

from csc_jax.config import base_config


def get_config():
    return base_config()
