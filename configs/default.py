"""Reference CPU configuration: CSC with the time-frequency front end on the embedded
procedural corpus at 16 kHz (20 ms STFT window, 10 ms hop: 100 frames/s; 1 s crops, K=3, a
small TCN), 1500 steps with the validation EER every 150 steps.

Command of one run:
  python train.py --config configs/default.py --workdir runs/default

Command of the front-end comparison (docs/frontends.md: this config against the waveform
front end trained for the same wall time, 3 seeds each):
  python scripts/run_results.py --config configs/default.py --variants csc,waveform-time \\
      --seeds 0,1,2 --workdir_root runs/frontends --out docs/frontends.md

After training it prints the plateau test of each validation curve (convergence.json), then
runs the verification protocol (11,880 trials, 95 % intervals) against the untrained model and
the MFCC and log-mel references at 16 kHz. `make demo` runs the same model (configs/demo.py,
with extraction scored on 500 trials instead of 1000). The paper-shaped waveform front end is
`--config.model.frontend=waveform` (learned filterbank, 4 ms / 2 ms at 16 kHz). Measured cost
and results: README "Results" and docs/frontends.md.
"""

from csc_jax.config import base_config


def get_config():
    return base_config()
