"""Experiment configuration: the key schema (:mod:`.schema`) and config helpers (:mod:`.tools`)."""

from csc_jax.config.schema import (
    MODEL_KEYS,
    RUN_KEYS,
    base_config,
    flatten,
    samples,
    segment_samples,
    validate_config,
)
from csc_jax.config.tools import (
    ConfigFlags,
    apply_overrides,
    check_override_flags,
    config_file_flag,
    config_for_run,
    config_from_flags,
    flat_with_defaults,
    incompatible_keys,
    load_config_file,
    model_key_changes,
    read_saved_config,
    set_dotted,
    split_config_flags,
)
from csc_jax.errors import ConfigError

__all__ = [
    "MODEL_KEYS",
    "RUN_KEYS",
    "ConfigError",
    "ConfigFlags",
    "apply_overrides",
    "base_config",
    "check_override_flags",
    "config_file_flag",
    "config_for_run",
    "config_from_flags",
    "flat_with_defaults",
    "flatten",
    "incompatible_keys",
    "load_config_file",
    "model_key_changes",
    "read_saved_config",
    "samples",
    "segment_samples",
    "set_dotted",
    "split_config_flags",
    "validate_config",
]
