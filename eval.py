"""Evaluate a trained run as it was trained: python eval.py --workdir RUN

Reads RUN/config.json (the run's own config: its data, model and protocol settings) and runs
the verification protocol on RUN's newest checkpoint (or --step): EER / minDCF (p_target
0.01) per condition (clean, noise SNR, interfering speaker SIR) for the trained model, its
extraction scoring and the references; writes RUN/eval/{results.json,results.md,det_*.png}
(or --outdir).

  python eval.py --workdir RUN --config.eval.max_trials=2000     # one key changed
  python eval.py --workdir RUN --config configs/default.py       # another config's protocol

--config FILE (a configs/*.py file or a JSON config) replaces config.json and
--config.KEY=VALUE overrides one key, on top of either; the model keys (model.*, method,
data.sample_rate) must stay those of RUN/config.json, since the checkpoint holds that model.

Subcommands use a trained model on your own audio (csc_jax/inference/, docs/usage.md):

  python eval.py embed   --workdir W --out emb.npy [--overwrite] FILE... | --list files.txt
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

from csc_jax.config import config_for_run, split_config_flags  # noqa: E402

# --config and the --config.KEY=VALUE overrides, taken out before absl parses the rest; they
# are applied to the workdir's config.json once --workdir is known.
_ARGS = errors.value_or_exit(lambda: split_config_flags(sys.argv), debug=_DEBUG)

from absl import app, flags, logging  # noqa: E402

# Listed for --help only: --config (and --config.*) never reach absl (_ARGS above).
flags.DEFINE_string(
    "config",
    None,
    "Config to evaluate with instead of <workdir>/config.json: a configs/*.py file "
    "(path[:arg]) or a JSON config. --config.KEY=VALUE overrides one key.",
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory with checkpoints/.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT = flags.DEFINE_string("outdir", None, "Where to write reports (default <workdir>/eval).")


def main(argv):
    logging.set_verbosity(logging.WARNING)

    def run():
        errors.refuse_positional_arguments(argv)
        config = config_for_run(_WORKDIR.value, _ARGS)  # before JAX is imported
        from csc_jax.evaluation.verification import evaluate_workdir

        evaluate_workdir(config, _WORKDIR.value, step=_STEP.value, outdir=_OUT.value)

    sys.exit(errors.run_main(run, debug=_DEBUG))


if __name__ == "__main__":
    app.run(main, argv=_ARGS.argv, flags_parser=errors.absl_flags_parser)
