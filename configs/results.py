"""Results configuration: the CPU demo's model and data, trained until the validation EER
has flattened. It produces the comparison pages docs/results*.md (scripts/run_results.py).

Command of one run:
  python train.py --config configs/results.py --workdir runs/results_csc

Command of a page (CSC, SimCLR at equal steps and at equal wall time, the ablations, 3 seeds):
  python scripts/run_results.py --config configs/results.py --seeds 0,1,2 \\
      --out docs/results.md --workdir_root runs/results

Measured convergence, cost and results: docs/results.md.
"""

from csc_jax.config import base_config


def get_config():
    c = base_config()
    c.train.steps = 3000
    c.train.log_every = 50
    c.train.checkpoint_every = 500
    c.eval.validation_every = 250
    return c
