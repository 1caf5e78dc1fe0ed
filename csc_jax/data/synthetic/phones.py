"""The phone inventory every speaker shares, and the random syllable content of an utterance.

Reference formant targets are for an adult male voice; each voice scales them by its tract
factor (csc_jax.data.synthetic.voices).
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Vowel F1-F3 (Hz): Peterson & Barney (1952) male averages.
VOWELS = {
    "iy": (270.0, 2290.0, 3010.0),
    "ih": (390.0, 1990.0, 2550.0),
    "eh": (530.0, 1840.0, 2480.0),
    "ae": (660.0, 1720.0, 2410.0),
    "ah": (520.0, 1190.0, 2390.0),
    "aa": (730.0, 1090.0, 2440.0),
    "ao": (570.0, 840.0, 2410.0),
    "uh": (440.0, 1020.0, 2240.0),
    "uw": (300.0, 870.0, 2240.0),
    "er": (490.0, 1350.0, 1690.0),
}
VOWEL_NAMES = tuple(VOWELS)
F4_REFERENCE = 3300.0
# Reference bandwidths (Hz) of F1-F4 before the voice's bandwidth scaling.
BANDWIDTHS = np.array([80.0, 100.0, 140.0, 220.0])

# Frication noise bands (lo, hi) in Hz for: s, sh, f, and the t / k / p release bursts.
FRICATION_BANDS = (
    (3500.0, 7000.0),
    (1900.0, 4500.0),
    (1000.0, 7000.0),
    (2800.0, 6500.0),
    (1300.0, 2800.0),
    (400.0, 2200.0),
)
_S, _SH, _F, _BT, _BK, _BP = range(len(FRICATION_BANDS))


@dataclasses.dataclass(frozen=True)
class Segment:
    """One steady-state target: formants (Hz, male reference), source amplitudes, duration."""

    f1: float
    f2: float
    f3: float
    av: float = 0.0  # voicing amplitude into the formant cascade
    ah: float = 0.0  # aspiration noise into the formant cascade
    an: float = 0.0  # nasal murmur (parallel nasal resonator)
    fric: int = -1  # frication band index into FRICATION_BANDS, -1 for none
    af: float = 0.0  # frication amplitude relative to the vowel level
    ms: float = 80.0  # base duration before rate and random scaling
    vowel: int = -1  # index into VOWEL_NAMES for the voice's per-vowel offsets


def vowel_segment(name: str) -> Segment:
    f1, f2, f3 = VOWELS[name]
    return Segment(f1, f2, f3, av=1.0, ms=110.0, vowel=VOWEL_NAMES.index(name))


_CONSONANTS: dict[str, tuple[Segment, ...]] = {
    "w": (Segment(300, 610, 2200, av=0.6, ms=55),),
    "y": (Segment(280, 2250, 2900, av=0.6, ms=55),),
    "l": (Segment(360, 1100, 2700, av=0.65, ms=60),),
    "m": (Segment(270, 1000, 2200, av=0.25, an=0.9, ms=70),),
    "n": (Segment(270, 1500, 2500, av=0.25, an=0.9, ms=65),),
    "s": (Segment(400, 1700, 2600, fric=_S, af=0.3, ms=100),),
    "sh": (Segment(400, 1900, 2500, fric=_SH, af=0.35, ms=100),),
    "f": (Segment(400, 1100, 2400, fric=_F, af=0.12, ms=90),),
    "z": (Segment(300, 1700, 2600, av=0.3, fric=_S, af=0.15, ms=85),),
    "t": (
        Segment(400, 1800, 2600, ms=55),
        Segment(400, 1800, 2600, fric=_BT, af=0.6, ms=8),
        Segment(450, 1750, 2600, ah=0.35, ms=35),
    ),
    "k": (
        Segment(300, 1900, 2300, ms=60),
        Segment(300, 1900, 2300, fric=_BK, af=0.6, ms=10),
        Segment(400, 1800, 2300, ah=0.35, ms=40),
    ),
    "p": (
        Segment(300, 900, 2200, ms=60),
        Segment(300, 900, 2200, fric=_BP, af=0.5, ms=7),
        Segment(400, 950, 2300, ah=0.3, ms=30),
    ),
    "d": (
        Segment(300, 1700, 2600, av=0.12, ms=50),
        Segment(300, 1700, 2600, av=0.2, fric=_BT, af=0.35, ms=7),
    ),
}
# Silence; its neutral formant targets shape the transitions into and out of pauses.
_PAUSE = Segment(500, 1500, 2500, ms=0)
_ONSETS = ("w", "y", "l", "m", "n", "s", "sh", "f", "z", "t", "k", "p", "d")
_ONSET_WEIGHTS = np.array([4, 2, 5, 5, 6, 6, 2, 3, 2, 7, 5, 4, 5], dtype=np.float64)
_ONSET_WEIGHTS /= _ONSET_WEIGHTS.sum()
_CODAS = ("m", "n", "s", "z", "t", "k", "d", "l", "f", "sh", "p")
_CODA_WEIGHTS = np.array([3, 6, 5, 3, 6, 3, 4, 3, 2, 1, 2], dtype=np.float64)
_CODA_WEIGHTS /= _CODA_WEIGHTS.sum()


def utterance_segments(
    rng: np.random.Generator, rate: float, min_total_s: float
) -> tuple[list[Segment], list[float], list[bool]]:
    """Random syllables until `min_total_s` is covered; returns segments, seconds, accented.

    Content comes only from `rng` (the utterance seed), never from the voice: the voice only
    sets the speaking `rate`.
    """
    segments: list[Segment] = [_PAUSE]
    durations = [float(rng.uniform(0.03, 0.15))]
    accented = [False]
    total = durations[0]

    def add(segment: Segment, scale: float = 1.0, accent: bool = False) -> None:
        nonlocal total
        seconds = segment.ms / 1000.0 * rate * scale * float(np.exp(rng.normal(0.0, 0.15)))
        segments.append(segment)
        durations.append(seconds)
        accented.append(accent)
        total += seconds

    while total < min_total_s:
        if rng.random() < 0.75:
            for segment in _CONSONANTS[_ONSETS[rng.choice(len(_ONSETS), p=_ONSET_WEIGHTS)]]:
                add(segment)
        accent = bool(rng.random() < 0.3)
        add(
            vowel_segment(VOWEL_NAMES[rng.integers(len(VOWEL_NAMES))]),
            1.35 if accent else 1.0,
            accent,
        )
        if rng.random() < 0.35:
            for segment in _CONSONANTS[_CODAS[rng.choice(len(_CODAS), p=_CODA_WEIGHTS)]]:
                add(segment)
        if rng.random() < 0.12:
            segments.append(_PAUSE)
            durations.append(float(rng.uniform(0.06, 0.25)) * rate)
            accented.append(False)
            total += durations[-1]
    return segments, durations, accented
