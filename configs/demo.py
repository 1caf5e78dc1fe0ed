"""CPU demo: CSC on the embedded procedural corpus, sized to finish within 15 minutes on a
2-core CPU (what `make demo` runs).

Command:
  python train.py --config configs/demo.py --workdir runs/demo

configs/default.py's model, data and protocol, trained 300 steps instead of 600 (the learning
rate follows its cosine to zero at step 300) with the validation EER every 50 steps, then the
verification protocol (about 12,000 trials, 95 % intervals) against the MFCC and log-mel
references. The 600-step runs of configs/default.py are docs/results.md's. Measured cost,
result and how far from convergence it is: README "Results".
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()  # configs/default.py
    c.train.steps = 300
    c.eval.validation_every = 50
    return c
