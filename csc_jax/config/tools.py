"""Reading, changing and comparing configs: the one home of every config helper.

* :func:`set_dotted`: ``config['a.b'] = value`` with a clear error for an unknown key;
* :func:`load_config_file`: ``get_config()`` of a configs/*.py file (``path[:arg]``);
* :func:`read_saved_config`: the validated config a training run saved in its workdir;
* :func:`check_override_flags`: unknown ``--config.KEY`` flags named before absl parses them;
* :func:`flat_with_defaults` / :func:`incompatible_keys`: what a resumed run may change.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os

import ml_collections

from csc_jax.config.schema import (
    FREE_KEYS,
    MODEL_KEYS,
    RUN_KEYS,
    base_config,
    flatten,
    validate_config,
)
from csc_jax.errors import ConfigError


def set_dotted(config: ml_collections.ConfigDict, key: str, value, *, where: str = "") -> None:
    """Set ``config``'s dotted ``key`` (e.g. 'model.hidden') to ``value`` in place.

    JSON lists become tuples where the default is a tuple; ConfigDict's type check applies
    (an int where a float is expected is accepted, a str is not).

    Raises:
      ConfigError: the key is not in ``config`` or the value has the wrong type; the message
        names ``where`` (a file or flag) when given.
    """
    prefix = f"{where}: " if where else ""
    node = config
    *parents, last = key.split(".")
    for p in parents:
        if not isinstance(node, ml_collections.ConfigDict) or p not in node:
            raise ConfigError(f"{prefix}unknown config key {key!r}{_did_you_mean(key)}")
        node = node[p]
    if not isinstance(node, ml_collections.ConfigDict) or last not in node:
        raise ConfigError(f"{prefix}unknown config key {key!r}{_did_you_mean(key)}")
    if isinstance(node[last], tuple) and isinstance(value, list):
        value = tuple(value)  # JSON has no tuples
    try:
        node[last] = value
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix}{key}={value!r}: {e}") from e


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, sorted(flatten(base_config())), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """The ConfigDict returned by ``get_config()`` of a config file.

    ``path`` may end in ``:arg`` (ml_collections' convention, e.g. configs/benchmark.py:gpu);
    then ``get_config(arg)`` is called.

    Raises:
      ConfigError: the file does not exist or has no ``get_config``.
    """
    arg = None
    if ":" in os.path.basename(path):
        path, arg = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    name = "_csc_config_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} has no get_config()")
    return module.get_config() if arg is None else module.get_config(arg)


def flat_with_defaults(saved: dict) -> dict:
    """A saved (nested) config dict flattened, with every key it lacks set to the current
    default: such a key was added to the schema after the run, which therefore used what is
    now its default."""
    return {**flatten(base_config()), **flatten(saved)}


def read_saved_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
    """The validated ConfigDict a training run saved in ``<workdir>/config.json``.

    Keys the file lacks (added to the schema after the run) take their defaults.

    Raises:
      ConfigError: the file is missing, unreadable, has unknown keys or invalid values (the
        message names the file and key).
    """
    path = os.path.join(os.fspath(workdir), "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: not a training workdir") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(saved).__name__}")
    config = base_config()
    unknown = []
    for key, value in flatten(saved).items():
        try:
            set_dotted(config, key, value)
        except ConfigError as e:
            if "unknown config key" not in str(e):
                raise ConfigError(f"{path}: {e}") from e
            unknown.append(key)
    if unknown:
        raise ConfigError(
            f"{path}: unknown config key(s) {', '.join(sorted(unknown))} (saved by a different "
            "version of csc-jax?)"
        )
    try:
        validate_config(config)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
    return config


def incompatible_keys(saved: dict, new, allow: tuple[str, ...] = ()) -> list[str]:
    """Keys whose values differ between a workdir's saved config and the new one.

    Only MODEL_KEYS and RUN_KEYS matter (steps, logging and eval settings may change freely,
    and so may FREE_KEYS: rematerialisation);
    keys listed (or prefixed) in ``allow`` are accepted. Returns 'key: old -> new' strings.
    """
    a = flat_with_defaults(saved)
    b = flatten(new)
    watched = MODEL_KEYS + RUN_KEYS
    diffs = []
    for key in sorted(set(a) | set(b)):
        if not _under(key, watched) or _under(key, allow + FREE_KEYS):
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, list | tuple) or isinstance(vb, list | tuple):
            va, vb = list(va or []), list(vb or [])
        if va != vb:
            diffs.append(f"{key}: {va!r} -> {vb!r}")
    return diffs


def model_key_changes(saved: dict, new) -> list[str]:
    """The subset of :func:`incompatible_keys` that changes the model (no override allowed)."""
    return [d for d in incompatible_keys(saved, new) if _under(d.split(":", 1)[0], MODEL_KEYS)]


def _under(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def check_override_flags(argv: list[str]) -> None:
    """Raise ConfigError naming the first ``--config.KEY[=V]`` whose KEY is not in the schema.

    ml_collections resolves override flags while ``DEFINE_config_file`` runs and fails with a
    bare KeyError traceback, so entry points call this before defining their flags.
    """
    known = set(flatten(base_config()))
    groups = {k.rsplit(".", 1)[0] for k in known if "." in k}
    for arg in argv[1:]:
        if arg == "--":
            break
        if not arg.startswith("--config."):
            continue
        key = arg[len("--config.") :].split("=", 1)[0]
        if key not in known and key not in groups:
            raise ConfigError(f"{arg}: unknown config key {key!r}{_did_you_mean(key)}")
