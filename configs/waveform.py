"""CSC with the waveform front end (the paper-shaped learned filterbank, 4 ms frames with a
2 ms hop at 16 kHz: 500 frames/s) on the embedded procedural corpus, trained for the default's
training wall time: 290 steps (a waveform step costs about 5x a default STFT step, measured side
by side), with the validation EER every 30 steps.

Command of one run:
  python train.py --config configs/waveform.py --workdir runs/waveform

It is the `waveform-time` system of docs/frontends.md (3 seeds against configs/default.py at
equal training wall time; the page's command is in configs/default.py's docstring).
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()
    c.model.frontend = "waveform"
    c.train.steps = 290
    c.train.checkpoint_every = 100
    c.eval.validation_every = 30
    return c
