"""Speaker voices: drawn once per speaker from its own seed (male / female / child-like classes,
and "sibling" near-copies that make hard speaker pairs).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from csc_jax.data.synthetic.params import KIND_SPEAKER, seeded_rng, validate_split
from csc_jax.data.synthetic.phones import VOWELS


@dataclasses.dataclass(frozen=True)
class Voice:
    """Speaker-level synthesis parameters (scalars in the units named)."""

    f0: float  # mean f0, Hz
    f0_range: float  # accent size, semitones
    declination: float  # f0 fall over an utterance, semitones (negative)
    tract: float  # formant frequency scale (shorter tract -> larger)
    glottal: float  # glottal pulse corner frequency / f0 (pulse shape)
    tilt: float  # extra one-pole spectral tilt coefficient in [0, 1)
    breath: float  # aspiration noise relative to voicing
    jitter: float  # pulse timing std, fraction of a period
    shimmer: float  # pulse log-amplitude std
    bw_scale: float  # formant bandwidth scale
    nasality: float  # nasal murmur in voiced sounds
    nasal_freq: float  # nasal resonance, Hz
    extra_freq: float  # individual extra resonance, Hz (before sample-rate clamping)
    extra_gain_db: float
    extra_q: float
    rate: float  # duration multiplier (> 1 is slower)
    vowel_offsets: tuple[tuple[float, float, float], ...]  # per-vowel F1-F3 multipliers


_VOICE_CLASSES = (
    # (probability, f0 centre Hz, tract centre, breathiness centre)
    (0.45, 115.0, 0.92, 0.06),  # male-like
    (0.45, 205.0, 1.12, 0.12),  # female-like
    (0.10, 265.0, 1.24, 0.10),  # child-like
)


def _draw_voice(rng: np.random.Generator) -> Voice:
    probs = np.array([c[0] for c in _VOICE_CLASSES])
    _, f0_centre, tract_centre, breath_centre = _VOICE_CLASSES[rng.choice(len(probs), p=probs)]
    offsets = np.exp(rng.normal(0.0, 0.04, size=(len(VOWELS), 3)))
    return Voice(
        f0=float(np.clip(f0_centre * np.exp(rng.normal(0.0, 0.14)), 78.0, 310.0)),
        f0_range=float(rng.uniform(1.5, 5.0)),
        declination=float(-rng.uniform(0.5, 4.0)),
        tract=float(np.clip(tract_centre * np.exp(rng.normal(0.0, 0.045)), 0.8, 1.3)),
        glottal=float(rng.uniform(0.8, 1.8)),
        tilt=float(rng.uniform(0.0, 0.6)),
        breath=float(np.clip(breath_centre * np.exp(rng.normal(0.0, 0.6)), 0.01, 0.3)),
        jitter=float(rng.uniform(0.003, 0.025)),
        shimmer=float(rng.uniform(0.02, 0.15)),
        bw_scale=float(np.exp(rng.uniform(np.log(0.75), np.log(1.5)))),
        nasality=float(rng.uniform(0.0, 0.3)),
        nasal_freq=float(rng.uniform(220.0, 320.0)),
        extra_freq=float(np.exp(rng.uniform(np.log(1000.0), np.log(3400.0)))),
        extra_gain_db=float(rng.uniform(-5.0, 5.0)),
        extra_q=float(rng.uniform(2.0, 5.0)),
        rate=float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))),
        vowel_offsets=tuple(tuple(float(v) for v in row) for row in offsets),
    )


def _sibling_voice(base: Voice, rng: np.random.Generator) -> Voice:
    """A near-copy of `base`: the corpus's deliberately hard speaker pairs."""

    def jiggle(value: float, sigma: float) -> float:
        return float(value * np.exp(rng.normal(0.0, sigma)))

    offsets = np.array(base.vowel_offsets) * np.exp(rng.normal(0.0, 0.015, (len(VOWELS), 3)))
    return dataclasses.replace(
        base,
        f0=float(np.clip(jiggle(base.f0, 0.06), 78.0, 310.0)),
        f0_range=jiggle(base.f0_range, 0.15),
        tract=float(np.clip(jiggle(base.tract, 0.02), 0.8, 1.3)),
        glottal=jiggle(base.glottal, 0.1),
        tilt=float(np.clip(base.tilt + rng.normal(0.0, 0.05), 0.0, 0.7)),
        breath=float(np.clip(jiggle(base.breath, 0.2), 0.01, 0.3)),
        jitter=jiggle(base.jitter, 0.2),
        shimmer=jiggle(base.shimmer, 0.2),
        bw_scale=jiggle(base.bw_scale, 0.08),
        extra_gain_db=float(base.extra_gain_db + rng.normal(0.0, 1.0)),
        rate=jiggle(base.rate, 0.05),
        vowel_offsets=tuple(tuple(float(v) for v in row) for row in offsets),
    )


@functools.lru_cache(maxsize=1024)
def speaker_voice(seed: int, split: str, speaker_index: int) -> Voice:
    """The voice of speaker `speaker_index` (0-based within `split`); depends on nothing else."""
    validate_split(split)
    rng = seeded_rng(seed, split, speaker_index, KIND_SPEAKER, 0)
    # About 30% of odd-numbered speakers are siblings of the (never-sibling) even one before.
    if speaker_index % 2 == 1 and rng.random() < 0.3:
        return _sibling_voice(speaker_voice(seed, split, speaker_index - 1), rng)
    return _draw_voice(rng)
