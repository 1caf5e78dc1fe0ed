"""Train CSC, then evaluate it: python train.py --config CONFIG --workdir DIR [--config.KEY=VALUE]

  python train.py --config configs/smoke.py --workdir /tmp/smoke     # about a minute: try this
  python train.py --config configs/demo.py --workdir runs/demo        # the CPU demo
  python train.py --workdir runs/x --config.train.steps=20 --config.train.eval_at_end=False

--config is a configs/*.py file (default: configs/default.py next to this script) or a JSON
config such as a run's config.json. --config.KEY=VALUE overrides one key of it (any key of
csc_jax/config/schema.py, e.g. --config.data.batch_size=16); a wrong key or value is an error.
Rerunning the same command resumes from the newest checkpoint in --workdir.

Exit status (csc_jax/errors.py, README "Exit status"): 0 done; 75 preempted (SIGTERM/SIGINT:
state saved, rerun the same command to resume); 2 invalid config, flags, data or --workdir
(reported before anything compiles); 1 non-finite loss/gradient, a checkpoint that could not be
written or read, or a file-system error. Expected errors print one ``error:`` line; ``--debug``
shows their traceback.
"""

import os
import sys

from csc_jax import allocator

allocator.ensure()  # before JAX starts: re-executes once with the allocator settings

from csc_jax.training.preemption import StartupSignals  # noqa: E402  (light: no JAX)

_STARTUP_SIGNALS = StartupSignals()  # before the heavy imports, on purpose

from csc_jax import errors  # noqa: E402
from csc_jax.config import config_from_flags, split_config_flags  # noqa: E402

_DEBUG = errors.debug_requested(sys.argv)
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py")
# --config and the --config.KEY=VALUE overrides, taken out of the command line and loaded
# before absl parses the rest (a missing file or a wrong key or value is one error line).
_ARGS = errors.value_or_exit(lambda: split_config_flags(sys.argv), debug=_DEBUG)
_CONFIG, _SOURCE = errors.value_or_exit(
    lambda: config_from_flags(_ARGS, DEFAULT_CONFIG), debug=_DEBUG
)

from absl import app, flags, logging  # noqa: E402

from csc_jax.training import distributed  # noqa: E402

# Listed for --help only: --config (and --config.*) never reach absl (_ARGS above).
flags.DEFINE_string(
    "config",
    "configs/default.py",
    "Experiment config: a configs/*.py file (path[:arg]) or a JSON config (a run's "
    "config.json). --config.KEY=VALUE overrides one key, e.g. --config.train.steps=20.",
)
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory (resumes if it exists).")
_ALLOW = flags.DEFINE_list(
    "allow_config_change", [], "Config keys allowed to differ from the workdir's saved config."
)
distributed.define_flags()


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from csc_jax.training.preemption import Preempted

    def run():
        errors.refuse_positional_arguments(argv)
        distributed.initialize_from_flags()
        from csc_jax.train_eval import train_and_evaluate

        try:
            train_and_evaluate(_CONFIG, _WORKDIR.value, allow_config_change=tuple(_ALLOW.value))
        except errors.ConfigError as e:
            raise errors.ConfigError(f"{e} (config: {_SOURCE})") from e

    try:
        status = errors.run_main(run, debug=_DEBUG)
    except Preempted as e:
        print(e.message, file=sys.stderr, flush=True)
        raise
    sys.exit(status)


if __name__ == "__main__":
    app.run(main, argv=_ARGS.argv, flags_parser=errors.absl_flags_parser)
