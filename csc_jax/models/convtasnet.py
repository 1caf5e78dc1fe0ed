"""Conv-TasNet (Luo & Mesgarani 2019) assembled from the CSC model's own layers.

The separation backbone alone, without the CSC speaker branch: what ``benchmark.py
--mode=backbone`` trains so that its figures compare with other separation toolkits
(scripts/pytorch_convtasnet_baseline.py trains asteroid's ConvTasNet at the same shapes).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from csc_jax.models.encoder import WaveformDecoder, WaveformEncoder
from csc_jax.models.separator import SeparatorTrunk


class ConvTasNetBackbone(nn.Module):
    """Conv-TasNet from the project's own layers: (B, T) mixture -> (B, n_src, T) estimates.

    encoder (framing + Dense + ReLU, N filters of L samples, hop L/2) -> SeparatorTrunk (gLN,
    1x1 to B, X*R TCN blocks with H hidden channels, sum of skips) -> PReLU -> 1x1 to
    n_src*N -> sigmoid masks -> masked encoder features -> shared decoder (Dense + overlap-add).
    The same layout as asteroid's ConvTasNet with skip channels = B and a ReLU encoder.

    Attributes (Conv-TasNet paper notation):
      enc_filters: N. enc_kernel: L (even; stride L/2). bottleneck: B. hidden: H.
      conv_kernel: P. blocks: X. repeats: R. n_src: sources separated.
      dtype: compute dtype; parameters are float32 and the estimates are returned float32.
    """

    enc_filters: int
    enc_kernel: int
    bottleneck: int
    hidden: int
    conv_kernel: int
    blocks: int
    repeats: int
    n_src: int = 2
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, mixture: jnp.ndarray) -> jnp.ndarray:
        num_samples = mixture.shape[-1]
        n = self.enc_filters
        features = WaveformEncoder(n, self.enc_kernel, dtype=self.dtype)(mixture)  # (B, F, N)
        h = SeparatorTrunk(
            self.bottleneck,
            self.hidden,
            self.conv_kernel,
            self.blocks,
            self.repeats,
            dtype=self.dtype,
        )(features)  # (B, F, Bn)
        h = nn.PReLU(param_dtype=jnp.float32)(h)
        masks = nn.sigmoid(nn.Dense(self.n_src * n, dtype=self.dtype)(h))  # (B, F, S*N)
        masks = masks.reshape(masks.shape[:-1] + (self.n_src, n))  # source-major, as asteroid
        masked = jnp.moveaxis(masks * features[..., None, :], -2, -3)  # (B, S, F, N)
        estimates = WaveformDecoder(self.enc_kernel, dtype=self.dtype)(masked, num_samples)
        return estimates.astype(jnp.float32)
