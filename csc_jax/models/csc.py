"""The CSC model: multi-task separative encoder, speaker branch, cross-attention, extraction head.

Shapes (B targets, K interfering conditions, T samples, F frames, N encoder filters,
Bn bottleneck, D speaker dim):

  mixtures (B, K, T)
    -> front end                  E  (B, K, F, M)    non-negative features to be masked
       'waveform': learned filterbank (M = N encoder filters, hop L/2)
       'stft':     |STFT| (M = window/2 + 1 bins), trunk input log power (models/stft.py)
    -> SeparatorTrunk             h  (B, K, F, Bn)   bottom-up embedding (shared, multi-task)
    -> speaker branch             z  (B, K, F, D)    frame-level speaker representations
    -> CrossAttention(query = mean_t h[b,k], frames = z[b, all k, all t])
                                  c  (B, K, D)       global speaker vector per condition
    -> FiLM(h, c) -> TCN blocks -> sigmoid mask M (B, K, F, M)
    -> 'waveform': WaveformDecoder(M * E); 'stft': inverse STFT of M * STFT(x) (mixture phase)
                                  s_hat (B, K, T)    extracted target
  target-frame weights w[b,k,t] = sum_m M E / sum_m E   (share of front-end energy on the target)

All methods are pure functions of (params, inputs) through ``model.apply``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from csc_jax.models import stft
from csc_jax.models.cross_attention import CrossAttention
from csc_jax.models.encoder import WaveformDecoder, WaveformEncoder, frame
from csc_jax.models.separator import TCN, SeparatorTrunk


class CSCModel(nn.Module):
    """Multi-task separative encoder with cross-attention over interfering conditions."""

    # 'waveform' (learned filterbank and overlap-add decoder, Conv-TasNet style) or 'stft'
    # (time-frequency: log-power STFT features in, magnitude mask with the mixture's phase
    # out); docs/method.md "Front ends".
    frontend: str = "waveform"
    stft_window: int = 320
    stft_hop: int = 160
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
        if self.frontend not in ("waveform", "stft"):
            raise ValueError(f"model.frontend must be 'waveform' or 'stft', got {self.frontend!r}")
        if self.frontend == "waveform":
            self.encoder = WaveformEncoder(
                self.enc_filters,
                self.enc_kernel,
                dtype=self.dtype,
                identity_init=self.identity_init,
            )
            self.decoder = WaveformDecoder(
                self.enc_kernel, dtype=self.dtype, identity_init=self.identity_init
            )
            mask_size = self.enc_filters
        else:
            stft.check_window(self.stft_window, self.stft_hop)
            # Without a normalisation in front of it, the mask layer's input grows until the
            # sigmoid saturates at 1 and the mask stops learning (measured: within 100 steps).
            self.mask_norm = nn.LayerNorm(dtype=self.dtype)
            mask_size = stft.num_bins(self.stft_window)
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
        # The STFT is already a perfect-reconstruction pair, so its mask starts at 0.5
        # everywhere too: the untrained extractor returns the (scaled) mixture.
        identity = self.identity_init or self.frontend == "stft"
        zero = nn.initializers.zeros if identity else nn.linear.default_kernel_init
        self.mask_out = nn.Dense(mask_size, dtype=self.dtype, kernel_init=zero)

    # ------------------------------------------------------------------ pieces
    def analyse(self, x: jnp.ndarray) -> dict[str, jnp.ndarray]:
        """The front end: (..., T) waveform -> dict with 'features' E (..., F, M) (what the
        mask multiplies; non-negative), 'trunk_input' (..., F, M) and, for 'stft', 'spec'
        (..., F, M) complex64."""
        if self.frontend == "waveform":
            features = self.encoder(x)
            return {"features": features, "trunk_input": features}
        spec = stft.stft(x, self.stft_window, self.stft_hop)
        return {
            "features": jnp.abs(spec),
            "trunk_input": stft.log_power(spec, x).astype(self.dtype),
            "spec": spec,
        }

    def synthesise(self, mask: jnp.ndarray, analysis: dict, num_samples: int) -> jnp.ndarray:
        """Masked front-end features back to a waveform: (..., F, M) mask -> (..., T) float32."""
        if self.frontend == "waveform":
            return self.decoder(mask * analysis["features"], num_samples).astype(jnp.float32)
        masked = mask.astype(jnp.float32) * analysis["spec"]
        return stft.istft(masked, self.stft_window, self.stft_hop, num_samples)

    def bottom_up(self, x: jnp.ndarray) -> tuple[dict, jnp.ndarray, jnp.ndarray]:
        """(..., T) waveform -> (front-end analysis (:meth:`analyse`), h (..., F, Bn),
        z (..., F, D))."""
        analysis = self.analyse(x)
        h = self.trunk(analysis["trunk_input"])
        z = self.speaker_out(self.speaker_act(self.speaker_hidden(h)))
        return analysis, h, z

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
        self, analysis: dict, h: jnp.ndarray, c: jnp.ndarray, num_samples: int
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Extract the target conditioned on its global speaker vector.

        Args:
          analysis: the mixture's front-end analysis (:meth:`analyse`).
          h: (..., F, Bn) bottom-up embedding of the mixture.
          c: (..., D) global speaker vector of the target.
          num_samples: T.

        Returns:
          (estimate (..., T) float32, target-frame weights (..., F) float32 in [0, 1]).
        """
        gamma, beta = jnp.split(self.film(c.astype(self.dtype)), 2, axis=-1)
        y = h * (1 + gamma[..., None, :]) + beta[..., None, :]
        y = y + self.extraction_tcn(y)
        if self.frontend == "stft":
            y = self.mask_norm(y)
        mask = nn.sigmoid(self.mask_out(self.mask_act(y)))
        estimate = self.synthesise(mask, analysis, num_samples)
        features = analysis["features"].astype(jnp.float32)
        energy = jnp.sum(features, axis=-1)
        weights = jnp.sum(mask.astype(jnp.float32) * features, axis=-1) / (energy + 1e-6)
        return estimate, weights

    # ------------------------------------------------------------------ entry points
    def __call__(
        self,
        mixtures: jnp.ndarray,
        separate: bool = True,
        condition: jnp.ndarray | None = None,
    ) -> dict[str, jnp.ndarray]:
        """Training forward pass.

        Args:
          mixtures: (B, K, T) the same target under K interfering conditions.
          separate: also run the extraction head (False for the SimCLR baseline).
          condition: (B, K, D) vectors to condition the extraction of each mixture on instead
            of its global vector 'global' (``loss.extraction_condition='enrollment'``); None
            = the global vector.

        Returns:
          dict with 'global' (B, K, D), 'frames' z (B, K, F, D), 'attention' weights, and when
          ``separate``: 'estimate' (B, K, T) and 'target_weights' (B, K, F); float32.
        """
        num_samples = mixtures.shape[-1]
        analysis, h, z = self.bottom_up(mixtures)
        c, attn = self.global_vector(h, z)
        out = {"global": c, "frames": z.astype(jnp.float32), "attention": attn}
        if separate:
            cond = c if condition is None else condition
            out["estimate"], out["target_weights"] = self.separate(analysis, h, cond, num_samples)
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
        analysis, h, _ = self.bottom_up(mixture)
        estimate, _ = self.separate(analysis, h, enrollment_vector, mixture.shape[-1])
        return estimate

    def global_vectors(self, x: jnp.ndarray) -> jnp.ndarray:
        """Unnormalised K=1 global vectors of single utterances: (B, T) -> (B, D) float32."""
        _, h, z = self.bottom_up(x[:, None, :])
        c, _ = self.global_vector(h, z)
        return c[:, 0]

    # ------------------------------------------------------------------ enrollment-queried
    # scoring ('csc+query', docs/method.md "Verification embedding"): the test side's vector is
    # the cross-attention over the TEST utterance's frames with the ENROLLMENT's query. The
    # pieces mirror :meth:`global_vectors` op for op (K = 1 axis included), so that
    # ``attend(*query_and_frames(x))`` is the same computation as ``global_vectors(x)``.
    def _require_attention(self, what: str) -> None:
        if not self.use_cross_attention:
            raise ValueError(
                f"CSCModel.{what} needs the cross-attention (model.use_cross_attention=True); "
                "a mean-pooling model has no query"
            )

    def query_and_frames(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The cross-attention's inputs of single utterances, before attending.

        Args:
          x: (B, T) waveforms.

        Returns:
          (query (B, Bn) float32: the time-mean of the bottom-up embedding h, before W_q;
          frames z (B, F, D) in the model's compute dtype: frame-level speaker representations).
        """
        self._require_attention("query_and_frames")
        _, h, z = self.bottom_up(x[:, None, :])
        return _mean_query(h)[:, 0], z[:, 0]

    def attend(self, query: jnp.ndarray, frames: jnp.ndarray) -> jnp.ndarray:
        """Unnormalised global vectors of ``frames`` seen from ``query`` (the module's own
        cross-attention: the same LayerNorms and W_q, W_k, W_v, W_o as :meth:`global_vector`).

        Args:
          query: (B, Bn) one query per utterance, or (B, Q, Bn) Q queries per utterance
            (as :meth:`query_and_frames` returns them, float32).
          frames: (B, F, D) speaker frames of one utterance each.

        Returns:
          (B, D) float32 for a (B, Bn) query, (B, Q, D) float32 for (B, Q, Bn) queries.
        """
        self._require_attention("attend")
        single = query.ndim == frames.ndim - 1
        if single:
            query = query[..., None, :]  # the K = 1 query axis of global_vector
        if query.shape[:-2] != frames.shape[:-2]:
            raise ValueError(
                f"CSCModel.attend: query {query.shape} and frames {frames.shape} must share "
                "their leading (batch) axes"
            )
        c, _ = self.attention(query.astype(self.dtype), frames)
        return c[..., 0, :] if single else c

    def embed_and_query(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Enrollment side of 'csc+query' in one pass: (B, T) -> (embedding (B, D) float32 unit
        vectors as :meth:`embed`, query (B, Bn) float32 as :meth:`query_and_frames`)."""
        query, z = self.query_and_frames(x)
        return _l2_normalise(self.attend(query, z)), query

    def embed_and_attend(
        self, x: jnp.ndarray, queries: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Test side of 'csc+query' in one pass over the trunk.

        Args:
          x: (B, T) test waveforms.
          queries: (B, Q, Bn) float32 queries (enrollments' :meth:`query_and_frames` queries)
            to attend each utterance's frames with; padding queries are computed and ignored.

        Returns:
          (embedding (B, D) float32 unit vectors, the utterance's own as :meth:`embed`;
          queried vectors (B, Q, D) float32, unnormalised).
        """
        query, z = self.query_and_frames(x)
        return _l2_normalise(self.attend(query, z)), self.attend(queries, z)


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
        frontend=m.frontend,
        stft_window=m.stft_window,
        stft_hop=m.stft_hop,
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


def frame_energy(x: jnp.ndarray, config) -> jnp.ndarray:
    """Energy of each front-end frame: (..., T) -> (..., F) float32, framed as the model's
    front end frames its input (F matches the model's frame-level outputs)."""
    m = config.model
    if m.frontend == "stft":
        return stft.frame_energy(x, m.stft_window, m.stft_hop)
    frames = frame(x.astype(jnp.float32), m.enc_kernel)
    return jnp.sum(jnp.square(frames), axis=-1)
