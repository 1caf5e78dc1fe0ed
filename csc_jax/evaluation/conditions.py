"""Adverse test conditions, reproducible from a seed.

For each trial the *test* side is corrupted (the enrollment stays clean, as in the usual
adverse-condition SV protocols): colored noise at a fixed SNR, or one interfering speaker at a
fixed SIR whose speaker is neither the enrollment's nor the test's. Each trial's randomness is
``default_rng([seed, condition_index, trial_index])``, so any subset of trials or conditions
gives the same corrupted audio.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Condition:
    """One evaluation condition: kind is 'clean', 'noise' (level = SNR dB) or 'speech' (SIR dB)."""

    kind: str
    level: float | None = None

    @property
    def name(self) -> str:
        if self.kind == "clean":
            return "clean"
        prefix = "SNR" if self.kind == "noise" else "SIR"
        return f"{prefix} {self.level:g} dB"


def conditions_from_config(eval_config) -> list[Condition]:
    """clean, then noise at each eval.noise_snr_db, then speech at each eval.interferer_sir_db."""
    out = [Condition("clean")]
    out += [Condition("noise", float(v)) for v in eval_config.noise_snr_db]
    out += [Condition("speech", float(v)) for v in eval_config.interferer_sir_db]
    return out


def fit_length(x: np.ndarray, length: int, start: int = 0) -> np.ndarray:
    """Crop (from ``start``) or wrap-pad a (T,) waveform to exactly ``length`` samples."""
    if x.shape[0] >= length:
        return x[start : start + length]
    return np.pad(x, (0, length - x.shape[0]), mode="wrap")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def colored_noise(rng: np.random.Generator, length: int, exponent: float) -> np.ndarray:
    """Unit-RMS Gaussian noise with power spectrum ~ 1/f**exponent: (length,) float32."""
    spec = np.fft.rfft(rng.standard_normal(length))
    freqs = np.maximum(np.arange(spec.shape[0], dtype=np.float64), 1.0)
    noise = np.fft.irfft(spec * freqs ** (-exponent / 2.0), n=length)
    return (noise / _rms(noise)).astype(np.float32)


def corrupt(
    clean: np.ndarray,
    condition: Condition,
    rng: np.random.Generator,
    interferer: np.ndarray | None = None,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Apply one condition to a (T,) waveform; returns (T,) float32 at the clean's level.

    Args:
      clean: the test utterance.
      condition: what to add.
      rng: this trial's generator (noise colour when ``noise`` is not given).
      interferer: (T,) interfering speech for 'speech'.
      noise: (T,) recorded noise for 'noise' (default: colored Gaussian noise).
    """
    if condition.kind == "clean":
        return clean.astype(np.float32)
    if condition.kind == "noise":
        if noise is None:
            noise = colored_noise(rng, clean.shape[0], float(rng.uniform(0.0, 2.0)))
        other = noise
    elif condition.kind == "speech":
        if interferer is None:
            raise ValueError("condition 'speech' needs an interferer waveform")
        other = interferer
    else:
        raise ValueError(f"unknown condition kind {condition.kind!r}")
    gain = _rms(clean) / _rms(other) * 10.0 ** (-condition.level / 20.0)
    return (clean + gain * other).astype(np.float32)


def pick_interferer(rng: np.random.Generator, speakers: list[str], exclude: set[str]) -> int:
    """Index of an utterance whose speaker is not in ``exclude``."""
    candidates = [i for i, s in enumerate(speakers) if s not in exclude]
    if not candidates:
        raise ValueError(
            f"no interfering speaker available outside {sorted(exclude)}: the test set needs "
            "at least 3 speakers for the interfering-speaker conditions"
        )
    return candidates[int(rng.integers(len(candidates)))]
