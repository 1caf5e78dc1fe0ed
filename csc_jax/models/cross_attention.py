"""Cross-attention over speaker representations taken under several interfering conditions.

The math is :func:`csc_jax.losses.cross_attention_pool` (pure, reusable); this module only
owns the projections.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from csc_jax import losses


class CrossAttention(nn.Module):
    """Global speaker vector from a query and the frames of all K conditions of one target.

    Attributes:
      heads: number of attention heads.
      head_dim: per-head key/value width (``attention_dim // heads``).
      out_dim: width D of the global speaker vector.
    """

    heads: int
    head_dim: int
    out_dim: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self, query: jnp.ndarray, frames: jnp.ndarray, mask: jnp.ndarray | None = None
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Attend from one query per condition to every frame of every condition.

        Args:
          query: (..., Q, Cq) queries (Q = conditions asking, usually K).
          frames: (..., S, D) speaker frames of all conditions flattened (S = K * F).
          mask: (..., S) bool, True = valid frame; None = all valid.

        Returns:
          (global vectors (..., Q, out_dim) float32, attention weights (..., Q, heads, S)).
        """
        h, d = self.heads, self.head_dim
        # Pre-LN: the trunk's sum of skips has a large, input-dependent scale; unnormalised it
        # made the softmax put ~60% of the weight on one of 500 frames at initialisation and
        # neither CSC nor SimCLR learned (docs/method.md, deviation log).
        query = nn.LayerNorm(dtype=self.dtype, name="query_norm")(query)
        frames = nn.LayerNorm(dtype=self.dtype, name="frames_norm")(frames)
        q = nn.DenseGeneral((h, d), dtype=self.dtype, name="query")(query)  # (..., Q, H, d)
        k = nn.DenseGeneral((h, d), dtype=self.dtype, name="key")(frames)  # (..., S, H, d)
        v = nn.DenseGeneral((h, d), dtype=self.dtype, name="value")(frames)
        # Broadcast keys/values over the query axis: every query sees the same S frames.
        lead = q.shape[:-2]
        k = jnp.broadcast_to(k[..., None, :, :, :], lead + k.shape[-3:])
        v = jnp.broadcast_to(v[..., None, :, :, :], lead + v.shape[-3:])
        m = None if mask is None else jnp.broadcast_to(mask[..., None, :], lead + mask.shape[-1:])
        pooled, weights = losses.cross_attention_pool(q, k, v, m)  # (..., Q, H, d)
        out = nn.DenseGeneral(self.out_dim, axis=(-2, -1), dtype=self.dtype, name="out")(
            pooled.astype(self.dtype)
        )
        return out.astype(jnp.float32), weights
