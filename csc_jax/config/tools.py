"""Reading, changing and comparing configs: the one home of every config helper.

* :func:`set_dotted`: ``config['a.b'] = value`` with a clear error for an unknown key;
* :func:`load_config_file`: ``get_config()`` of a configs/*.py file (``path[:arg]``), or a
  JSON config such as a run's config.json;
* :func:`read_saved_config`: the validated config a training run saved in its workdir;
* :func:`check_override_flags`: unknown ``--config.KEY`` flags named before absl parses them;
* :func:`split_config_flags` / :func:`apply_overrides`: the ``--config FILE`` and
  ``--config.KEY=VALUE`` part of train.py's and eval.py's command line, taken out before absl
  parses the rest, and applied (:func:`config_from_flags`, :func:`config_for_run`);
* :func:`flat_with_defaults` / :func:`incompatible_keys`: what a resumed run may change.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import os

import ml_collections

from csc_jax.config.schema import (
    FREE_KEYS,
    LEGACY_VALUES,
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
    """The config of a config file: ``get_config()`` of a Python file, or a JSON config.

    ``path`` may end in ``:arg`` (ml_collections' convention, e.g. configs/benchmark.py:gpu);
    then ``get_config(arg)`` is called. A ``.json`` file (e.g. a run's config.json) is read as
    :func:`read_saved_config` reads one: keys it lacks take their defaults (or, for the keys of
    ``schema.LEGACY_VALUES``, the value runs saved before the key existed used: a JSON config
    without ``model.frontend`` is a waveform model), and it is validated.

    Raises:
      ConfigError: the file does not exist, has no ``get_config``, or is a JSON file that is
        unreadable or invalid (the message names the file and key).
    """
    arg = None
    if ":" in os.path.basename(path):
        path, arg = path.rsplit(":", 1)
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    if path.endswith(".json"):
        if arg is not None:
            raise ConfigError(f"config file {path}: a JSON config takes no ':{arg}' argument")
        return _read_json_config(path)
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
    now its default, or the value such runs used (``schema.LEGACY_VALUES``)."""
    return {**flatten(base_config()), **LEGACY_VALUES, **flatten(saved)}


def read_saved_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
    """The validated ConfigDict a training run saved in ``<workdir>/config.json``.

    Keys the file lacks (added to the schema after the run) take their defaults, or the value
    such runs used (``schema.LEGACY_VALUES``: ``model.frontend`` -> 'waveform').

    Raises:
      ConfigError: the file is missing, unreadable, has unknown keys or invalid values (the
        message names the file and key).
    """
    path = os.path.join(os.fspath(workdir), "config.json")
    if not os.path.exists(path):
        raise ConfigError(f"{path} not found: not a training workdir")
    return _read_json_config(path)


def _read_json_config(path: str) -> ml_collections.ConfigDict:
    """A JSON config file as a validated ConfigDict (see :func:`read_saved_config`)."""
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(saved).__name__}")
    config = base_config()
    unknown = []
    for key, value in {**LEGACY_VALUES, **flatten(saved)}.items():
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
    bare KeyError traceback, so entry points that use it call this before defining their flags.
    """
    for arg in argv[1:]:
        if arg == "--":
            break
        if _override_key(arg) is not None:
            _check_override_key(arg)


def _override_key(arg: str) -> str | None:
    """KEY of a ``--config.KEY[=V]`` / ``--noconfig.KEY`` argument (one or two dashes), else
    None."""
    name = arg.split("=", 1)[0]
    for prefix in ("--config.", "-config.", "--noconfig.", "-noconfig."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return None


def _check_override_key(arg: str) -> None:
    known = set(flatten(base_config()))
    groups = {k.rsplit(".", 1)[0] for k in known if "." in k}
    key = _override_key(arg)
    if key not in known and key not in groups:
        raise ConfigError(f"{arg}: unknown config key {key!r}{_did_you_mean(key)}")


def config_file_flag(argv: list[str]) -> str | None:
    """The value of ``--config FILE`` / ``--config=FILE`` in ``argv`` (the last one), or None.

    Raises:
      ConfigError: ``--config`` without a value, or a file that does not exist (``path[:arg]``:
        the path before the colon).
    """
    return split_config_flags(argv, check_keys=False).path


@dataclasses.dataclass(frozen=True)
class ConfigFlags:
    """The config part of a command line (:func:`split_config_flags`).

    Attributes:
      path: the ``--config`` file given (the last one), or None.
      overrides: the ``--config.KEY=VALUE`` (and ``--[no]config.KEY`` boolean) flags in order,
        each one argument.
      argv: every other argument, the program name first: what absl parses.
    """

    path: str | None
    overrides: tuple[str, ...]
    argv: list[str]


def split_config_flags(argv: list[str], *, check_keys: bool = True) -> ConfigFlags:
    """Take ``--config FILE`` and the ``--config.KEY=VALUE`` overrides out of ``argv``.

    Both absl spellings are accepted (``--flag=value`` and ``--flag value``, one or two
    dashes); an override of a boolean key may be given bare (``--config.KEY`` /
    ``--noconfig.KEY``). Arguments after ``--`` are left alone.

    Raises:
      ConfigError: ``--config`` or an override without a value, a config file that does not
        exist, or (``check_keys``) an override key that is not in the schema.
    """
    booleans = {k for k, v in flatten(base_config()).items() if isinstance(v, bool)}
    path, overrides, rest = None, [], [argv[0]]
    i = 1
    while i < len(argv):
        arg = argv[i]
        name, has_value, value = arg.partition("=")
        key = _override_key(arg)
        if arg == "--":
            rest += argv[i:]
            break
        if name in ("--config", "-config"):
            if not has_value:
                if i + 1 == len(argv) or argv[i + 1].startswith("--"):
                    raise ConfigError(
                        "--config needs a file: --config FILE (a configs/*.py file or a run's "
                        "config.json)"
                    )
                i += 1
                value = argv[i]
            path = value
        elif key is not None:
            if check_keys:
                _check_override_key(arg)
            bare = key in booleans or name.lstrip("-").startswith("noconfig.")
            if not has_value and not bare:
                if i + 1 == len(argv) or argv[i + 1].startswith("--"):
                    raise ConfigError(f"{arg} needs a value: {arg}=VALUE")
                i += 1
                arg = f"{arg}={argv[i]}"
            overrides.append(arg)
        else:
            rest.append(arg)
        i += 1
    if path is not None:
        file = path.rsplit(":", 1)[0] if ":" in os.path.basename(path) else path
        if not path or not os.path.isfile(file):
            raise ConfigError(f"--config {path}: config file {file or '(empty)'} does not exist")
    return ConfigFlags(path, tuple(overrides), rest)


def apply_overrides(config, overrides) -> ml_collections.ConfigDict:
    """A copy of ``config`` with ``--config.KEY=VALUE`` flags applied.

    The values are parsed as ml_collections parses them (the key's type decides: ints, floats,
    booleans, strings, tuples as Python literals such as ``(10.0, 5.0)``).

    Raises:
      ConfigError: a value of the wrong type or an unknown key; the message names the flag.
    """
    config = config.copy_and_resolve_references()
    if not overrides:
        return config
    from absl import flags
    from ml_collections import config_flags

    argv = ["csc-jax", *overrides]
    values = flags.FlagValues()
    try:
        holder = config_flags.DEFINE_config_dict(
            "config", config, flag_values=values, sys_argv=argv, lock_config=False
        )
        values(argv)
    except (flags.Error, KeyError, AttributeError) as e:
        text = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
        raise ConfigError(text.removeprefix("flag ")) from e
    # ml_collections takes any literal for a tuple key: ('abc',) for a tuple of numbers.
    defaults = flatten(base_config())
    for flag in overrides:
        key, value = _override_key(flag), flag.partition("=")[2]
        default = defaults.get(key)
        numbers = isinstance(default, tuple) and all(_is_number(v) for v in default)
        if default and numbers and not all(_is_number(v) for v in _get(holder.value, key)):
            raise ConfigError(f"{flag}: expected a tuple of numbers such as {default} ({value!r})")
    return holder.value


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _get(config, key: str):
    for part in key.split("."):
        config = config[part]
    return config


def _described(source: str, overrides) -> str:
    return f"{source} with the --config.* overrides" if overrides else source


def config_from_flags(flags: ConfigFlags, default_path: str) -> tuple:
    """(config, where it came from) for train.py: the ``--config`` file (else
    ``default_path``) with the overrides applied."""
    path = flags.path or default_path
    config = apply_overrides(load_config_file(path), flags.overrides)
    return config, _described(path, flags.overrides)


def config_for_run(workdir: str, flags: ConfigFlags) -> ml_collections.ConfigDict:
    """The config eval.py evaluates a trained ``workdir`` with: the run's config.json as
    trained, or the ``--config`` file, with the overrides applied on top; validated.

    The model keys (``MODEL_KEYS``) must be config.json's: a checkpoint holds one model.
    Without config.json in the workdir, ``--config`` is required (the checkpoint's parameter
    shapes are still checked when it is restored).

    Raises:
      ConfigError: no config.json and no ``--config``, an invalid config, or a model key that
        differs from config.json's (the message names the keys, old and new values).
    """
    saved_path = os.path.join(workdir, "config.json")
    saved = None
    if flags.path is None or os.path.exists(saved_path):
        try:
            saved = read_saved_config(workdir)
        except ConfigError as e:
            hint = " (or pass --config FILE)" if flags.path is None else ""
            raise ConfigError(f"{e}{hint}") from e
    source = _described(saved_path if flags.path is None else flags.path, flags.overrides)
    base = saved if flags.path is None else load_config_file(flags.path)
    config = apply_overrides(base, flags.overrides)
    try:
        validate_config(config)
    except ConfigError as e:
        raise ConfigError(f"{e} (config: {source})") from e
    if saved is not None:
        changes = model_key_changes(saved.to_dict(), config)
        if changes:
            raise ConfigError(
                f"{source} describes another model than the one trained in {workdir} "
                f"({saved_path}): {'; '.join(changes)}. Leave out --config and the model.* "
                "overrides to evaluate the run as it was trained."
            )
    return config
