"""Signal-processing building blocks of the synthesiser: biquads, resonators, smoothing,
block-to-sample interpolation and a transient-free time-varying all-pole filter.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal


def peaking_ba(freq: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ-cookbook peaking EQ biquad."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / sr
    alpha = math.sin(w0) / (2.0 * q)
    cos = math.cos(w0)
    b = np.array([1.0 + alpha * a_lin, -2.0 * cos, 1.0 - alpha * a_lin])
    a = np.array([1.0 + alpha / a_lin, -2.0 * cos, 1.0 - alpha / a_lin])
    return b / a[0], a / a[0]


def high_shelf_ba(freq: float, gain_db: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ-cookbook high shelf (slope 1)."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / sr
    cos = math.cos(w0)
    two_sqrt_a_alpha = 2.0 * math.sqrt(a_lin) * math.sin(w0) / 2.0 * math.sqrt(2.0)
    b = a_lin * np.array(
        [
            (a_lin + 1) + (a_lin - 1) * cos + two_sqrt_a_alpha,
            -2.0 * ((a_lin - 1) + (a_lin + 1) * cos),
            (a_lin + 1) + (a_lin - 1) * cos - two_sqrt_a_alpha,
        ]
    )
    a = np.array(
        [
            (a_lin + 1) - (a_lin - 1) * cos + two_sqrt_a_alpha,
            2.0 * ((a_lin - 1) - (a_lin + 1) * cos),
            (a_lin + 1) - (a_lin - 1) * cos - two_sqrt_a_alpha,
        ]
    )
    return b / a[0], a / a[0]


def resonator_a(freq: np.ndarray, bw: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Second-order all-pole resonator coefficients (a1, a2), elementwise."""
    r = np.exp(-np.pi * bw / sr)
    return -2.0 * r * np.cos(2.0 * np.pi * freq / sr), r * r


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Hann-window moving average along axis 0 with edge padding (no level change at ends).

    Direct (not FFT) convolution: runs of equal inputs stay bitwise equal, which lets
    `time_varying_allpole` merge them into one filter call.
    """
    if width <= 1:
        return x
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    pad = width // 2
    padded = np.pad(x, [(pad, width - 1 - pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    kernel = kernel.reshape((-1,) + (1,) * (x.ndim - 1))
    return scipy.signal.convolve(padded, kernel, "valid", method="direct")


def upsample(values: np.ndarray, block: int) -> np.ndarray:
    """Linear interpolation of per-block values (n_blocks, C) between block centres.

    Returns float64 (n_blocks * block, C), held constant beyond the first and last centres.
    Broadcasting instead of np.interp: one pass for all channels, no per-sample search.
    """
    position = np.arange(block) / block - 0.5  # offset from the block centre, in blocks
    first_half = int(np.sum(position < 0))
    weight = np.where(position < 0, position + 1.0, position)[None, :, None]
    padded = np.concatenate([values[:1], values, values[-1:]])
    before, here, after = padded[:-2, None], padded[1:-1, None], padded[2:, None]
    out = np.empty((values.shape[0], block, values.shape[1]))
    out[:, :first_half] = before + (here - before) * weight[:, :first_half]
    out[:, first_half:] = here + (after - here) * weight[:, first_half:]
    return out.reshape(-1, values.shape[1])


def time_varying_allpole(x: np.ndarray, a: np.ndarray, block: int) -> np.ndarray:
    """Filters x (float64, (n_blocks * block,)) by A_k(1) / A_k(z), A_k = a[k] (n_blocks, p + 1).

    Coefficients switch at block boundaries (block >= p). The state carried across a switch is
    the last p outputs (direct form I), re-expressed as lfilter's transposed-form state under the
    new coefficients, so the result equals a per-sample time-varying recursion without switching
    transients. The A_k(1) gain gives unit DC gain. Consecutive blocks with identical
    coefficients are filtered in one call.
    """
    n_blocks, order = a.shape[0], a.shape[1] - 1
    # lfilter's state for an all-pole filter: zi[i] = -sum_m a[i + 1 + m] * y[n - m].
    idx = np.arange(order)[:, None] + np.arange(order)[None, :] + 1
    starts = np.flatnonzero(np.concatenate([[True], np.any(a[1:] != a[:-1], axis=1)]))
    stops = np.append(starts[1:], n_blocks)
    hankel = np.where(idx <= order, a[starts][:, np.minimum(idx, order)], 0.0)
    gains = a[starts].sum(axis=1)
    y = np.empty_like(x)
    history = np.zeros(order)  # y[n], y[n - 1], ... at the end of the previous run
    lfilter = scipy.signal.lfilter
    for r, (start, stop) in enumerate(zip(starts * block, stops * block, strict=True)):
        zi = -(hankel[r] @ history)
        out, _ = lfilter(gains[r : r + 1], a[starts[r]], x[start:stop], zi=zi)
        y[start:stop] = out
        history = out[: -order - 1 : -1]
    return y
