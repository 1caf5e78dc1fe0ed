"""Reading tfds audio datasets without TensorFlow: one narrow patch of tensorflow_datasets.

tfds 4.9.x calls ``tf.dtypes.as_dtype`` in the Audio decoder's constructor, so merely opening
a dataset with a ``tfds.features.Audio`` feature (e.g. LibriSpeech) imports TensorFlow
(tensorflow/datasets#11233), although eager-decoded audio is stored as a plain int tensor and
read with numpy. :func:`allow_audio_without_tensorflow` replaces only that constructor, and
only when TensorFlow cannot be imported; lazily decoded audio still needs TensorFlow and
fails inside tfds.
"""

from __future__ import annotations

import importlib.util

import numpy as np


def allow_audio_without_tensorflow() -> None:
    """Patch tfds's eager Audio decoder to need numpy only (idempotent; no-op with TensorFlow).

    Call it in every process that opens the dataset (grain workers included).
    """
    if importlib.util.find_spec("tensorflow") is not None:
        return
    from tensorflow_datasets.core.features import audio_feature

    decoder = getattr(audio_feature, "_EagerDecoder", None)
    if decoder is None or getattr(decoder, "_csc_numpy_init", False):
        return

    def __init__(self, file_format, np_dtype, shape):
        self._file_format = file_format
        self._np_dtype = np_dtype
        self._dtype = np.dtype(np_dtype)
        self._shape = shape
        self._channels = shape[1] if len(shape) > 1 else 1

    decoder.__init__ = __init__
    decoder._csc_numpy_init = True
