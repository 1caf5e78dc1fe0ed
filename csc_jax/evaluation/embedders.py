"""The hand-crafted speaker embedder of the verification protocol.

* :class:`LogMelEmbedder`: the reference system, mean and standard deviation of 40 log-mel
  bands, centred with training-set statistics (never test statistics), cosine scored.

The trained model is run by ``csc_jax.inference.batched.BatchedModel`` (the jitted wrapper
inference uses too): ``embed`` gives the K=1 global speaker vector (L2-normalised),
``extract`` the target stream conditioned on an enrollment vector.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.signal


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular HTK-mel filterbank."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    inv = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = inv(np.linspace(mel(20.0), mel(sample_rate / 2.0), n_mels + 2))
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    fb = np.zeros((freqs.size, n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        fb[:, m] = np.clip(
            np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None
        )
    return fb


class LogMelEmbedder:
    """Log-mel statistics (mean ++ std over frames of 40 bands, 25 ms / 10 ms) + cosine.

    Args:
      sample_rate: audio rate.
      reference: (N, T) training waveforms whose mean embedding is subtracted (centring).
    """

    def __init__(self, sample_rate: int, reference: np.ndarray | None = None, n_mels: int = 40):
        self.sample_rate = sample_rate
        self.n_fft = int(2 ** np.ceil(np.log2(0.025 * sample_rate)))
        self.win = int(0.025 * sample_rate)
        self.hop = int(0.010 * sample_rate)
        self.fb = mel_filterbank(sample_rate, self.n_fft, n_mels)
        self.center = None
        if reference is not None:
            self.center = self._stats(reference).mean(axis=0)

    def _stats(self, x: np.ndarray) -> np.ndarray:
        _, _, spec = scipy.signal.stft(
            x, nperseg=self.win, noverlap=self.win - self.hop, nfft=self.n_fft, axis=-1
        )
        power = np.abs(spec) ** 2  # (N, freq, frames)
        logmel = np.log(np.einsum("nft,fm->ntm", power, self.fb) + 1e-8)
        return np.concatenate([logmel.mean(axis=1), logmel.std(axis=1)], axis=-1)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """(N, T) -> (N, 2 * n_mels) unit-norm float32."""
        e = self._stats(np.asarray(x, np.float64))
        if self.center is not None:
            e = e - self.center
        return (e / (np.linalg.norm(e, axis=-1, keepdims=True) + 1e-12)).astype(np.float32)
