"""The systems a results page compares: CSC, the SimCLR baseline and the ablations.

A variant is a name plus config overrides on top of a shared base config, so everything else
(encoder, speaker branch, data, on-device mixing, training budget, evaluation) is the same.
``match_time_of`` makes an *equal wall-time* variant: its step count is set so that it trains
as long as the named variant did (see csc_jax/experiments/runner.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from csc_jax import config as config_lib
from csc_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Variant:
    """One system of the comparison.

    Attributes:
      name: row label and workdir prefix.
      overrides: ``{"dotted.key": value}`` applied on top of the base config.
      description: one line for the report.
      match_time_of: name of the variant whose training wall time this one matches (its steps
        are set from the measured step rates of both), or "" for the base config's steps.
      in_default: run when no variants are named; False for variants that only mean something
        on one base config (the transfer recipe's ablations: on another config they repeat
        csc, or name a corpus it lacks).
    """

    name: str
    overrides: Mapping[str, Any]
    description: str
    match_time_of: str = ""
    in_default: bool = True


# The transfer recipe's components (configs/tts.py), each as the overrides that change it.
# Random channels are not in the recipe: with them it lost 8.7-13.1 points in every condition
# (docs/transfer_channel.md, results/transfer-channel/); 'channel' adds them back.
_CHANNEL_OFF = {
    "data.augment.eq_prob": 0.0,
    "data.augment.band_limit_prob": 0.0,
    "data.augment.telephone_prob": 0.0,
    "data.augment.reverb_prob": 0.0,
}
TRANSFER_ABLATIONS: dict[str, dict[str, Any]] = {
    "no-mixed": {"data.source": "folder"},
    "no-speed": {"data.augment.speed_factors": ()},
    "no-babble": {"data.augment.babble_prob": 0.0},
    # The recipe itself since channels left it; kept as the ablation of configs/tts.py:channel.
    "no-channel": dict(_CHANNEL_OFF),
    "channel": {
        "data.augment.eq_prob": 0.5,
        "data.augment.band_limit_prob": 0.3,
        "data.augment.telephone_prob": 0.1,
        "data.augment.reverb_prob": 0.3,
    },
}
# None of the components, channels explicitly off (the same config whatever the recipe's).
TRANSFER_ABLATIONS["plain"] = {
    **{
        k: v
        for n in ("no-mixed", "no-speed", "no-babble")
        for k, v in TRANSFER_ABLATIONS[n].items()
    },
    **_CHANNEL_OFF,
}
_TRANSFER_WHAT = {
    "no-mixed": "without the procedural corpus (recorded voices only)",
    "no-speed": "without pseudo-speakers (speed perturbation)",
    "no-babble": "without babble interferers",
    "no-channel": "without random channels (the recipe itself since 2026-12-07; the ablation of "
    "configs/tts.py:channel)",
    "channel": "plus random channels per view (reverb, EQ, band limits, telephone band)",
    "plain": "with none of its components: the recorded voices alone, as they are",
}

VARIANTS: tuple[Variant, ...] = (
    Variant("csc", {}, "CSC as defined in docs/method.md (the base config)"),
    Variant(
        "simclr",
        {"method": "simclr"},
        "SimCLR baseline: NT-Xent between two conditions of a target, in-batch negatives",
    ),
    Variant(
        "simclr-time",
        {"method": "simclr"},
        "SimCLR trained for csc's wall time (more steps: a SimCLR step is cheaper)",
        match_time_of="csc",
    ),
    Variant(
        "waveform-time",
        # Validation every 30 steps: about 10 points over its few hundred steps (plateau test).
        {"model.frontend": "waveform", "eval.validation_every": 30},
        "CSC with the waveform front end (learned filterbank, 500 frames/s) on an 'stft' base "
        "config (configs/stft.py), trained for csc's wall time (fewer steps: its step costs "
        "more)",
        match_time_of="csc",
    ),
    Variant(
        "csc-global",
        {"loss.extraction_condition": "global"},
        "CSC whose extraction head is conditioned in training on the mixture's own global "
        "vector c[b,k] instead of another crop's clean target vector (before deviation 10)",
        in_default=False,
    ),
    Variant(
        "csc-no-xattn",
        {"model.use_cross_attention": False},
        "CSC with a mean-pooled global vector instead of cross-attention",
    ),
    Variant("csc-no-sep", {"loss.lambda_sep": 0.0}, "CSC without the separation loss"),
    Variant("csc-no-csc", {"loss.lambda_csc": 0.0}, "CSC without the contrastive loss"),
    Variant(
        "csc-K1", {"mixing.num_conditions": 1}, "CSC with one interfering condition per target"
    ),
    Variant("csc-sep0.1", {"loss.lambda_sep": 0.1}, "CSC with the separation loss weighted 0.1"),
    Variant(
        "csc-sgcomp",
        {"loss.stop_gradient_components": True},
        "cheaper CSC: the component passes are fixed targets (no gradient through them)",
    ),
    Variant(
        "csc-comp1",
        {"loss.component_conditions": 1},
        "cheaper CSC: components of one of the K conditions embedded (a third of the passes)",
    ),
) + tuple(
    Variant(
        f"csc-{name}",
        overrides,
        f"the transfer recipe (configs/tts.py) {_TRANSFER_WHAT[name]}",
        in_default=False,
    )
    for name, overrides in TRANSFER_ABLATIONS.items()
)


def variant_names() -> list[str]:
    return [v.name for v in VARIANTS]


def select_variants(names: Sequence[str] | None) -> list[Variant]:
    """Variants by name in registry order (None or empty: all with ``in_default``); unknown
    names raise.

    A time-matched variant needs the variant it matches: it is added when missing.
    """
    if not names:
        return [v for v in VARIANTS if v.in_default]
    known = {v.name: v for v in VARIANTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(variant_names())}"
        )
    wanted = set(names)
    wanted |= {known[n].match_time_of for n in names if known[n].match_time_of}
    return [v for v in VARIANTS if v.name in wanted]


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2); raises ConfigError on an empty list, junk or duplicates."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError as e:
        raise ConfigError(f"seeds must be a comma-separated list of integers, got {text!r}") from e
    if not seeds:
        raise ConfigError(f"no seeds in {text!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"duplicate seeds in {text!r}")
    return seeds


def run_config(base_config, variant: Variant, seed: int, steps: int | None = None):
    """A validated copy of ``base_config`` with the variant's overrides, seed and steps."""
    config = base_config.copy_and_resolve_references()
    for key, value in variant.overrides.items():
        config_lib.set_dotted(config, key, value, where=f"variant {variant.name}")
    config.seed = int(seed)
    if steps is not None:
        config.train.steps = int(steps)
    config.train.eval_at_end = True
    config_lib.validate_config(config)
    return config


def separates(config: Mapping) -> bool:
    """Whether a run's model is trained to separate (so 'csc+extract' is meaningful)."""
    return config["method"] == "csc" and float(config["loss"]["lambda_sep"]) > 0
