"""CPU demo: CSC on the embedded procedural corpus, sized to finish within 15 minutes on a
2-core CPU (what `make demo` runs).

Command:
  python train.py --config configs/demo.py --workdir runs/demo

configs/default.py's model, data and protocol, trained 300 steps instead of 600 (the learning
rate follows its cosine to zero at step 300) with the validation EER every 50 steps, then the
verification protocol (11,880 trials, 95 % intervals) against the untrained model and the
MFCC and log-mel references at the model's 8 kHz. Two evaluation costs are cut to fit the
budget: the 16 kHz MFCC reference (it synthesises the test speakers again at 16 kHz, about a
minute) is left out, and extraction scoring uses 500 trials instead of 1000. The 600-step runs
of configs/default.py, with both, are docs/results.md's. Measured cost, result and how far
from convergence it is: README "Results".
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()  # configs/default.py
    c.train.steps = 300
    c.eval.validation_every = 50
    c.eval.reference_rates = ()
    c.eval.extraction_max_trials = 500
    return c
