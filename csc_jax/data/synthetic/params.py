"""Corpus parameters (``config.data.synthetic``), their validation, and the seeded random
streams every random draw of the corpus comes from.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SPLITS = ("train", "test", "val")
NUM_SESSIONS = 3
PARAM_KEYS = (
    "seed",
    "num_train_speakers",
    "num_test_speakers",
    "train_utterances_per_speaker",
    "test_utterances_per_speaker",
    "num_val_speakers",
    "val_utterances_per_speaker",
    "min_seconds",
    "max_seconds",
)
MIN_SAMPLE_RATE = 8000
MIN_SECONDS = 0.25
MAX_SECONDS = 60.0

# First SeedSequence word: keeps these streams apart from anything else seeded with the same
# corpus seed.
_SEED_NAMESPACE = 0xC5C0
_SPLIT_CODE = {"train": 1, "test": 2, "val": 3}
KIND_SPEAKER, KIND_SESSION, KIND_UTTERANCE = 0, 1, 2


def _plain_params(params: Mapping) -> dict:
    if hasattr(params, "to_dict"):  # ml_collections.ConfigDict
        params = params.to_dict()
    if not isinstance(params, Mapping):
        raise TypeError(
            f"synthetic corpus params must be a mapping (data.synthetic), got {type(params)!r}"
        )
    return dict(params)


def validate_params(params: Mapping) -> dict:
    """Returns the params with canonical types (so 2 and 2.0 hash alike); raises on bad keys."""
    raw = _plain_params(params)
    for key in raw:
        if key not in PARAM_KEYS:
            raise ValueError(
                f"unknown synthetic corpus param {key!r} (data.synthetic.{key}); "
                f"expected keys: {', '.join(PARAM_KEYS)}"
            )
    for key in PARAM_KEYS:
        if key not in raw:
            raise ValueError(f"missing synthetic corpus param {key!r} (data.synthetic.{key})")
    out: dict = {}
    for key in PARAM_KEYS[:7]:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"synthetic corpus param {key!r} must be an integer, got {value!r}")
        lowest = 0 if key == "seed" else 1
        if value < lowest:
            raise ValueError(f"synthetic corpus param {key!r} must be >= {lowest}, got {value!r}")
        out[key] = int(value)
    for key in ("min_seconds", "max_seconds"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"synthetic corpus param {key!r} must be a number, got {value!r}")
        value = float(value)
        if not MIN_SECONDS <= value <= MAX_SECONDS:
            raise ValueError(
                f"synthetic corpus param {key!r} must be in [{MIN_SECONDS}, {MAX_SECONDS}], "
                f"got {value!r}"
            )
        out[key] = value
    if out["min_seconds"] > out["max_seconds"]:
        raise ValueError(
            f"synthetic corpus param 'min_seconds' ({out['min_seconds']}) must not exceed "
            f"'max_seconds' ({out['max_seconds']})"
        )
    return out


def validate_split(split: str) -> str:
    """Returns `split` if it is one of SPLITS; raises ValueError naming it otherwise."""
    if split not in SPLITS:
        raise ValueError(f"unknown synthetic corpus split {split!r}; expected one of {SPLITS}")
    return split


def validate_sample_rate(sample_rate: int) -> int:
    """Returns `sample_rate` as an int if it is an integer >= MIN_SAMPLE_RATE; raises otherwise."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise TypeError(f"sample_rate must be an integer, got {sample_rate!r}")
    if sample_rate < MIN_SAMPLE_RATE:
        # Formant and frication targets assume at least a telephone band (4 kHz).
        raise ValueError(f"sample_rate must be >= {MIN_SAMPLE_RATE}, got {sample_rate!r}")
    return int(sample_rate)


def seeded_rng(seed: int, split: str, speaker: int, kind: int, index: int) -> np.random.Generator:
    """The random stream of one (corpus seed, split, speaker, KIND_*, index) draw.

    Independent of every other stream, so an utterance does not depend on what else is
    generated or in which order.
    """
    # Fixed-length entropy: SeedSequence pads shorter entropy with zeros, so varying lengths
    # could collide.
    entropy = [_SEED_NAMESPACE, seed, _SPLIT_CODE[split], speaker, kind, index]
    return np.random.default_rng(np.random.SeedSequence(entropy))
