"""Separator trunk: Conv-TasNet temporal convolutional network (TCN) over encoder frames.

The dilated depthwise convolution is written as P shifted multiply-adds over a padded
sequence rather than ``nn.Conv(feature_group_count=H)``: XLA:CPU lowers grouped dilated
convolutions poorly, and the multiply-add form measured faster at the demo's shapes
(docs/method.md, "Formulation").
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class GlobalLayerNorm(nn.Module):
    """gLN: normalise each example over (frames, channels); per-channel gain and bias.

    Input/output (..., F, C). Statistics are computed in float32.
    """

    eps: float = 1e-8

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = x.shape[-1]
        xf = x.astype(jnp.float32)
        mean = jnp.mean(xf, axis=(-2, -1), keepdims=True)
        var = jnp.mean(jnp.square(xf - mean), axis=(-2, -1), keepdims=True)
        gain = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        y = (xf - mean) * jnp.reciprocal(jnp.sqrt(var + self.eps)) * gain + bias
        return y.astype(x.dtype)


class DepthwiseConv1D(nn.Module):
    """Non-causal dilated depthwise conv over frames: (..., F, C) -> (..., F, C), 'same' length."""

    kernel: int
    dilation: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        c = x.shape[-1]
        w = self.param("kernel", nn.initializers.lecun_normal(), (self.kernel, c), jnp.float32)
        b = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        half = (self.kernel - 1) // 2
        left, right = half * self.dilation, (self.kernel - 1 - half) * self.dilation
        pad = [(0, 0)] * (x.ndim - 2) + [(left, right), (0, 0)]
        xp = jnp.pad(x, pad)
        f = x.shape[-2]
        w = w.astype(self.dtype)
        y = b.astype(self.dtype)
        for p in range(self.kernel):
            start = p * self.dilation
            y = y + xp[..., start : start + f, :] * w[p]
        return y


class TCNBlock(nn.Module):
    """1x1 conv B->H, PReLU, gLN, dilated depthwise conv, PReLU, gLN, 1x1 H->(residual, skip)."""

    hidden: int
    kernel: int
    dilation: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        b = x.shape[-1]
        y = nn.Dense(self.hidden, dtype=self.dtype)(x)
        y = GlobalLayerNorm()(nn.PReLU(param_dtype=jnp.float32)(y))
        y = DepthwiseConv1D(self.kernel, self.dilation, dtype=self.dtype)(y)
        y = GlobalLayerNorm()(nn.PReLU(param_dtype=jnp.float32)(y))
        out = nn.Dense(2 * b, dtype=self.dtype)(y)
        residual, skip = out[..., :b], out[..., b:]
        return x + residual, skip


class TCN(nn.Module):
    """Stack of ``repeats`` x ``blocks`` TCN blocks with dilations 1, 2, ..., 2**(blocks-1).

    Input (..., F, B) -> output (..., F, B): the sum of skip connections (Conv-TasNet).
    """

    hidden: int
    kernel: int
    blocks: int
    repeats: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        skips = jnp.zeros_like(x)
        for _ in range(self.repeats):
            for i in range(self.blocks):
                x, skip = TCNBlock(self.hidden, self.kernel, 2**i, dtype=self.dtype)(x)
                skips = skips + skip
        return skips


class SeparatorTrunk(nn.Module):
    """Shared trunk of the separative encoder.

    (..., F, N) encoder features -> gLN -> 1x1 bottleneck B -> TCN -> (..., F, B) bottom-up
    embedding h.
    """

    bottleneck: int
    hidden: int
    kernel: int
    blocks: int
    repeats: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
        x = GlobalLayerNorm()(features)
        x = nn.Dense(self.bottleneck, dtype=self.dtype)(x)
        return TCN(self.hidden, self.kernel, self.blocks, self.repeats, dtype=self.dtype)(x)
