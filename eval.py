"""Evaluate a trained run: python eval.py --config configs/default.py --workdir runs/x

Reports EER / minDCF (p_target 0.01) per condition (clean, noise SNR, interfering speaker
SIR) for the trained model, its extraction scoring and the references; writes
<workdir>/eval/{results.json,results.md,det_*.png}.

Subcommands use a trained model on your own audio (csc_jax/inference/, docs/usage.md):

  python eval.py embed   --workdir W --out emb.npz [--overwrite] FILE... | --list files.txt
  python eval.py score   --workdir W --trials trials.txt --audio_root DIR --out scores.txt
  python eval.py extract --workdir W --mixture mix.wav --enrollment enr.wav --out target.wav

Expected errors print one ``error:`` line (exit status 2 for bad input, 1 for a failure;
csc_jax/errors.py); ``--debug`` shows their traceback.
"""

import sys

from csc_jax import allocator

allocator.ensure()  # before JAX starts

from csc_jax import errors  # noqa: E402

_DEBUG = errors.debug_requested(sys.argv)

if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in ("embed", "score", "extract"):
    from csc_jax.inference.cli import cli_main

    sys.exit(cli_main(sys.argv[1:], prog="eval.py", debug=_DEBUG))

from csc_jax.config import check_override_flags  # noqa: E402

if errors.run_main(lambda: check_override_flags(sys.argv), debug=_DEBUG):
    sys.exit(errors.EXIT_INVALID_INPUT)

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory with checkpoints/.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT = flags.DEFINE_string("outdir", None, "Where to write reports (default <workdir>/eval).")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)

    def run():
        from csc_jax.config import validate_config
        from csc_jax.evaluation.verification import evaluate_workdir

        validate_config(_CONFIG.value)
        evaluate_workdir(_CONFIG.value, _WORKDIR.value, step=_STEP.value, outdir=_OUT.value)

    sys.exit(errors.run_main(run, debug=_DEBUG))


if __name__ == "__main__":
    app.run(main)
