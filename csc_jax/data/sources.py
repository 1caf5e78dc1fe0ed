"""Random-access audio sources: the embedded synthetic corpus, audio folders, and tfds datasets.

Every source implements the `AudioSource` interface (the data contract of docs/architecture.md):

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

Sources are picklable so grain worker processes can receive them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import operator
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile
import soxr

from csc_jax.errors import BadAudioFileError, UnknownKeyError

logger = logging.getLogger(__name__)

# Verification needs different-speaker trials and interferer mixing needs another voice.
MIN_SPEAKERS = 2
SOURCE_NAMES = ("synthetic", "folder", "tfds")


def resampled_length(num_frames: int, orig_rate: int, target_rate: int) -> int:
    """Number of samples `soxr.resample` returns: ``round(num_frames * target / orig)``, halves up.

    soxr rounds halves up (``round()`` would round 500.5 to 500), hence the integer form.
    """
    return (2 * num_frames * target_rate + orig_rate) // (2 * orig_rate)


def _fit_length(x: np.ndarray, length: int, name: str) -> np.ndarray:
    # Resamplers may differ from the predicted length by a sample at the edges; anything larger
    # means the audio changed since it was indexed.
    if x.shape[0] == length:
        return x
    if abs(x.shape[0] - length) > 1:
        raise BadAudioFileError(
            name,
            f"decoded {x.shape[0]} samples but the index says {length}; rebuild the index",
        )
    if x.shape[0] > length:
        return x[:length]
    return np.pad(x, (0, length - x.shape[0]))


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise BadAudioFileError(name, f"contains {bad} NaN/Inf sample(s)")


def _to_mono_float(x: np.ndarray, name: str) -> np.ndarray:
    """(frames,) or (frames, channels) int/float audio -> float32 (frames,) in the file's scale."""
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float64) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise BadAudioFileError(
            name,
            f"expected audio of shape (frames,) or (frames, channels), got {x.shape}",
        )
    return np.asarray(x, dtype=np.float32)


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

    def _finish_init(self, description: str) -> None:
        """Validates the index and builds the key lookup; `description` names the corpus."""
        self._description = description
        n = len(self.keys)
        if n == 0:
            raise ValueError(f"{description}: no utterances")
        if len(self.speakers) != n or self.num_samples.shape != (n,):
            raise ValueError(
                f"{description}: {n} keys but {len(self.speakers)} speakers and "
                f"num_samples of shape {self.num_samples.shape}"
            )
        self._key_to_index = {key: i for i, key in enumerate(self.keys)}
        if len(self._key_to_index) != n:
            seen: set[str] = set()
            dup = next(k for k in self.keys if k in seen or seen.add(k))
            raise ValueError(f"{description}: duplicate key {dup!r}")
        if (self.num_samples < 1).any():
            i = int(np.argmin(self.num_samples))
            raise BadAudioFileError(self.keys[i], f"empty at {self.sample_rate} Hz ({description})")
        distinct = sorted(set(self.speakers))
        if len(distinct) < MIN_SPEAKERS:
            raise ValueError(
                f"{description}: found {len(distinct)} speaker(s) {distinct[:3]}; speaker "
                f"verification and interferer mixing need at least {MIN_SPEAKERS}"
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


# --------------------------------------------------------------------------------- synthetic


class SyntheticSource(AudioSource):
    """Wraps an in-memory `synthetic.Corpus` (any object with its four fields).

    Only the fields are kept (not the corpus object) so pickling to grain workers needs nothing
    but numpy.
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
            _check_finite(w, key)
        # Read-only views: callers get the stored arrays without a copy and cannot corrupt them.
        self._waveforms = [w.view() for w in self._waveforms]
        for w in self._waveforms:
            w.flags.writeable = False
        self.num_samples = np.asarray([w.shape[0] for w in self._waveforms], dtype=np.int64)
        self._finish_init(f"synthetic corpus @ {self.sample_rate} Hz")

    def _load(self, i: int) -> np.ndarray:
        return self._waveforms[i]


# --------------------------------------------------------------------------------- folder

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg") + (
    (".mp3",) if "MP3" in soundfile.available_formats() else ()
)
INDEX_FILENAME = ".csc_index.json"
_INDEX_FORMAT = 1
_LAYOUT = "<speaker>/<session or chapter>/<utterance>.<ext>"


@dataclasses.dataclass(frozen=True)
class _ScannedFile:
    rel: str  # '/'-separated path relative to the root
    depth: int
    regular: bool = True  # False: an audio name that is not a readable file (broken symlink)


def _scan_tree(root: Path) -> tuple[list[_ScannedFile], int]:
    """All audio files under `root` (hidden entries skipped) and the max mtime_ns of the tree.

    The max covers audio files and every directory except `root` itself: adding, removing or
    renaming a file updates its parent directory's mtime, while writing the index into `root`
    must not invalidate it.
    """
    files: list[_ScannedFile] = []
    max_mtime = 0
    visited: set[tuple[int, int]] = set()

    def walk(directory: Path, parts: tuple[str, ...]) -> None:
        nonlocal max_mtime
        st = directory.stat()
        if (st.st_dev, st.st_ino) in visited:  # symlink loop
            return
        visited.add((st.st_dev, st.st_ino))
        if parts:
            max_mtime = max(max_mtime, st.st_mtime_ns)
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                walk(Path(entry.path), (*parts, entry.name))
            elif entry.name.lower().endswith(AUDIO_EXTENSIONS):
                rel = "/".join((*parts, entry.name))
                if entry.is_file():
                    max_mtime = max(max_mtime, entry.stat().st_mtime_ns)
                    files.append(_ScannedFile(rel, len(parts) + 1))
                else:
                    files.append(_ScannedFile(rel, len(parts) + 1, regular=False))

    walk(root, ())
    return files, max_mtime


def _probe(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """soundfile.info of one file -> (index entry, None) or (None, why it is unusable)."""
    try:
        info = soundfile.info(str(path))
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types for corrupt files
        return None, f"unreadable ({type(e).__name__}: {e})"
    if info.frames <= 0:
        return None, "zero-length audio (0 frames)"
    if info.samplerate <= 0 or info.channels <= 0:
        return (
            None,
            f"invalid header (rate {info.samplerate}, {info.channels} channels)",
        )
    entry = {
        "sample_rate": int(info.samplerate),
        "frames": int(info.frames),
        "channels": int(info.channels),
        "duration": float(info.frames / info.samplerate),
    }
    return entry, None


def _atomic_write_json(path: Path, payload: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class FolderSource(AudioSource):
    """Audio files in the VoxCeleb (``spk/session/utt.wav``) or LibriSpeech
    (``spk/chapter/utt.flac``) layout: every audio file exactly 3 levels below `root`.

    Extensions: `AUDIO_EXTENSIONS` (.wav .flac .ogg, .mp3 where libsndfile supports it),
    case-insensitive. Hidden files and folders are ignored. Multichannel audio is averaged to
    mono; other sample rates are resampled with soxr to `sample_rate`.

    The index (file, original rate, frames, channels, duration, speaker) is built once with
    `soundfile.info` and cached as JSON in ``<root>/.csc_index.json`` (atomic write). If `root`
    is read-only it goes to `index_cache_dir` (one file per root), else it stays in memory with
    a warning. Staleness: the tree is rescanned (one stat per file, no decoding) on every
    construction and the cache is reused only if the number of audio files, the sorted list of
    their paths and the max mtime over audio files and sub-directories all match. That catches
    added, removed, renamed and rewritten files; it misses a file replaced in place by one with
    an older mtime (``cp -p``) -- delete the index file to force a rebuild.

    Bad input: `root` missing -> FileNotFoundError; no audio in the layout -> ValueError naming
    the root and extensions; unreadable/corrupt, zero-length files or audio at the wrong depth
    -> BadAudioFileError naming the file, unless ``on_bad_file='skip'``, which skips them and
    logs one warning with the count and the first paths. NaN/Inf samples are only seen when a
    file is decoded and always raise BadAudioFileError naming it. Fewer than 2 speakers ->
    ValueError.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        sample_rate: int,
        *,
        cache_index: bool = True,
        on_bad_file: Literal["error", "skip"] = "error",
        index_cache_dir: str | os.PathLike | None = None,
    ):
        if on_bad_file not in ("error", "skip"):
            raise ValueError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
        if int(sample_rate) <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.root = Path(root).expanduser().resolve()
        self.sample_rate = int(sample_rate)
        self.on_bad_file = on_bad_file
        if not self.root.exists():
            raise FileNotFoundError(f"audio folder {self.root} does not exist")
        if not self.root.is_dir():
            raise NotADirectoryError(f"audio folder {self.root} is not a directory")

        scanned, max_mtime = _scan_tree(self.root)
        # Plain string order of the keys, so a rebuilt and an updated index agree.
        layout_ok = sorted(f.rel for f in scanned if f.depth == 3 and f.regular)
        misplaced = [f.rel for f in scanned if f.depth != 3 and f.regular]
        if not layout_ok:
            hint = (
                f"; found {len(misplaced)} audio file(s) at other depths, e.g. {misplaced[0]!r}: "
                f"point the root at the folder that holds the speaker folders"
                if misplaced
                else ""
            )
            raise ValueError(
                f"no audio files in {self.root} in the layout {_LAYOUT} (searched extensions "
                f"{', '.join(AUDIO_EXTENSIONS)}){hint}"
            )
        bad: dict[str, str] = {
            rel: f"not in the layout {_LAYOUT} (depth {rel.count('/') + 1}, expected 3)"
            for rel in misplaced
        }
        bad.update(
            {f.rel: "not a regular file (broken symlink?)" for f in scanned if not f.regular}
        )

        signature = {"num_files": len(layout_ok), "max_mtime_ns": max_mtime}
        self.index_path: Path | None = None
        index = (
            self._read_cached_index(layout_ok, signature, index_cache_dir) if cache_index else None
        )
        if index is None:
            index = self._build_index(layout_ok, signature)
            if cache_index:
                self._write_index(index, index_cache_dir)
        bad.update(index["bad"])
        entries: list[dict[str, Any]] = []
        for e in index["entries"]:
            if resampled_length(e["frames"], e["sample_rate"], self.sample_rate) < 1:
                bad[e["path"]] = (
                    f"{e['frames']} frame(s) at {e['sample_rate']} Hz is empty at "
                    f"{self.sample_rate} Hz"
                )
            else:
                entries.append(e)

        if bad:
            first = sorted(bad)
            if on_bad_file == "error":
                raise BadAudioFileError(
                    self.root / first[0],
                    f"{bad[first[0]]} ({len(bad)} bad file(s) under {self.root}; fix or remove "
                    f"them, or pass on_bad_file='skip')",
                )
            shown = ", ".join(f"{p} ({bad[p]})" for p in first[:5])
            logger.warning(
                "FolderSource %s: skipped %d bad audio file(s) (on_bad_file='skip'): %s%s",
                self.root,
                len(bad),
                shown,
                ", ..." if len(bad) > 5 else "",
            )
        self.skipped = sorted(bad)

        self.keys = [e["path"] for e in entries]
        self.speakers = [e["path"].split("/", 1)[0] for e in entries]
        self.file_sample_rates = np.asarray([e["sample_rate"] for e in entries], dtype=np.int64)
        self.frames = np.asarray([e["frames"] for e in entries], dtype=np.int64)
        self.channels = np.asarray([e["channels"] for e in entries], dtype=np.int64)
        self.durations = np.asarray([e["duration"] for e in entries], dtype=np.float64)
        self.num_samples = np.asarray(
            [resampled_length(e["frames"], e["sample_rate"], self.sample_rate) for e in entries],
            dtype=np.int64,
        )
        self._finish_init(f"folder {self.root}")

    # ---- index cache

    def _fallback_index_path(self, index_cache_dir: str | os.PathLike | None) -> Path | None:
        if index_cache_dir is None or str(index_cache_dir) == "":
            return None
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path(index_cache_dir).expanduser() / f"csc_index_{digest}.json"

    def _read_cached_index(
        self,
        rel_paths: list[str],
        signature: Mapping[str, int],
        index_cache_dir: str | os.PathLike | None,
    ) -> dict[str, Any] | None:
        candidates = [
            self.root / INDEX_FILENAME,
            self._fallback_index_path(index_cache_dir),
        ]
        for path in candidates:
            if path is None or not path.is_file():
                continue
            try:
                with open(path) as f:
                    index = json.load(f)
                cached_paths = sorted([e["path"] for e in index["entries"]] + list(index["bad"]))
                fresh = (
                    index.get("format") == _INDEX_FORMAT
                    and index.get("root") == str(self.root)
                    and index.get("num_files") == signature["num_files"]
                    and index.get("max_mtime_ns") == signature["max_mtime_ns"]
                    and cached_paths == sorted(rel_paths)
                )
            except (OSError, ValueError, KeyError, TypeError) as e:
                logger.warning("ignoring unreadable index cache %s (%s); rebuilding", path, e)
                continue
            if fresh:
                self.index_path = path
                return self._reprobe_bad(index)
            logger.info("index cache %s is stale; rebuilding", path)
        return None

    def _reprobe_bad(self, index: dict[str, Any]) -> dict[str, Any]:
        # A cached failure may have been transient (I/O error, file being copied); retrying the
        # few bad files keeps it from persisting until the tree changes.
        if not index["bad"]:
            return index
        still_bad, recovered = {}, []
        for rel, reason in index["bad"].items():
            entry, new_reason = _probe(self.root / rel)
            if entry is None:
                still_bad[rel] = new_reason or reason
            else:
                recovered.append({"path": rel, "speaker": rel.split("/", 1)[0], **entry})
        if recovered:
            entries = sorted(index["entries"] + recovered, key=lambda e: e["path"])
            index = {**index, "entries": entries, "bad": still_bad}
            if self.index_path is not None:
                try:
                    _atomic_write_json(self.index_path, index)
                except OSError as e:
                    logger.warning("could not update the index cache %s (%s)", self.index_path, e)
        return index

    def _build_index(self, rel_paths: list[str], signature: Mapping[str, int]) -> dict[str, Any]:
        logger.info("indexing %d audio files under %s", len(rel_paths), self.root)
        entries, bad = [], {}
        for rel in rel_paths:
            entry, reason = _probe(self.root / rel)
            if entry is None:
                bad[rel] = reason
            else:
                entries.append({"path": rel, "speaker": rel.split("/", 1)[0], **entry})
        # Only original rates are stored: one cache serves every model sample rate.
        return {
            "format": _INDEX_FORMAT,
            "root": str(self.root),
            **signature,
            "entries": entries,
            "bad": bad,
        }

    def _write_index(
        self, index: dict[str, Any], index_cache_dir: str | os.PathLike | None
    ) -> None:
        targets = [
            self.root / INDEX_FILENAME,
            self._fallback_index_path(index_cache_dir),
        ]
        errors = []
        for path in targets:
            if path is None:
                continue
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _atomic_write_json(path, index)
            except OSError as e:
                errors.append(f"{path}: {e}")
                continue
            self.index_path = path
            return
        logger.warning(
            "could not cache the audio index of %s (%s); keeping it in memory only%s",
            self.root,
            "; ".join(errors),
            "" if index_cache_dir else " (pass index_cache_dir to cache it elsewhere)",
        )

    # ---- decoding

    def path(self, index: int) -> Path:
        """Absolute path of utterance `index`."""
        return self.root / self.keys[self._check_index(index)]

    def _read(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        path = self.root / self.keys[i]
        try:
            x, _ = soundfile.read(
                str(path), start=start, stop=stop, dtype="float32", always_2d=True
            )
        except Exception as e:  # report any decoder failure with the file name
            raise BadAudioFileError(path, f"cannot decode ({type(e).__name__}: {e})") from e
        expected = (int(self.frames[i]) if stop is None else stop) - start
        if x.shape[0] != expected:
            raise BadAudioFileError(
                path,
                f"read {x.shape[0]} frames, expected {expected} (truncated or changed file)",
            )
        x = _to_mono_float(x, str(path))
        _check_finite(x, str(path))
        return x

    def _load(self, i: int) -> np.ndarray:
        x = self._read(i)
        rate = int(self.file_sample_rates[i])
        if rate != self.sample_rate:
            x = soxr.resample(x, rate, self.sample_rate).astype(np.float32, copy=False)
            x = _fit_length(x, int(self.num_samples[i]), str(self.root / self.keys[i]))
        return x

    def _load_segment(self, i: int, start: int, stop: int) -> np.ndarray:
        if int(self.file_sample_rates[i]) == self.sample_rate:
            return self._read(i, start, stop)
        # Resampling a sub-range would change the edge samples; decode the whole file.
        return self._load(i)[start:stop]


# --------------------------------------------------------------------------------- tfds


def _tfds_audio_without_tensorflow() -> None:
    """Lets tfds construct `tfds.features.Audio` (e.g. LibriSpeech) when TensorFlow is absent.

    tfds 4.9.x calls ``tf.dtypes.as_dtype`` in the Audio decoder's constructor, so merely
    opening such a dataset imports TensorFlow (tensorflow/datasets#11233) although eager-decoded
    audio is stored as a plain int tensor and read with numpy. Only the eager decoder's
    constructor is replaced, and only when TensorFlow cannot be imported; lazily decoded audio
    still needs TensorFlow and will fail inside tfds.
    """
    import importlib.util

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
    TensorFlow (see `_tfds_audio_without_tensorflow`). Integer PCM is scaled to float32 in
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

        _tfds_audio_without_tensorflow()
        if not name:
            raise ValueError("tfds dataset name is empty (config.data.tfds.name)")
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
            raise FileNotFoundError(
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
            raise FileNotFoundError(
                f"tfds dataset {name!r} is not prepared in {builder.data_dir}; {how}"
            )
        splits = list(builder.info.splits.keys())
        base_splits = [s.split("[", 1)[0].strip() for s in split.split("+")]
        missing = [s for s in base_splits if s not in splits]
        if missing:
            raise ValueError(f"tfds dataset {name!r} has no split {missing[0]!r}; splits: {splits}")
        present = sorted(features.keys())
        for what, key in (("audio_key", audio_key), ("speaker_key", speaker_key)):
            if key not in features:
                raise UnknownKeyError(
                    f"tfds dataset {name!r}: {what}={key!r} is not a feature; features present: "
                    f"{present}"
                )
        feature_rate = getattr(features[audio_key], "sample_rate", None) or None
        if feature_rate and dataset_sample_rate and int(feature_rate) != int(dataset_sample_rate):
            raise ValueError(
                f"tfds dataset {name!r}: feature {audio_key!r} says {feature_rate} Hz but "
                f"dataset_sample_rate={dataset_sample_rate}"
            )
        rate = feature_rate or dataset_sample_rate
        if not rate:
            raise ValueError(
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
                    _atomic_write_json(cache_path, index)
                except OSError as e:
                    logger.warning("could not cache the tfds index at %s (%s)", cache_path, e)
        self.keys = list(index["keys"])
        self.speakers = list(index["speakers"])
        self.frames = np.asarray(index["frames"], dtype=np.int64)
        self.num_samples = np.asarray(
            [
                resampled_length(int(n), self.dataset_sample_rate, self.sample_rate)
                for n in self.frames
            ],
            dtype=np.int64,
        )
        self._finish_init(description)

    def _source(self) -> Sequence[Mapping[str, Any]]:
        if self._ds is None:
            import tensorflow_datasets as tfds

            _tfds_audio_without_tensorflow()  # again in grain worker processes
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
        x = _to_mono_float(audio, name)
        if scale is not None:
            x = x / np.float32(scale)
            if audio.dtype == np.int64 and np.abs(x).max() > 1.0:
                raise BadAudioFileError(name, "int64 audio outside the 16-bit PCM range")
        _check_finite(x, name)
        if self.dataset_sample_rate != self.sample_rate:
            x = soxr.resample(x, self.dataset_sample_rate, self.sample_rate).astype(
                np.float32, copy=False
            )
        return _fit_length(x, int(self.num_samples[i]), name)


# --------------------------------------------------------------------------------- factory


def make_source(config: Any, split: str) -> AudioSource:
    """The `split` ('train' or 'test') source chosen by ``config.data.source``.

    Args:
      config: the whole experiment ConfigDict (reads ``config.data``).
      split: 'train' or 'test'.
    """
    data = config.data
    kind = data.source
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    cache_dir = data.get("cache_dir") or None
    if kind == "synthetic":
        from csc_jax.data import synthetic

        corpus = synthetic.load_or_generate(data.synthetic, split, data.sample_rate, data.cache_dir)
        return SyntheticSource(corpus)
    if kind == "folder":
        field = "train_root" if split == "train" else "test_root"
        root = data.folder.get(field, "")
        if not root:
            raise ValueError(f"config.data.source='folder' needs config.data.folder.{field}")
        return FolderSource(
            root,
            data.sample_rate,
            on_bad_file=data.folder.get("on_bad_file", "error"),
            index_cache_dir=cache_dir,
        )
    if kind == "tfds":
        t = data.tfds
        split_name = t.train_split if split == "train" else t.get("test_split", "test")
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
    raise ValueError(
        f"unknown config.data.source {kind!r}; valid: {', '.join(repr(s) for s in SOURCE_NAMES)}"
    )
