"""The front-end comparison's base config: CSC with the time-frequency front end (20 ms
window, 10 ms hop at 16 kHz), 1500 steps: configs/default.py, under the name that
docs/frontends.md's command and records use.

Command of one run:
  python train.py --config configs/stft.py --workdir runs/stft

Command of the front-end comparison (docs/frontends.md: this config, labelled csc there,
against the waveform front end trained for the same wall time, 3 seeds each):
  python scripts/run_results.py --config configs/stft.py --steps 1500 --seeds 0,1,2 \\
      --variants csc,waveform-time --workdir_root runs/frontends --results_root results \\
      --campaign frontends --out docs/frontends.md \\
      --title 'Front ends at equal wall time: stft vs waveform'
"""

import os

from csc_jax.config import load_config_file


def get_config():
    return load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
