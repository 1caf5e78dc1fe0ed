"""Host-side training augmentations for transfer: pseudo-speakers and random channels.

Pure numpy / scipy / soxr functions on one float32 (T,) waveform, driven by a numpy Generator
that the pipeline seeds from (seed, global position), so an augmented stream is still a pure
function of (seed, position). The settings are ``config.data.augment`` (documented in
csc_jax/config/schema.py; docs/method.md "Training data for transfer"); all are off by default.

* Pseudo-speakers (`speed_perturb`): an utterance resampled by a factor a (a > 1: shorter and
  every frequency, f0 and formants alike, multiplied by a) counts as another speaker, as in
  wespeaker's self-supervised recipes (speed perturbation 0.9 / 1.0 / 1.1).
* Channel (`random_channel`): random room (synthetic exponentially decaying noise RIR),
  microphone / room colouration (peaking and shelf biquads), band limits, and a telephone
  band with an optional 8-bit mu-law codec, each with its own probability, drawn per crop, so
  the K views of one target agree on the speaker but not on the recording chain.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import scipy.signal
import soxr

from csc_jax.data.synthetic import filters

_EPS = 1e-8
TELEPHONE_BAND_HZ = (300.0, 3400.0)
# Band edges of the random EQ's peaking filters and shelves, as fractions of the sample rate
# where a fixed frequency would pass Nyquist (so the same config works at 8 and 16 kHz).
_EQ_LOW_HZ = 80.0
_EQ_TOP = 0.45
_LOW_SHELF_HZ = (80.0, 400.0)
_HIGH_SHELF_HZ = (2000.0, 6000.0)
_Q_RANGE = (0.5, 2.0)
_BUTTER_ORDER = 4
_TELEPHONE_ORDER = 8
_MU = 255.0


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The ``config.data.augment`` settings (see csc_jax/config/schema.py for each key)."""

    speed_factors: tuple[float, ...] = ()
    speed_range: tuple[float, ...] = ()
    eq_prob: float = 0.0
    eq_bands: int = 3
    eq_gain_db: float = 6.0
    band_limit_prob: float = 0.0
    highpass_hz: tuple[float, float] = (50.0, 400.0)
    lowpass_hz: tuple[float, float] = (3000.0, 7500.0)
    telephone_prob: float = 0.0
    telephone_mulaw: bool = True
    reverb_prob: float = 0.0
    reverb_rt60: tuple[float, float] = (0.2, 0.8)
    reverb_drr_db: tuple[float, float] = (0.0, 10.0)
    babble_prob: float = 0.0
    babble_speakers: tuple[int, int] = (2, 4)

    @property
    def speed(self) -> bool:
        return bool(self.speed_factors) or bool(self.speed_range)

    @property
    def channel(self) -> bool:
        return max(self.eq_prob, self.band_limit_prob, self.telephone_prob, self.reverb_prob) > 0

    @property
    def active(self) -> bool:
        return self.speed or self.channel or self.babble_prob > 0


def from_config(config: Any) -> Augmentation | None:
    """The experiment config's ``data.augment`` as an Augmentation, or None when all are off."""
    d = config.data.augment.to_dict()
    aug = Augmentation(**{k: tuple(v) if isinstance(v, list | tuple) else v for k, v in d.items()})
    return aug if aug.active else None


def draw_speed_factor(aug: Augmentation, rng: np.random.Generator) -> float:
    """One factor: uniform over ``speed_factors``, else uniform in ``speed_range``; 1.0 if off."""
    if aug.speed_factors:
        return float(aug.speed_factors[int(rng.integers(0, len(aug.speed_factors)))])
    if aug.speed_range:
        return float(rng.uniform(aug.speed_range[0], aug.speed_range[1]))
    return 1.0


def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """Resample float32 (L,) `wave` by `factor`: (round(L / factor),) float32, played at the same
    rate every frequency is multiplied by `factor` (soxr, band-limited). factor 1: unchanged."""
    if factor == 1.0:
        return wave
    # soxr only needs the rate ratio: reading L samples "at rate factor" and writing "at rate 1".
    return soxr.resample(np.asarray(wave, np.float32), float(factor), 1.0).astype(np.float32)


def samples_needed(length: int, factor: float, margin: int) -> int:
    """Input samples whose speed-perturbed version covers ``length + 2 * margin`` output samples
    (the margins absorb the resampler's edge transients)."""
    return int(math.ceil((length + 2 * margin) * factor)) + 1


# ---------------------------------------------------------------------------------- channel


def _sos(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """One second-order section (1, 6) from normalised (b, a)."""
    return np.concatenate([b, a])[None, :]


def peaking_sos(f0: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """Peaking EQ biquad (the synthesiser's, Audio EQ Cookbook): `gain_db` at `f0` Hz, unity
    far from it, bandwidth set by `q`. Returns sos (1, 6) float64 for scipy.signal.sosfilt."""
    return _sos(*filters.peaking_ba(f0, gain_db, q, sample_rate))


def shelf_sos(kind: str, f0: float, gain_db: float, sample_rate: int) -> np.ndarray:
    """Low ('low') or high ('high') shelf biquad (Audio EQ Cookbook, slope 1): `gain_db` below
    (low) or above (high) `f0` Hz, unity on the other side. Returns sos (1, 6) float64.

    The low shelf is the high shelf of the opposite gain times the gain: the cookbook's low
    shelf has exactly this magnitude response."""
    if kind == "high":
        return _sos(*filters.high_shelf_ba(f0, gain_db, sample_rate))
    b, a = filters.high_shelf_ba(f0, -gain_db, sample_rate)
    return _sos(b * 10.0 ** (gain_db / 20.0), a)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def random_eq_sos(aug: Augmentation, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random EQ: ``eq_bands`` peaking filters (centre log-uniform in [80 Hz, 0.45 fs], Q in
    [0.5, 2]) plus a low and a high shelf, every gain uniform in +-``eq_gain_db``.
    Returns sos (eq_bands + 2, 6) float64."""
    g = aug.eq_gain_db
    top = _EQ_TOP * sample_rate
    sections = [
        peaking_sos(
            _log_uniform(rng, _EQ_LOW_HZ, top),
            rng.uniform(-g, g),
            rng.uniform(*_Q_RANGE),
            sample_rate,
        )
        for _ in range(aug.eq_bands)
    ]
    low = _log_uniform(rng, *_LOW_SHELF_HZ)
    high = _log_uniform(rng, min(_HIGH_SHELF_HZ[0], 0.3 * top), min(_HIGH_SHELF_HZ[1], top))
    sections.append(shelf_sos("low", low, rng.uniform(-g, g), sample_rate))
    sections.append(shelf_sos("high", high, rng.uniform(-g, g), sample_rate))
    return np.concatenate(sections)


def band_limit_sos(
    low_hz: float, high_hz: float, sample_rate: int, order: int = _BUTTER_ORDER
) -> np.ndarray:
    """Butterworth band-pass sos between `low_hz` and `high_hz` (high clipped below Nyquist)."""
    high = min(high_hz, 0.49 * sample_rate)
    return scipy.signal.butter(
        order, [low_hz, high], btype="bandpass", fs=sample_rate, output="sos"
    )


def mulaw_codec(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """G.711-like mu-law companding with `bits`-bit quantisation, at `x`'s own peak level:
    the coarse steps of a narrow-band codec (quiet parts get relatively more noise)."""
    peak = float(np.max(np.abs(x)))
    if peak <= 0.0:
        return x
    y = x / peak
    c = np.sign(y) * np.log1p(_MU * np.abs(y)) / np.log1p(_MU)
    levels = 2 ** (bits - 1) - 1
    c = np.round(c * levels) / levels
    return (np.sign(c) * np.expm1(np.abs(c) * np.log1p(_MU)) / _MU * peak).astype(x.dtype)


def telephone(x: np.ndarray, sample_rate: int, mulaw: bool) -> np.ndarray:
    """300-3400 Hz telephone band (Butterworth band-pass, order 8), then optionally mu-law."""
    sos = band_limit_sos(*TELEPHONE_BAND_HZ, sample_rate, order=_TELEPHONE_ORDER)
    y = scipy.signal.sosfilt(sos, x).astype(np.float32)
    return mulaw_codec(y) if mulaw else y


def synthetic_rir(
    rt60: float, drr_db: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """A room impulse response: a unit direct path then Gaussian noise whose amplitude decays by
    60 dB over `rt60` seconds, its energy `drr_db` below the direct path's.
    Returns float32 (round(rt60 * sample_rate),) with rir[0] = 1."""
    n = max(2, int(round(rt60 * sample_rate)))
    t = np.arange(1, n)
    tail = rng.standard_normal(n - 1) * np.exp(-3.0 * np.log(10.0) * t / n)
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail**2))
    return np.concatenate([[1.0], tail]).astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """x convolved with `rir`, cut to x's length (the tail past the crop is dropped)."""
    return scipy.signal.fftconvolve(x, rir)[: x.shape[0]].astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + _EPS))


def random_channel(
    x: np.ndarray, aug: Augmentation, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """One random recording chain applied to float32 (T,) `x`: reverb, EQ, band limits,
    telephone band, each with its probability (in that order: room, microphone, channel,
    codec). The result is scaled back to x's RMS (the level is the mixer's job).
    Returns float32 (T,); x itself when no stage was drawn."""
    y = x
    if rng.random() < aug.reverb_prob:
        rir = synthetic_rir(
            rng.uniform(*aug.reverb_rt60), rng.uniform(*aug.reverb_drr_db), sample_rate, rng
        )
        y = reverberate(y, rir)
    if rng.random() < aug.eq_prob:
        y = scipy.signal.sosfilt(random_eq_sos(aug, sample_rate, rng), y)
    if rng.random() < aug.band_limit_prob:
        sos = band_limit_sos(
            rng.uniform(*aug.highpass_hz), rng.uniform(*aug.lowpass_hz), sample_rate
        )
        y = scipy.signal.sosfilt(sos, y)
    if rng.random() < aug.telephone_prob:
        y = telephone(y, sample_rate, aug.telephone_mulaw)
    if y is x:
        return x
    return (y * (_rms(x) / _rms(y))).astype(np.float32)


def unit_rms(x: np.ndarray) -> np.ndarray:
    """float32 x scaled to RMS 1 (babble components get equal weight)."""
    return (x / _rms(x)).astype(np.float32)
