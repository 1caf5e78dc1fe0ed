"""CPU demo: CSC with the default (waveform) front end on the embedded procedural corpus at
16 kHz, sized so that `make demo` (set-up, corpus, training, evaluation) fits 10 minutes on a
2-core CPU.

Command:
  python train.py --config configs/demo.py --workdir runs/demo

configs/default.py's model, data and protocol (11,880 trials, 95 % intervals, against the
untrained model and the MFCC and log-mel references at 16 kHz), trained 250 steps instead of
290 with the validation EER every 25 steps, and extraction scored on 500 trials instead of
1000. It prints the plateau test of each validation curve after training
(runs/demo/convergence.json). Measured cost and result: README "Results".
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()  # configs/default.py
    c.train.steps = 250
    c.eval.validation_every = 25
    c.eval.extraction_max_trials = 500
    return c
