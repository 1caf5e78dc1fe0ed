"""Learned waveform encoder and decoder (Conv-TasNet style, stride L/2).

Both are written as framing + ``Dense`` + overlap-add instead of ``nn.Conv`` /
``nn.ConvTranspose``: with stride L/2 a strided convolution is exactly a matmul over
half-overlapping frames, and on CPU the matmul form ran ~3x faster in XLA than the
convolution form at the same shapes (docs/method.md, "Formulation").
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


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


class WaveformEncoder(nn.Module):
    """Learned analysis filterbank: (..., T) waveform -> (..., F, N) non-negative features."""

    filters: int
    kernel: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.kernel % 2:
            raise ValueError(f"model.enc_kernel must be even (stride is L/2), got {self.kernel}")
        frames = frame(x.astype(self.dtype), self.kernel)
        return nn.relu(nn.Dense(self.filters, use_bias=False, dtype=self.dtype)(frames))


class WaveformDecoder(nn.Module):
    """Learned synthesis filterbank: (..., F, N) features -> (..., T) waveform."""

    kernel: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, features: jnp.ndarray, num_samples: int) -> jnp.ndarray:
        frames = nn.Dense(self.kernel, use_bias=False, dtype=self.dtype)(features)
        return overlap_add(frames, num_samples)
