"""Evaluate a trained run: python eval.py --config configs/default.py --workdir runs/x

Reports EER / minDCF (p_target 0.01) per condition (clean, noise SNR, interfering speaker
SIR) for the trained model, its extraction scoring, the untrained model and the log-mel
baseline; writes <workdir>/eval/{results.json,results.md,det_*.png}.

Subcommands use a trained model on your own audio (csc_jax/inference.py, docs/usage.md):

  python eval.py embed   --workdir W --out emb.npz [--overwrite] FILE... | --list files.txt
  python eval.py score   --workdir W --trials trials.txt --audio_root DIR --out scores.txt
  python eval.py extract --workdir W --mixture mix.wav --enrollment enr.wav --out target.wav
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory with checkpoints/.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT = flags.DEFINE_string("outdir", None, "Where to write reports (default <workdir>/eval).")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from csc_jax.config import ConfigError, validate_config
    from csc_jax.data.sources import BadAudioFileError
    from csc_jax.evaluation.verification import evaluate_workdir
    from csc_jax.training.checkpointing import CheckpointError

    try:
        validate_config(_CONFIG.value)
        evaluate_workdir(_CONFIG.value, _WORKDIR.value, step=_STEP.value, outdir=_OUT.value)
    except (ConfigError, CheckpointError, FileNotFoundError, BadAudioFileError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("embed", "score", "extract"):
        from csc_jax.inference import cli_main

        sys.exit(cli_main(sys.argv[1:], prog="eval.py"))
    app.run(main)
