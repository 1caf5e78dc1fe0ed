"""Train CSC (then evaluate): python train.py --config configs/default.py --workdir runs/x

Exit status (csc_jax/errors.py, README "Exit status"): 0 done; 75 preempted (SIGTERM/SIGINT:
state saved, rerun the same command to resume); 2 invalid config, data or --workdir (reported
before anything compiles); 1 non-finite loss/gradient, a checkpoint that could not be written
or read, or a file-system error. Expected errors print one ``error:`` line; ``--debug`` shows
their traceback.
"""

import sys

from csc_jax import allocator

allocator.ensure()  # before JAX starts: re-executes once with the allocator settings

from csc_jax.training.preemption import StartupSignals  # noqa: E402  (light: no JAX)

_STARTUP_SIGNALS = StartupSignals()  # before the heavy imports, on purpose

from csc_jax import errors  # noqa: E402
from csc_jax.config import check_override_flags  # noqa: E402

_DEBUG = errors.debug_requested(sys.argv)
if errors.run_main(lambda: check_override_flags(sys.argv), debug=_DEBUG):
    sys.exit(errors.EXIT_INVALID_INPUT)

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from csc_jax.training import distributed  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory (resumes if it exists).")
_ALLOW = flags.DEFINE_list(
    "allow_config_change", [], "Config keys allowed to differ from the workdir's saved config."
)
distributed.define_flags()


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    from csc_jax.training.preemption import Preempted

    def run():
        distributed.initialize_from_flags()
        from csc_jax.train_eval import train_and_evaluate

        try:
            train_and_evaluate(
                _CONFIG.value, _WORKDIR.value, allow_config_change=tuple(_ALLOW.value)
            )
        except errors.ConfigError as e:
            source = config_flags.get_config_filename(flags.FLAGS["config"])
            raise errors.ConfigError(f"{e} (config: {source} with the --config.* overrides)") from e

    try:
        status = errors.run_main(run, debug=_DEBUG)
    except Preempted as e:
        print(e.message, file=sys.stderr, flush=True)
        raise
    sys.exit(status)


if __name__ == "__main__":
    app.run(main)
