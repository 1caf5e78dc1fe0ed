"""The time-frequency front end's signal processing: STFT, inverse STFT and log-power features.

Pure functions, no parameters (``model.frontend='stft'``, docs/method.md "Front ends"). The
window is a periodic Hann window of ``window`` samples and the hop ``hop`` divides it
(``ratio = window // hop`` frames overlap at every sample). Framing and overlap-add are
reshapes and ``ratio`` shifted slices, with no gather, as the waveform front end's
(models/encoder.py). The FFT size is the window length, so there are ``window // 2 + 1``
bins.

Padding: the signal gets ``window - hop`` zeros on the left and enough on the right that every
sample of the signal lies in exactly ``ratio`` frames; the inverse divides by the sum of the
squared windows over those frames (weighted overlap-add), so ``istft(stft(x)) == x`` up to
float32 rounding for any window/hop pair with an integer ratio >= 2 (tests/test_stft.py).

Everything is computed in float32 whatever the model's compute dtype: XLA's FFT has no
bfloat16 kernel, and the analysis and synthesis are a small part of the step.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Floor of the normalised power spectrum in the log features: 1e-4 of W times the signal's
# mean power, which is 36 dB below the mean bin power (a Hann window's mean |X|^2 is 3/8 of
# that product). Silence maps to a finite value that gLN can normalise, and near-silent bins
# do not dominate the features' spread. Measured: with a floor 76 dB down (1e-8) the speaker
# vectors collapsed (val EER 43-50 %, L_csc pinned at log 2, gradient norm 0.15) once the
# learning rate stayed high past step 200; with 1e-4 they did not (docs/method.md).
LOG_POWER_FLOOR = 1e-4


def check_window(window: int, hop: int) -> None:
    """Raise ValueError unless ``window`` is even and ``hop`` divides it at least twice."""
    if hop < 1 or window % 2 or window < 2 * hop or window % hop:
        raise ValueError(
            f"model.stft_window={window} must be even and a multiple (>= 2) of model.stft_hop={hop}"
        )


def num_bins(window: int) -> int:
    """Frequency bins of a ``window``-point real FFT."""
    return window // 2 + 1


def num_frames(num_samples: int, window: int, hop: int) -> int:
    """STFT frames of a ``num_samples`` signal: ceil(T / hop) + ratio - 1."""
    return -(-num_samples // hop) + window // hop - 1


def hann(window: int) -> np.ndarray:
    """(window,) float32 periodic Hann window."""
    n = np.arange(window)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / window)).astype(np.float32)


def frames(x: jnp.ndarray, window: int, hop: int) -> jnp.ndarray:
    """Overlapping, unwindowed frames.

    Args:
      x: (..., T) float waveform.
      window: frame length W (a multiple r >= 2 of ``hop``).
      hop: frame step H.

    Returns:
      (..., F, W) float32 frames, F = :func:`num_frames`; frame f starts at sample
      f * H - (W - H) of the zero-padded signal.
    """
    check_window(window, hop)
    ratio = window // hop
    t = x.shape[-1]
    blocks = -(-t // hop) + 2 * (ratio - 1)
    left = window - hop
    pad = [(0, 0)] * (x.ndim - 1) + [(left, blocks * hop - t - left)]
    x = jnp.pad(x.astype(jnp.float32), pad).reshape(x.shape[:-1] + (blocks, hop))
    f = blocks - ratio + 1
    return jnp.concatenate([x[..., j : j + f, :] for j in range(ratio)], axis=-1)


def frame_energy(x: jnp.ndarray, window: int, hop: int) -> jnp.ndarray:
    """Windowed energy of each STFT frame: (..., T) -> (..., F) float32."""
    w = jnp.asarray(hann(window))
    return jnp.sum(jnp.square(frames(x, window, hop) * w), axis=-1)


def stft(x: jnp.ndarray, window: int, hop: int) -> jnp.ndarray:
    """Short-time Fourier transform: (..., T) float -> (..., F, window // 2 + 1) complex64."""
    return jnp.fft.rfft(frames(x, window, hop) * jnp.asarray(hann(window)), axis=-1)


def overlap_add(frames_: jnp.ndarray, hop: int, num_samples: int) -> jnp.ndarray:
    """Inverse of :func:`frames`' layout: (..., F, W) -> (..., T), overlapping parts summed."""
    window = frames_.shape[-1]
    ratio = window // hop
    f = frames_.shape[-2]
    pad = [(0, 0)] * (frames_.ndim - 2)
    out = 0.0
    for j in range(ratio):
        chunk = frames_[..., j * hop : (j + 1) * hop]
        out = out + jnp.pad(chunk, pad + [(j, ratio - 1 - j), (0, 0)])
    out = out.reshape(out.shape[:-2] + ((f + ratio - 1) * hop,))
    left = window - hop
    return out[..., left : left + num_samples]


def window_sum_square(window: int, hop: int) -> np.ndarray:
    """(hop,) float32: sum over the ``ratio`` overlapping frames of the squared window, at each
    position within a hop (the same for every sample of the signal, given the padding)."""
    w2 = np.square(hann(window)).reshape(window // hop, hop)
    return w2.sum(axis=0).astype(np.float32)


def istft(spec: jnp.ndarray, window: int, hop: int, num_samples: int) -> jnp.ndarray:
    """Inverse STFT by weighted overlap-add (Hann synthesis window, divided by the window sum
    of squares): (..., F, window // 2 + 1) complex -> (..., T) float32."""
    y = jnp.fft.irfft(spec, n=window, axis=-1).astype(jnp.float32) * jnp.asarray(hann(window))
    out = overlap_add(y, hop, num_samples)
    norm = np.tile(window_sum_square(window, hop), -(-num_samples // hop))[:num_samples]
    return out / jnp.asarray(norm)


def log_power(spec: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """Level-invariant log power features: (..., F, bins) complex, (..., T) waveform ->
    (..., F, bins) float32, log(|X|^2 / (W * rms(x)^2) + floor).

    Dividing by the signal's mean power makes the features the same for ``x`` and ``a * x``
    (a > 0) down to the floor, so the model does not learn the recording level.
    """
    window = 2 * (spec.shape[-1] - 1)
    power = jnp.square(jnp.real(spec)) + jnp.square(jnp.imag(spec))
    mean_power = jnp.mean(jnp.square(x.astype(jnp.float32)), axis=-1)[..., None, None]
    return jnp.log(power / (window * mean_power + 1e-12) + LOG_POWER_FLOOR)
