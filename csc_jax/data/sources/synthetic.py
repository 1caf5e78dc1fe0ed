"""`SyntheticSource`: the embedded procedural corpus (csc_jax.data.synthetic) as an AudioSource."""

from __future__ import annotations

from typing import Any

import numpy as np

from csc_jax.audio_io import check_finite
from csc_jax.data.sources.base import AudioSource
from csc_jax.errors import BadAudioFileError


class SyntheticSource(AudioSource):
    """Wraps an in-memory `synthetic.Corpus` (any object with its four fields).

    Only the fields are kept (not the corpus object) so pickling to grain workers needs nothing
    but numpy. Every waveform must be float32 (num_samples,) and finite (checked here, once).
    """

    def __init__(self, corpus: Any):
        self.sample_rate = int(corpus.sample_rate)
        self.keys = list(corpus.keys)
        self.speakers = list(corpus.speakers)
        self._waveforms = list(corpus.waveforms)
        if len(self._waveforms) != len(self.keys):
            raise ValueError(
                f"synthetic corpus: {len(self._waveforms)} waveforms but {len(self.keys)} keys"
            )
        for key, w in zip(self.keys, self._waveforms, strict=True):
            if not isinstance(w, np.ndarray) or w.ndim != 1 or w.dtype != np.float32:
                raise BadAudioFileError(
                    key,
                    "synthetic waveform must be float32 (num_samples,), got "
                    f"{getattr(w, 'dtype', type(w))} {getattr(w, 'shape', '')}",
                )
            check_finite(w, key)
        # Read-only views: callers get the stored arrays without a copy and cannot corrupt them.
        self._waveforms = [w.view() for w in self._waveforms]
        for w in self._waveforms:
            w.flags.writeable = False
        self.num_samples = np.asarray([w.shape[0] for w in self._waveforms], dtype=np.int64)
        self._finish_init(
            f"synthetic corpus @ {self.sample_rate} Hz",
            hint="raise config.data.synthetic.num_train_speakers / num_test_speakers",
        )

    def _load(self, i: int) -> np.ndarray:
        return self._waveforms[i]
