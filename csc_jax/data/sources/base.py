"""The `AudioSource` interface, the checks every source shares, and `make_source`.

Every source implements the data contract of docs/architecture.md:

* ``len(source)``; ``source[i] -> np.ndarray float32 (num_samples[i],)``, mono at
  ``source.sample_rate``;
* ``source.keys: list[str]`` trial-list keys, paths relative to the corpus root with ``/``
  separators (``id10270/x6uYqmx31kE/00001.wav``);
* ``source.speakers: list[str]`` one label per utterance (evaluation only: training is
  self-supervised and never reads them);
* ``source.num_samples: np.ndarray int64 (len(source),)`` length of each utterance at
  ``source.sample_rate``, known without decoding the audio;
* ``source.index_of(key) -> int``; ``source.read_segment(i, start, stop)`` which reads only
  ``[start, stop)`` where the backend can (folder files already at the model rate).

Sources are picklable so grain worker processes can receive them. Problems with the user's
data raise :class:`~csc_jax.errors.DataError` subclasses with a one-line message.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from csc_jax.errors import BadAudioFileError, ConfigError, DataError, UnknownKeyError

# Verification needs different-speaker trials and interferer mixing needs another voice.
MIN_SPEAKERS = 2
SOURCE_NAMES = ("synthetic", "folder", "tfds", "mixed")
_SPEAKERS_SHOWN = 5


class AudioSource:
    """Random-access mono audio at `sample_rate`; subclasses fill the attributes and `_load`.

    Attributes:
      sample_rate: model sample rate in Hz; every returned waveform is at this rate.
      keys: trial-list key of each utterance, unique.
      speakers: speaker label of each utterance.
      num_samples: int64 (len,) utterance lengths at `sample_rate`, all >= 1.
    """

    sample_rate: int
    keys: list[str]
    speakers: list[str]
    num_samples: np.ndarray

    def _finish_init(self, description: str, hint: str = "") -> None:
        """Validates the index and builds the key lookup.

        Args:
          description: names the corpus in messages ('folder /data/vox1_test').
          hint: what to do about too few speakers (appended to that DataError).
        """
        self._description = description
        n = len(self.keys)
        if n == 0:
            raise DataError(f"{description}: no utterances")
        if len(self.speakers) != n or self.num_samples.shape != (n,):
            raise ValueError(
                f"{description}: {n} keys but {len(self.speakers)} speakers and "
                f"num_samples of shape {self.num_samples.shape}"
            )
        self._key_to_index = {key: i for i, key in enumerate(self.keys)}
        if len(self._key_to_index) != n:
            seen: set[str] = set()
            dup = next(k for k in self.keys if k in seen or seen.add(k))
            raise DataError(f"{description}: duplicate key {dup!r}")
        if (self.num_samples < 1).any():
            i = int(np.argmin(self.num_samples))
            raise BadAudioFileError(self.keys[i], f"empty at {self.sample_rate} Hz ({description})")
        distinct = sorted(set(self.speakers))
        if len(distinct) < MIN_SPEAKERS:
            shown = ", ".join(repr(s) for s in distinct[:_SPEAKERS_SHOWN])
            raise DataError(
                f"{description}: found {len(distinct)} speaker(s) ({shown}); speaker "
                f"verification and interferer mixing need at least {MIN_SPEAKERS}"
                + (f"; {hint}" if hint else "")
            )

    def __len__(self) -> int:
        return len(self.keys)

    def _check_index(self, index: int) -> int:
        i = operator.index(index)
        n = len(self.keys)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {self._description} ({n} utterances)")
        return i

    def __getitem__(self, index: int) -> np.ndarray:
        """Returns float32 (num_samples[index],) mono audio at `sample_rate`."""
        return self._load(self._check_index(index))

    def read_segment(self, index: int, start: int, stop: int) -> np.ndarray:
        """Returns float32 (stop - start,) samples [start, stop) of utterance `index`."""
        i = self._check_index(index)
        if not 0 <= start <= stop <= int(self.num_samples[i]):
            raise ValueError(
                f"segment [{start}, {stop}) outside {self.keys[i]!r} "
                f"({int(self.num_samples[i])} samples)"
            )
        return self._load_segment(i, start, stop)

    def index_of(self, key: str) -> int:
        """Position of trial-list `key`; raises UnknownKeyError naming the key."""
        try:
            return self._key_to_index[key]
        except KeyError:
            raise UnknownKeyError(
                f"key {key!r} not found in {self._description} ({len(self.keys)} utterances; "
                f"keys look like {self.keys[0]!r})"
            ) from None

    def _load(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def _load_segment(self, i: int, start: int, stop: int) -> np.ndarray:
        return self._load(i)[start:stop]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._description}: {len(self)} utterances, "
            f"{len(set(self.speakers))} speakers, {self.sample_rate} Hz)"
        )


def split_source_kind(config: Any, split: str) -> str:
    """The source kind that serves `split`: ``data.source``, except that a 'mixed' config
    validates and tests on ``data.mixed.primary`` (only training is mixed)."""
    data = config.data
    if data.source == "mixed" and split != "train":
        return data.mixed.primary
    return data.source


def _with_source(config: Any, kind: str) -> Any:
    c = config.copy_and_resolve_references()
    c.data.source = kind
    return c


def make_source(config: Any, split: str) -> AudioSource:
    """The `split` ('train', 'test' or 'val') source chosen by ``config.data.source``.

    Builds (and so checks) the whole index: for a folder every file is validated here, before
    the caller compiles anything.

    Args:
      config: the whole experiment ConfigDict (reads ``config.data``).
      split: 'train', 'test' or 'val' (validation speakers: the synthetic corpus's own
        split, ``data.folder.val_root`` or ``data.tfds.val_split``). 'mixed' trains on the
        weighted corpora of ``data.mixed.train`` (a MixedSource) and validates and tests on
        ``data.mixed.primary``.

    Raises:
      ConfigError: no folder configured for `split`, or an unknown ``config.data.source``.
      DataError: unusable data (the message names the file, folder or key and the fix).
    """
    # Imported here: each backend module imports this one for AudioSource.
    from csc_jax.data.sources.folder import FolderSource
    from csc_jax.data.sources.synthetic import SyntheticSource
    from csc_jax.data.sources.tfds import TfdsSource

    data = config.data
    kind = data.source
    if split not in ("train", "test", "val"):
        raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")
    cache_dir = data.get("cache_dir") or None
    if kind == "mixed":
        from csc_jax.config.schema import parse_source_weights
        from csc_jax.data.sources.mixed import MixedSource

        if split != "train":
            return make_source(_with_source(config, split_source_kind(config, split)), split)
        components = [
            (name, make_source(_with_source(config, name), "train"), weight)
            for name, weight in parse_source_weights(data.mixed.train)
        ]
        return MixedSource(components)
    if kind == "synthetic":
        from csc_jax.data import synthetic

        corpus = synthetic.load_or_generate(data.synthetic, split, data.sample_rate, data.cache_dir)
        return SyntheticSource(corpus)
    if kind == "folder":
        field = f"{split}_root"
        root = data.folder.get(field, "")
        if not root:
            raise ConfigError(
                f"config.data.source='folder' needs config.data.folder.{field} "
                f"(--config.data.folder.{field}=/path/to/speaker/folders)"
            )
        return FolderSource(
            root,
            data.sample_rate,
            on_bad_file=data.folder.get("on_bad_file", "error"),
            index_cache_dir=cache_dir,
            config_key=f"config.data.folder.{field}",
        )
    if kind == "tfds":
        t = data.tfds
        split_name = t.get(f"{split}_split", "")
        if not split_name:
            raise ConfigError(f"config.data.source='tfds' needs config.data.tfds.{split}_split")
        return TfdsSource(
            t.name,
            split_name,
            data_dir=t.get("data_dir") or None,
            audio_key=t.get("audio_key", "speech"),
            speaker_key=t.get("speaker_key", "speaker_id"),
            sample_rate=data.sample_rate,
            dataset_sample_rate=t.get("dataset_sample_rate", None) or None,
            index_cache_dir=cache_dir,
        )
    raise ConfigError(
        f"unknown config.data.source {kind!r}; valid: {', '.join(repr(s) for s in SOURCE_NAMES)}"
    )
