"""`TfdsSource`: a prepared tfds dataset read through `tfds.data_source` (ArrayRecord).

tensorflow_datasets is imported when a source is built, not when this module is imported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csc_jax import audio_io, io_utils
from csc_jax.data.sources.base import AudioSource
from csc_jax.data.sources.tfds_compat import allow_audio_without_tensorflow
from csc_jax.errors import BadAudioFileError, ConfigError, DataError, UnknownKeyError

logger = logging.getLogger(__name__)


def _int_audio_scale(dtype: np.dtype) -> float | None:
    """Divisor mapping stored integer PCM to [-1, 1]; None for float audio."""
    if np.issubdtype(dtype, np.floating):
        return None
    # int64 is tfds.features.Audio's default dtype; audio datasets store 16-bit PCM in it
    # (`_load` rejects int64 values beyond that range rather than mis-scaling them).
    return {
        np.dtype(np.int16): 32768.0,
        np.dtype(np.int64): 32768.0,
        np.dtype(np.int32): 2.0**31,
    }.get(np.dtype(dtype))


class TfdsSource(AudioSource):
    """A prepared tfds dataset read through `tfds.data_source` (ArrayRecord random access).

    The dataset must already be prepared in the array_record format; reading needs no
    TensorFlow (see `tfds_compat`). Integer PCM is scaled to float32 in
    [-1, 1] (int16 and int64 by 1/32768, int32 by 1/2^31), multichannel averaged to mono, and
    resampled with soxr when the dataset rate differs from `sample_rate`. The dataset rate
    comes from the Audio feature's `sample_rate` or else `dataset_sample_rate`.

    keys: the dataset's `id_key` feature when it has one (LibriSpeech: ``'1034-121119-0000'``),
    else ``f'{speaker}/{split}/{index:08d}'``. Lengths and labels need one pass over the split
    (the audio is decoded); the result is cached as JSON in `index_cache_dir` when given.
    """

    def __init__(
        self,
        name: str,
        split: str,
        *,
        data_dir: str | os.PathLike | None = None,
        audio_key: str = "speech",
        speaker_key: str = "speaker_id",
        sample_rate: int,
        dataset_sample_rate: int | None = None,
        id_key: str | None = "id",
        index_cache_dir: str | os.PathLike | None = None,
    ):
        import tensorflow_datasets as tfds

        allow_audio_without_tensorflow()
        if not name:
            raise ConfigError("tfds dataset name is empty (config.data.tfds.name)")
        self.name, self.split = name, split
        self.data_dir = str(data_dir) if data_dir else None
        self.audio_key, self.speaker_key = audio_key, speaker_key
        self.sample_rate = int(sample_rate)
        where = f"data_dir={self.data_dir}" if self.data_dir else "the default tfds data_dir"
        how = (
            f"prepare it once in the array_record format (needs `pip install tensorflow-cpu` for "
            f"the build only): `tfds build {name} --file_format=array_record"
            f"{' --data_dir=' + self.data_dir if self.data_dir else ''}`"
        )
        try:
            builder = tfds.builder(name, data_dir=self.data_dir)
            features = builder.info.features
        except tfds.core.registered.DatasetNotFoundError as e:
            raise DataError(
                f"tfds dataset {name!r} not found in {where}; {how}. ({str(e).splitlines()[0]})"
            ) from None
        except ModuleNotFoundError as e:
            if e.name != "tensorflow":
                raise
            raise ImportError(
                f"tfds dataset {name!r} needs TensorFlow to be opened (e.g. lazily decoded "
                "audio features); `pip install tensorflow-cpu`"
            ) from e
        if not builder.is_prepared():
            raise DataError(f"tfds dataset {name!r} is not prepared in {builder.data_dir}; {how}")
        splits = list(builder.info.splits.keys())
        base_splits = [s.split("[", 1)[0].strip() for s in split.split("+")]
        missing = [s for s in base_splits if s not in splits]
        if missing:
            raise DataError(f"tfds dataset {name!r} has no split {missing[0]!r}; splits: {splits}")
        present = sorted(features.keys())
        for what, key in (("audio_key", audio_key), ("speaker_key", speaker_key)):
            if key not in features:
                raise UnknownKeyError(
                    f"tfds dataset {name!r}: {what}={key!r} is not a feature; features present: "
                    f"{present}"
                )
        feature_rate = getattr(features[audio_key], "sample_rate", None) or None
        if feature_rate and dataset_sample_rate and int(feature_rate) != int(dataset_sample_rate):
            raise ConfigError(
                f"tfds dataset {name!r}: feature {audio_key!r} says {feature_rate} Hz but "
                f"dataset_sample_rate={dataset_sample_rate}"
            )
        rate = feature_rate or dataset_sample_rate
        if not rate:
            raise ConfigError(
                f"tfds dataset {name!r}: feature {audio_key!r} has no sample_rate; pass "
                "dataset_sample_rate"
            )
        self.dataset_sample_rate = int(rate)
        self.id_key = id_key if id_key and id_key in features else None
        self.version = str(builder.version)
        self._ds = None
        description = f"tfds {name}:{split} ({self.version})"

        cache_path = None
        if index_cache_dir:
            # Keys and labels depend on the feature choice, so it is part of the cache identity.
            identity = f"{builder.data_dir}|{split}|{audio_key}|{speaker_key}|{self.id_key}"
            tag = hashlib.sha256(identity.encode()).hexdigest()[:16]
            cache_path = Path(index_cache_dir).expanduser() / f"tfds_index_{name}_{tag}.json"
        num_examples = len(self._source())
        index = None
        if cache_path is not None and cache_path.is_file():
            try:
                with open(cache_path) as f:
                    index = json.load(f)
                if (
                    index.get("num_examples") != num_examples
                    or index.get("version") != self.version
                ):
                    index = None
            except (OSError, ValueError) as e:
                logger.warning("ignoring unreadable tfds index %s (%s)", cache_path, e)
                index = None
        if index is None:
            index = self._build_index(num_examples)
            if cache_path is not None:
                try:
                    cache_path.parent.mkdir(parents=True, exist_ok=True)
                    io_utils.atomic_write_json(cache_path, index, indent=None)
                except OSError as e:
                    logger.warning("could not cache the tfds index at %s (%s)", cache_path, e)
        self.keys = list(index["keys"])
        self.speakers = list(index["speakers"])
        self.frames = np.asarray(index["frames"], dtype=np.int64)
        self.num_samples = np.asarray(
            [
                audio_io.resampled_length(int(n), self.dataset_sample_rate, self.sample_rate)
                for n in self.frames
            ],
            dtype=np.int64,
        )
        self._finish_init(description)

    def _source(self) -> Sequence[Mapping[str, Any]]:
        if self._ds is None:
            import tensorflow_datasets as tfds

            allow_audio_without_tensorflow()  # again in grain worker processes
            self._ds = tfds.data_source(
                self.name, split=self.split, data_dir=self.data_dir, download=False
            )
        return self._ds

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ds"] = None  # reopened lazily in the receiving process
        return state

    def _example_name(self, i: int) -> str:
        return f"tfds {self.name}:{self.split}[{i}]"

    def _build_index(self, n: int) -> dict[str, Any]:
        logger.info("indexing %d examples of tfds %s:%s", n, self.name, self.split)
        ds = self._source()
        keys, speakers, frames = [], [], []
        for i in range(n):
            if i and i % 5000 == 0:
                logger.info("indexed %d / %d examples", i, n)
            ex = ds[i]
            audio = np.asarray(ex[self.audio_key])
            if audio.ndim not in (1, 2) or audio.shape[0] == 0:
                raise BadAudioFileError(
                    self._example_name(i), f"{self.audio_key!r} has shape {audio.shape}"
                )
            speaker = ex[self.speaker_key]
            speaker = (
                speaker.decode() if isinstance(speaker, bytes) else str(np.asarray(speaker).item())
            )
            if self.id_key is not None:
                key = ex[self.id_key]
                key = key.decode() if isinstance(key, bytes) else str(key)
            else:
                key = f"{speaker}/{self.split}/{i:08d}"
            keys.append(key)
            speakers.append(speaker)
            frames.append(int(audio.shape[0]))
        return {
            "name": self.name,
            "split": self.split,
            "version": self.version,
            "num_examples": n,
            "keys": keys,
            "speakers": speakers,
            "frames": frames,
        }

    def _load(self, i: int) -> np.ndarray:
        name = self._example_name(i)
        audio = np.asarray(self._source()[i][self.audio_key])
        scale = _int_audio_scale(audio.dtype)
        if not np.issubdtype(audio.dtype, np.floating) and scale is None:
            raise BadAudioFileError(name, f"unsupported audio dtype {audio.dtype}")
        x = audio_io.to_mono(audio, name)
        if scale is not None:
            x = x / np.float32(scale)
            if audio.dtype == np.int64 and np.abs(x).max() > 1.0:
                raise BadAudioFileError(name, "int64 audio outside the 16-bit PCM range")
        audio_io.check_finite(x, name)
        x = audio_io.resample(x, self.dataset_sample_rate, self.sample_rate)
        if x.shape[0] != int(self.num_samples[i]):
            raise BadAudioFileError(
                name,
                f"decoded {x.shape[0]} samples but the index says {int(self.num_samples[i])}: "
                "the dataset changed since it was indexed; delete its tfds_index_*.json cache",
            )
        return x
