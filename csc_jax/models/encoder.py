"""Learned waveform encoder and decoder (Conv-TasNet style, stride L/2).

Both are written as framing + ``Dense`` + overlap-add instead of ``nn.Conv`` /
``nn.ConvTranspose``: with stride L/2 a strided convolution is exactly a matmul over
half-overlapping frames, and on CPU the matmul form ran ~3x faster in XLA than the
convolution form at the same shapes (docs/method.md, "Formulation").
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


def num_frames(num_samples: int, kernel: int) -> int:
    """Frames produced by the encoder for a waveform of ``num_samples`` samples."""
    hop = kernel // 2
    return -(-num_samples // hop) - 1  # ceil(T / hop) - 1 after right zero-padding


def frame(x: jnp.ndarray, kernel: int) -> jnp.ndarray:
    """Half-overlapping frames without a gather.

    Args:
      x: (..., T) waveform.
      kernel: frame length L (even); hop is L/2.

    Returns:
      (..., F, L) frames, F = ceil(T / hop) - 1; the tail is zero-padded to a full hop.
    """
    hop = kernel // 2
    t = x.shape[-1]
    blocks = -(-t // hop)
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, blocks * hop - t)])
    x = x.reshape(x.shape[:-1] + (blocks, hop))
    return jnp.concatenate([x[..., :-1, :], x[..., 1:, :]], axis=-1)


def overlap_add(frames: jnp.ndarray, num_samples: int) -> jnp.ndarray:
    """Inverse of :func:`frame` for half-overlapping frames.

    Args:
      frames: (..., F, L).
      num_samples: T, the length to crop the result to.

    Returns:
      (..., T) waveform.
    """
    hop = frames.shape[-1] // 2
    first, second = frames[..., :hop], frames[..., hop:]
    pad = [(0, 0)] * (frames.ndim - 2)
    out = jnp.pad(first, pad + [(0, 1), (0, 0)]) + jnp.pad(second, pad + [(1, 0), (0, 0)])
    out = out.reshape(out.shape[:-2] + (-1,))
    return out[..., :num_samples]


def tight_frame(filters: int, kernel: int) -> np.ndarray:
    """(filters // 2, kernel) float32 matrix Q with orthonormal columns (Q^T Q = I).

    The first ``kernel`` orthonormal DCT-II basis vectors of length ``filters // 2``, taken as
    columns; deterministic, so the encoder and decoder initialisers build the same Q without
    sharing a random key.
    """
    m = filters // 2
    if m < kernel:
        raise ValueError(
            f"a perfect-reconstruction filterbank needs model.enc_filters >= 2 * "
            f"model.enc_kernel, got enc_filters={filters}, enc_kernel={kernel}"
        )
    n = np.arange(m)[:, None]
    k = np.arange(m)[None, :]
    dct = np.sqrt(2.0 / m) * np.cos(np.pi * (n + 0.5) * k / m)
    dct[:, 0] /= np.sqrt(2.0)  # (m, m) orthogonal, columns = basis vectors
    return dct[:, :kernel].astype(np.float32)


def _identity_encoder_init(key, shape, dtype=jnp.float32):
    """Encoder kernel (L, N) = [Q^T, -Q^T]: relu(Qf) and relu(-Qf) keep all of frame f."""
    kernel, filters = shape
    q = tight_frame(filters, kernel)
    w = np.zeros((kernel, filters), np.float32)
    w[:, : q.shape[0]] = q.T
    w[:, q.shape[0] : 2 * q.shape[0]] = -q.T
    return jnp.asarray(w, dtype)


def _identity_decoder_init(key, shape, dtype=jnp.float32):
    """Decoder kernel (N, L) = [Q; -Q] / 2: relu(Qf) Q - relu(-Qf) Q = f^T, and the 1/2
    undoes overlap-add summing every sample from two half-overlapping frames."""
    filters, kernel = shape
    q = tight_frame(filters, kernel)
    w = np.zeros((filters, kernel), np.float32)
    w[: q.shape[0]] = q / 2
    w[q.shape[0] : 2 * q.shape[0]] = -q / 2
    return jnp.asarray(w, dtype)


class WaveformEncoder(nn.Module):
    """Learned analysis filterbank: (..., T) waveform -> (..., F, N) non-negative features.

    ``identity_init``: start as the analysis half of a perfect-reconstruction pair with
    :class:`WaveformDecoder` (see :func:`tight_frame`; needs N >= 2L) instead of LeCun-normal
    random filters.
    """

    filters: int
    kernel: int
    dtype: jnp.dtype = jnp.float32
    identity_init: bool = False

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.kernel % 2:
            raise ValueError(f"model.enc_kernel must be even (stride is L/2), got {self.kernel}")
        frames = frame(x.astype(self.dtype), self.kernel)
        init = _identity_encoder_init if self.identity_init else nn.linear.default_kernel_init
        dense = nn.Dense(self.filters, use_bias=False, dtype=self.dtype, kernel_init=init)
        return nn.relu(dense(frames))


class WaveformDecoder(nn.Module):
    """Learned synthesis filterbank: (..., F, N) features -> (..., T) waveform.

    ``identity_init``: start as the synthesis half of the perfect-reconstruction pair, so
    decoder(encoder(x)) == x at initialisation (up to the zero-padded tail).
    """

    kernel: int
    dtype: jnp.dtype = jnp.float32
    identity_init: bool = False

    @nn.compact
    def __call__(self, features: jnp.ndarray, num_samples: int) -> jnp.ndarray:
        init = _identity_decoder_init if self.identity_init else nn.linear.default_kernel_init
        dense = nn.Dense(self.kernel, use_bias=False, dtype=self.dtype, kernel_init=init)
        return overlap_add(dense(features), num_samples)
