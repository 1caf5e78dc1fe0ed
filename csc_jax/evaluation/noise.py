"""Recorded noise for the evaluation's noise conditions (``config.data.folder.noise_root``).

A folder of noise recordings (MUSAN's ``noise/``, DEMAND, or any audio files in any layout) is
listed once, sorted by path, so that a trial's noise depends only on the folder's contents and
the trial's seed. Each trial draws a file and an offset from its own generator; files are
decoded, downmixed and resampled on first use (``audio_io.read_audio``) and kept in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from csc_jax import audio_io
from csc_jax.errors import BadAudioFileError, DataError

NOISE_EXTENSIONS = (".wav", ".flac", ".ogg")


class NoiseFolder:
    """Noise recordings under ``root`` (recursive), served at ``sample_rate``.

    Args:
      root: folder holding ``.wav`` / ``.flac`` / ``.ogg`` files (any rate, any channels).
      sample_rate: rate of the returned segments, Hz.

    Raises:
      DataError: ``root`` is not a folder, or holds no audio file (the message names the
        key and the path).
    """

    def __init__(self, root: str | os.PathLike, sample_rate: int):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"data.folder.noise_root={str(root)!r}: not a folder")
        self.files = sorted(
            str(p)
            for p in self.root.rglob("*")
            if p.suffix.lower() in NOISE_EXTENSIONS and p.is_file()
        )
        if not self.files:
            raise DataError(
                f"data.folder.noise_root={str(root)!r}: no {'/'.join(NOISE_EXTENSIONS)} files"
            )
        self.sample_rate = int(sample_rate)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, i: int) -> np.ndarray:
        if i not in self._cache:
            x = audio_io.read_audio(self.files[i], self.sample_rate)
            if not np.any(x):
                raise BadAudioFileError(self.files[i], "is all zeros: it cannot be set to an SNR")
            self._cache[i] = x
        return self._cache[i]

    def sample(self, rng: np.random.Generator, length: int) -> np.ndarray:
        """A ``(length,)`` float32 segment: random file, random offset; files shorter than
        ``length`` are repeated (wrap-padded)."""
        i = int(rng.integers(len(self.files)))
        x = self._load(i)
        if x.shape[0] <= length:
            return np.resize(x, length).astype(np.float32)
        start = int(rng.integers(x.shape[0] - length + 1))
        return x[start : start + length].astype(np.float32)

    def describe(self) -> str:
        return f"{len(self.files)} recordings under {self.root}"
