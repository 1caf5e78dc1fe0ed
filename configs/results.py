"""Results configuration: configs/default.py's model and data (the STFT front end), trained
3000 steps, twice the default's budget, so that the validation EER has flattened. It
produces the comparison pages docs/results*.md (scripts/run_results.py).

Command of one run:
  python train.py --config configs/results.py --workdir runs/results_csc

Command of a page (CSC, SimCLR at equal steps and at equal wall time, the ablations, 3 seeds):
  python scripts/run_results.py --config configs/results.py --seeds 0,1,2 \\
      --out docs/results.md --workdir_root runs/results

Measured convergence, cost and results: docs/results.md.
"""

import os

from csc_jax.config import load_config_file


def get_config():
    c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.py"))
    c.train.steps = 3000
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    c.eval.validation_every = 250
    return c
