"""Random-access audio sources: the embedded synthetic corpus, audio folders, and tfds datasets.

One module per job:

* :mod:`~csc_jax.data.sources.base`: the `AudioSource` interface (the data contract), the
  checks every source shares, and `make_source` (config -> source);
* :mod:`~csc_jax.data.sources.synthetic`: `SyntheticSource` over the embedded corpus;
* :mod:`~csc_jax.data.sources.folder`: `FolderSource` (VoxCeleb / LibriSpeech folder trees)
  and its per-file index cache, which checks every file before training starts;
* :mod:`~csc_jax.data.sources.mixed`: `MixedSource` (weighted training corpora);
* :mod:`~csc_jax.data.sources.tfds`: `TfdsSource` (prepared tfds datasets, ArrayRecord);
* :mod:`~csc_jax.data.sources.tfds_compat`: reading tfds audio without TensorFlow.

Decoding, downmixing and resampling live in :mod:`csc_jax.audio_io`; errors in
:mod:`csc_jax.errors` (re-exported here for callers that catch them by this module).
"""

from csc_jax.data.sources.base import (
    MIN_SPEAKERS,
    SOURCE_NAMES,
    AudioSource,
    make_source,
    split_source_kind,
)
from csc_jax.data.sources.folder import AUDIO_EXTENSIONS, INDEX_FILENAME, FolderSource
from csc_jax.data.sources.mixed import MixedSource
from csc_jax.data.sources.synthetic import SyntheticSource
from csc_jax.data.sources.tfds import TfdsSource
from csc_jax.errors import BadAudioFileError, DataError, UnknownKeyError

__all__ = [
    "AUDIO_EXTENSIONS",
    "INDEX_FILENAME",
    "MIN_SPEAKERS",
    "SOURCE_NAMES",
    "AudioSource",
    "BadAudioFileError",
    "DataError",
    "FolderSource",
    "MixedSource",
    "SyntheticSource",
    "TfdsSource",
    "UnknownKeyError",
    "make_source",
    "split_source_kind",
]
