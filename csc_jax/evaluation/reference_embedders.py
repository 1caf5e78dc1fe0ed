"""Hand-crafted speaker embedders: the references the trained model is compared with.

* :class:`LogMelEmbedder`: mean and standard deviation of 40 log-mel bands, centred with
  training-set statistics (never test statistics), cosine scored;
* :class:`MfccStatsEmbedder`: mean log-mel + MFCC standard deviation over voiced frames, CMN,
  z-scored with training-set statistics, cosine scored.

Both are numpy (no JAX). The trained model is run by ``csc_jax.inference.batched.BatchedModel``.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
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


class MfccStatsEmbedder:
    """MFCC statistics: a strong hand-crafted speaker reference, cosine scored.

    Per utterance (25 ms Hamming frames, 10 ms hop, power spectrum, 40 mel bands):

    * frames whose energy is more than ``floor_db`` below the utterance's loudest frame are
      dropped (silence and low-energy tails carry no voice);
    * MFCC = orthonormal DCT-II of the log-mel frames, coefficients 1..``n_mfcc`` (c0, the
      level, is left out), with cepstral mean normalisation over the kept frames;
    * the embedding is ``mean(log-mel) ++ std(MFCC)`` over the kept frames (40 + n_mfcc);
    * each dimension is z-scored with the mean and standard deviation of a reference set of
      training utterances (corpus statistics, never test statistics).

    Args:
      sample_rate: audio rate in Hz (the statistics are computed at that rate).
      reference: (N, T) training waveforms for the z-scoring, or None (no z-scoring).
      n_mels, n_mfcc, floor_db: see above.
    """

    def __init__(
        self,
        sample_rate: int,
        reference: np.ndarray | None = None,
        n_mels: int = 40,
        n_mfcc: int = 19,
        floor_db: float = 30.0,
    ):
        self.sample_rate = int(sample_rate)
        self.win = int(round(0.025 * sample_rate))
        self.hop = int(round(0.010 * sample_rate))
        self.n_fft = int(2 ** np.ceil(np.log2(self.win)))
        self.fb = mel_filterbank(self.sample_rate, self.n_fft, n_mels)
        self.window = np.hamming(self.win)
        self.n_mfcc, self.floor_db = n_mfcc, floor_db
        self.mean = self.scale = None
        if reference is not None:
            stats = self.stats(reference)
            self.mean = stats.mean(axis=0)
            self.scale = stats.std(axis=0) + 1e-8

    def stats(self, x: np.ndarray, chunk: int = 64) -> np.ndarray:
        """(N, T) waveforms -> (N, n_mels + n_mfcc) float64 statistics (before z-scoring)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] < self.win:
            raise ValueError(f"expected (N, T >= {self.win}) waveforms, got {x.shape}")
        return np.concatenate([self._stats(x[i : i + chunk]) for i in range(0, len(x), chunk)])

    def _stats(self, x: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(x, self.win, axis=-1)[:, :: self.hop]
        spec = np.fft.rfft(frames * self.window, n=self.n_fft, axis=-1)
        power = spec.real**2 + spec.imag**2  # (N, F, bins)
        logmel = np.log(power @ self.fb + 1e-10)  # (N, F, n_mels)
        energy = 10.0 * np.log10(power.sum(axis=-1) + 1e-10)  # (N, F)
        keep = energy >= energy.max(axis=-1, keepdims=True) - self.floor_db
        count = keep.sum(axis=-1, keepdims=True)  # >= 1: the loudest frame is always kept
        mfcc = scipy.fft.dct(logmel, type=2, norm="ortho", axis=-1)[..., 1 : 1 + self.n_mfcc]
        w = keep[..., None].astype(np.float64)
        mean_logmel = (logmel * w).sum(axis=1) / count
        mfcc = mfcc - (mfcc * w).sum(axis=1, keepdims=True) / count[..., None]  # CMN
        std_mfcc = np.sqrt((mfcc**2 * w).sum(axis=1) / count)
        return np.concatenate([mean_logmel, std_mfcc], axis=-1)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """(N, T) -> (N, n_mels + n_mfcc) unit-norm float32."""
        e = self.stats(x)
        if self.mean is not None:
            e = (e - self.mean) / self.scale
        return (e / (np.linalg.norm(e, axis=-1, keepdims=True) + 1e-12)).astype(np.float32)
