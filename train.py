"""Train CSC (then evaluate): python train.py --config configs/default.py --workdir runs/x

Exit status: 0 done; 75 preempted (SIGTERM/SIGINT: state saved, rerun the same command to
resume); 2 invalid config or incompatible/unwritable --workdir (nothing was compiled);
1 non-finite loss/gradient or a checkpoint that could not be written or read.
"""

import signal
import sys


class _SignalsDuringStartup:
    """Records SIGTERM/SIGINT that arrive while Python imports JAX and parses the config.

    Installed before any heavy import; the training loop takes the record over (``received``)
    when it installs its own handler, so an early preemption notice still stops the run at the
    first step boundary with a checkpoint instead of killing it without one. ``previous`` are
    the handlers restored afterwards.
    """

    def __init__(self):
        self.received: list[int] = []
        self.previous = {s: signal.signal(s, self) for s in (signal.SIGTERM, signal.SIGINT)}

    def __call__(self, signum, frame):
        if signum == signal.SIGINT and self.received:
            raise KeyboardInterrupt  # second Ctrl-C during start-up
        self.received.append(signum)


_STARTUP_SIGNALS = _SignalsDuringStartup()


def _check_override_keys(argv: list[str]) -> None:
    """Name an unknown ``--config.KEY`` override clearly and exit 2.

    ml_collections resolves override flags while ``DEFINE_config_file`` runs (at import) and
    fails with a bare KeyError traceback, so this runs first. Only keys of the schema
    (csc_jax.config.base_config) are valid, in config files as well.
    """
    import difflib

    from csc_jax.config import base_config

    def flatten(d, prefix=""):
        for k, v in d.items():
            yield from flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k]

    known = set(flatten(base_config().to_dict()))
    groups = {k.rsplit(".", 1)[0] for k in known if "." in k}
    for arg in argv[1:]:
        if arg == "--":
            break
        if not arg.startswith("--config."):
            continue
        key = arg[len("--config.") :].split("=", 1)[0]
        if key in known or key in groups:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        print(f"error: {arg}: unknown config key {key!r}{hint}", file=sys.stderr, flush=True)
        sys.exit(2)


_check_override_keys(sys.argv)

from absl import app, flags, logging  # noqa: E402  (after the signal handler, on purpose)
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
    distributed.initialize_from_flags()
    from csc_jax.config import ConfigError
    from csc_jax.training.checkpointing import CheckpointError
    from csc_jax.training.loop import NonFiniteError, Preempted, train_and_evaluate

    try:
        train_and_evaluate(_CONFIG.value, _WORKDIR.value, allow_config_change=tuple(_ALLOW.value))
    except Preempted as e:
        print(e.message, file=sys.stderr, flush=True)
        raise
    except ConfigError as e:
        source = config_flags.get_config_filename(flags.FLAGS["config"])
        print(f"error: {e}\n(config: {source} with the --config.* overrides)", file=sys.stderr)
        sys.exit(2)
    except (NonFiniteError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
