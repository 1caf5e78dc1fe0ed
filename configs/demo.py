"""CPU demo: CSC with the default (time-frequency) front end on the embedded procedural corpus
at 16 kHz, sized so that `make demo` (set-up, corpus, training, evaluation) fits 10 minutes on
a 2-core CPU.

Command:
  python train.py --config configs/demo.py --workdir runs/demo

configs/default.py's model, data and protocol (11,880 trials, 95 % intervals, against the
untrained model and the MFCC and log-mel references at 16 kHz), trained 1200 steps instead of
1500 with the validation EER every 100 steps, and extraction scored on 500 trials instead of
1000. It prints the plateau test of each validation curve after training
(runs/demo/convergence.json). Measured cost and result: README "Results".
"""

import os

from csc_jax.config import load_config_file


def get_config():
    c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
    c.train.steps = 1200
    c.train.checkpoint_every = 400
    c.eval.validation_every = 100
    c.eval.extraction_max_trials = 500
    return c
