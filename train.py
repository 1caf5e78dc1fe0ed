"""Train CSC (then evaluate): python train.py --config configs/default.py --workdir runs/x"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from csc_jax.training import distributed

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/default", "Run directory (resumes if it exists).")
_ALLOW = flags.DEFINE_list(
    "allow_config_change", [], "Config keys allowed to differ from the workdir's saved config."
)
distributed.define_flags()


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    distributed.initialize_from_flags()
    from csc_jax.config import ConfigError
    from csc_jax.training.loop import NonFiniteError, Preempted, train_and_evaluate

    try:
        train_and_evaluate(_CONFIG.value, _WORKDIR.value, allow_config_change=tuple(_ALLOW.value))
    except Preempted as e:
        print(e.message, file=sys.stderr, flush=True)
        raise
    except (ConfigError, NonFiniteError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
