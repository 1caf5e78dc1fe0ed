"""The CSC model: multi-task separative encoder, speaker branch, cross-attention, extraction head.

Shapes (B targets, K interfering conditions, T samples, F frames, N encoder filters,
Bn bottleneck, D speaker dim):

  mixtures (B, K, T)
    -> WaveformEncoder            E  (B, K, F, N)
    -> SeparatorTrunk             h  (B, K, F, Bn)   bottom-up embedding (shared, multi-task)
    -> speaker branch             z  (B, K, F, D)    frame-level speaker representations
    -> CrossAttention(query = mean_t h[b,k], frames = z[b, all k, all t])
                                  c  (B, K, D)       global speaker vector per condition
    -> FiLM(h, c) -> TCN blocks -> sigmoid mask M (B, K, F, N)
    -> WaveformDecoder(M * E)     s_hat (B, K, T)    extracted target
  target-frame weights w[b,k,t] = sum_n M E / sum_n E   (share of encoder energy on the target)

All methods are pure functions of (params, inputs) through ``model.apply``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from csc_jax.models.cross_attention import CrossAttention
from csc_jax.models.encoder import WaveformDecoder, WaveformEncoder
from csc_jax.models.separator import TCN, SeparatorTrunk


class CSCModel(nn.Module):
    """Multi-task separative encoder with cross-attention over interfering conditions."""

    enc_filters: int = 64
    enc_kernel: int = 16
    bottleneck: int = 64
    hidden: int = 128
    conv_kernel: int = 3
    blocks: int = 4
    repeats: int = 2
    extraction_blocks: int = 2
    speaker_dim: int = 64
    attention_heads: int = 4
    attention_dim: int = 64
    use_cross_attention: bool = True
    # Start the extractor at the identity: a perfect-reconstruction encoder/decoder pair and
    # a mask head at a constant 0.5, so the untrained model returns the (scaled) mixture,
    # SI-SNRi 0 dB, instead of noise (docs/method.md, "Initialisation").
    identity_init: bool = False
    # Rematerialisation of the TCN blocks (trunk and extraction head) in the backward pass:
    # 'none' | 'block' | 'repeat', and what each checkpointed segment keeps (separator.py).
    remat: str = "none"
    remat_policy: str = "nothing"
    # Unroll the rematerialised TCN's scan (same computation; for counting FLOPs).
    unroll_scan: bool = False
    dtype: Any = jnp.float32

    def setup(self):
        if self.attention_dim % self.attention_heads:
            raise ValueError(
                f"model.attention_dim={self.attention_dim} must be divisible by "
                f"model.attention_heads={self.attention_heads}"
            )
        self.encoder = WaveformEncoder(
            self.enc_filters, self.enc_kernel, dtype=self.dtype, identity_init=self.identity_init
        )
        self.trunk = SeparatorTrunk(
            self.bottleneck,
            self.hidden,
            self.conv_kernel,
            self.blocks,
            self.repeats,
            dtype=self.dtype,
            remat=self.remat,
            remat_policy=self.remat_policy,
            unroll_scan=self.unroll_scan,
        )
        self.speaker_hidden = nn.Dense(self.speaker_dim, dtype=self.dtype)
        self.speaker_act = nn.PReLU(param_dtype=jnp.float32)
        self.speaker_out = nn.Dense(self.speaker_dim, dtype=self.dtype)
        self.attention = CrossAttention(
            self.attention_heads,
            self.attention_dim // self.attention_heads,
            self.speaker_dim,
            dtype=self.dtype,
        )
        self.mean_pool_proj = nn.Dense(self.speaker_dim, dtype=self.dtype)
        self.film = nn.Dense(2 * self.bottleneck, dtype=self.dtype)
        self.extraction_tcn = TCN(
            self.hidden,
            self.conv_kernel,
            self.extraction_blocks,
            1,
            dtype=self.dtype,
            remat=self.remat,
            remat_policy=self.remat_policy,
            unroll_scan=self.unroll_scan,
        )
        self.mask_act = nn.PReLU(param_dtype=jnp.float32)
        zero = nn.initializers.zeros if self.identity_init else nn.linear.default_kernel_init
        self.mask_out = nn.Dense(self.enc_filters, dtype=self.dtype, kernel_init=zero)
        self.decoder = WaveformDecoder(
            self.enc_kernel, dtype=self.dtype, identity_init=self.identity_init
        )

    # ------------------------------------------------------------------ pieces
    def bottom_up(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """(..., T) waveform -> (E (..., F, N), h (..., F, Bn), z (..., F, D))."""
        features = self.encoder(x)
        h = self.trunk(features)
        z = self.speaker_out(self.speaker_act(self.speaker_hidden(h)))
        return features, h, z

    def global_vector(self, h: jnp.ndarray, z: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Global speaker vectors of one target seen under K conditions.

        Args:
          h: (..., K, F, Bn) bottom-up embeddings.
          z: (..., K, F, D) frame-level speaker representations.

        Returns:
          (c (..., K, D) float32, attention weights (..., K, heads, K*F) or zeros (..., K, 1, 1)).
        """
        k, f = z.shape[-3], z.shape[-2]
        frames = z.reshape(z.shape[:-3] + (k * f, z.shape[-1]))
        if self.use_cross_attention:
            query = _mean_query(h).astype(self.dtype)  # (..., K, Bn)
            return self.attention(query, frames)
        # Ablation: every condition gets the same mean-pooled vector over all K*F frames.
        pooled = jnp.mean(frames.astype(jnp.float32), axis=-2, keepdims=True)
        c = self.mean_pool_proj(pooled.astype(self.dtype)).astype(jnp.float32)
        c = jnp.broadcast_to(c, z.shape[:-3] + (k, self.speaker_dim))
        return c, jnp.zeros(z.shape[:-3] + (k, 1, 1), jnp.float32)

    def separate(
        self, features: jnp.ndarray, h: jnp.ndarray, c: jnp.ndarray, num_samples: int
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Extract the target conditioned on its global speaker vector.

        Args:
          features: (..., F, N) encoder features of the mixture.
          h: (..., F, Bn) bottom-up embedding of the mixture.
          c: (..., D) global speaker vector of the target.
          num_samples: T.

        Returns:
          (estimate (..., T) float32, target-frame weights (..., F) float32 in [0, 1]).
        """
        gamma, beta = jnp.split(self.film(c.astype(self.dtype)), 2, axis=-1)
        y = h * (1 + gamma[..., None, :]) + beta[..., None, :]
        y = y + self.extraction_tcn(y)
        mask = nn.sigmoid(self.mask_out(self.mask_act(y)))
        masked = mask * features
        estimate = self.decoder(masked, num_samples).astype(jnp.float32)
        energy = jnp.sum(features.astype(jnp.float32), axis=-1)
        weights = jnp.sum(masked.astype(jnp.float32), axis=-1) / (energy + 1e-6)
        return estimate, weights

    # ------------------------------------------------------------------ entry points
    def __call__(self, mixtures: jnp.ndarray, separate: bool = True) -> dict[str, jnp.ndarray]:
        """Training forward pass.

        Args:
          mixtures: (B, K, T) the same target under K interfering conditions.
          separate: also run the extraction head (False for the SimCLR baseline).

        Returns:
          dict with 'global' (B, K, D), 'frames' z (B, K, F, D), 'attention' weights, and when
          ``separate``: 'estimate' (B, K, T) and 'target_weights' (B, K, F); float32.
        """
        num_samples = mixtures.shape[-1]
        features, h, z = self.bottom_up(mixtures)
        c, attn = self.global_vector(h, z)
        out = {"global": c, "frames": z.astype(jnp.float32), "attention": attn}
        if separate:
            out["estimate"], out["target_weights"] = self.separate(features, h, c, num_samples)
        return out

    def embed(self, x: jnp.ndarray) -> jnp.ndarray:
        """Speaker embedding of single utterances: the K=1 global vector, L2-normalised.

        Args:
          x: (B, T) waveforms.

        Returns:
          (B, D) float32 unit vectors.
        """
        _, h, z = self.bottom_up(x[:, None, :])
        c, _ = self.global_vector(h, z)
        return _l2_normalise(c[:, 0])

    def extract(self, mixture: jnp.ndarray, enrollment_vector: jnp.ndarray) -> jnp.ndarray:
        """Target-speaker extraction conditioned on an enrollment's global vector.

        Args:
          mixture: (B, T) waveforms.
          enrollment_vector: (B, D) global vectors (from :meth:`global_vectors`).

        Returns:
          (B, T) float32 estimates of the enrolled speaker's signal.
        """
        features, h, _ = self.bottom_up(mixture)
        estimate, _ = self.separate(features, h, enrollment_vector, mixture.shape[-1])
        return estimate

    def global_vectors(self, x: jnp.ndarray) -> jnp.ndarray:
        """Unnormalised K=1 global vectors of single utterances: (B, T) -> (B, D) float32."""
        _, h, z = self.bottom_up(x[:, None, :])
        c, _ = self.global_vector(h, z)
        return c[:, 0]


def _mean_query(h: jnp.ndarray) -> jnp.ndarray:
    """Cross-attention query of each condition: (..., F, Bn) -> (..., Bn) float32 mean over F."""
    return jnp.mean(h.astype(jnp.float32), axis=-2)


def _l2_normalise(x: jnp.ndarray) -> jnp.ndarray:
    x = x.astype(jnp.float32)
    return x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + 1e-12)


def model_from_config(config) -> CSCModel:
    """Build a CSCModel from the experiment config (``config.model`` and ``config.dtype``)."""
    m = config.model
    dtype = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[config.dtype]
    return CSCModel(
        enc_filters=m.enc_filters,
        enc_kernel=m.enc_kernel,
        bottleneck=m.bottleneck,
        hidden=m.hidden,
        conv_kernel=m.conv_kernel,
        blocks=m.blocks,
        repeats=m.repeats,
        extraction_blocks=m.extraction_blocks,
        speaker_dim=m.speaker_dim,
        attention_heads=m.attention_heads,
        attention_dim=m.attention_dim,
        use_cross_attention=m.use_cross_attention,
        identity_init=m.identity_init,
        remat=m.remat,
        remat_policy=m.remat_policy,
        dtype=dtype,
    )
