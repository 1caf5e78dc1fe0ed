"""AudioSource implementations: folder layouts, index cache, bad input, tfds, make_source."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import ml_collections
import numpy as np
import pytest
import soundfile
import soxr
import tensorflow_datasets as tfds

from csc_jax import audio_io, io_utils
from csc_jax.data import sources, synthetic
from csc_jax.data.sources import (
    BadAudioFileError,
    DataError,
    FolderSource,
    SyntheticSource,
    TfdsSource,
    UnknownKeyError,
    make_source,
)
from csc_jax.errors import ConfigError


def _write(root: Path, rel: str, data: np.ndarray, rate: int, subtype: str | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, rate, subtype=subtype)
    return path


def _tone(n: int, seed: int) -> np.ndarray:
    return (0.5 * np.sin(0.01 * (seed + 1) * np.arange(n))).astype(np.float32)


@pytest.fixture
def vox(tmp_path: Path) -> Path:
    """VoxCeleb layout, wav at 8 kHz: 2 speakers, 3 utterances."""
    root = tmp_path / "vox"
    _write(root, "id10270/x6uYqmx31kE/00001.wav", _tone(4000, 0), 8000)
    _write(root, "id10270/8jEAjG6SegY/00002.wav", _tone(6000, 1), 8000)
    _write(root, "id10271/1gtz-CUIygI/00001.wav", _tone(2000, 2), 8000)
    return root


# ------------------------------------------------------------------------- layouts


def test_voxceleb_layout_indexed(vox: Path) -> None:
    src = FolderSource(vox, 8000)
    assert src.keys == [
        "id10270/8jEAjG6SegY/00002.wav",
        "id10270/x6uYqmx31kE/00001.wav",
        "id10271/1gtz-CUIygI/00001.wav",
    ]
    assert src.speakers == ["id10270", "id10270", "id10271"]
    assert src.num_samples.dtype == np.int64
    np.testing.assert_array_equal(src.num_samples, [6000, 4000, 2000])
    np.testing.assert_allclose(src.durations, [0.75, 0.5, 0.25])
    assert len(src) == 3
    i = src.index_of("id10270/x6uYqmx31kE/00001.wav")
    x = src[i]
    assert x.dtype == np.float32 and x.shape == (4000,)
    np.testing.assert_allclose(x, _tone(4000, 0), atol=1e-4)  # 16-bit PCM round trip
    assert src[-1].shape == (2000,)
    with pytest.raises(UnknownKeyError, match="id99999/none/00001.wav"):
        src.index_of("id99999/none/00001.wav")
    with pytest.raises(IndexError, match="index 3"):
        src[3]


def test_librispeech_flac_layout(tmp_path: Path) -> None:
    root = tmp_path / "LibriSpeech" / "train-clean-100"
    _write(root, "19/198/19-198-0000.flac", _tone(1600, 0), 16000)
    _write(root, "19/198/19-198-0001.flac", _tone(3200, 1), 16000)
    _write(root, "26/495/26-495-0000.flac", _tone(4800, 2), 16000)
    (root / "19/198/19-198.trans.txt").write_text("0000 HELLO\n")  # not audio: ignored
    src = FolderSource(root, 16000)
    assert src.keys == [
        "19/198/19-198-0000.flac",
        "19/198/19-198-0001.flac",
        "26/495/26-495-0000.flac",
    ]
    assert src.speakers == ["19", "19", "26"]
    np.testing.assert_array_equal(src.num_samples, [1600, 3200, 4800])
    np.testing.assert_allclose(src.durations, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(src[1], _tone(3200, 1), atol=1e-4)
    # Pointing one level too high gives a hint, not an empty corpus.
    with pytest.raises(DataError, match="other depths"):
        FolderSource(tmp_path / "LibriSpeech", 16000)


def test_stereo_is_averaged_and_16k_file_resampled_to_8k(tmp_path: Path) -> None:
    root = tmp_path / "c"
    left, right = _tone(16000, 0), _tone(16000, 5)
    _write(root, "a/s/stereo16k.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    _write(root, "b/s/mono8k.wav", _tone(3000, 1), 8000, subtype="FLOAT")
    _write(root, "b/s/odd16k.wav", _tone(1001, 2), 16000, subtype="FLOAT")  # 500.5 -> 501
    src = FolderSource(root, 8000)
    i = src.index_of("a/s/stereo16k.wav")
    assert src.channels[i] == 2 and src.file_sample_rates[i] == 16000
    x = src[i]
    assert x.shape == (8000,) and src.num_samples[i] == 8000
    expected = soxr.resample((left + right) / 2, 16000, 8000)
    np.testing.assert_allclose(x, expected, atol=1e-5)
    j = src.index_of("b/s/odd16k.wav")
    assert src[j].shape == (int(src.num_samples[j]),) == (501,)
    # Partial reads agree with full decoding, with and without resampling.
    k = src.index_of("b/s/mono8k.wav")
    np.testing.assert_array_equal(src.read_segment(k, 100, 900), src[k][100:900])
    np.testing.assert_array_equal(src.read_segment(i, 10, 4010), x[10:4010])
    with pytest.raises(ValueError, match="outside"):
        src.read_segment(k, 2500, 3500)


# ------------------------------------------------------------------------- index cache


_REAL_CHECK = audio_io.check_audio_file


def _count_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the path of every full-file decode the folder index makes."""
    calls: list[str] = []

    def check(path, *args, **kwargs):
        calls.append(Path(path).relative_to(Path(path).parents[2]).as_posix())
        return _REAL_CHECK(path, *args, **kwargs)

    monkeypatch.setattr(audio_io, "check_audio_file", check)
    return calls


def test_index_is_cached_reused_and_updated(vox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_checks(monkeypatch)
    first = FolderSource(vox, 8000)
    assert len(calls) == 3  # every file decoded once when the index is built
    cache = vox / sources.INDEX_FILENAME
    assert cache.is_file() and first.index_path == cache
    assert sorted(json.loads(cache.read_text())["good"]) == first.keys

    calls.clear()
    again = FolderSource(vox, 16000)  # the cache holds original rates: valid for any model rate
    assert calls == [] and again.keys == first.keys
    np.testing.assert_array_equal(again.num_samples, 2 * first.num_samples)
    assert os.stat(cache).st_mtime_ns == os.stat(first.index_path).st_mtime_ns

    # A new file: only it is decoded.
    _write(vox, "id10271/1gtz-CUIygI/00002.wav", _tone(1000, 3), 8000)
    grown = FolderSource(vox, 8000)
    assert calls == ["id10271/1gtz-CUIygI/00002.wav"] and len(grown) == 4

    # One file rewritten in place (same name, new size and mtime): only it is decoded.
    calls.clear()
    path = _write(vox, "id10270/x6uYqmx31kE/00001.wav", _tone(800, 0), 8000)
    stamp = os.stat(path).st_mtime + 10
    os.utime(path, (stamp, stamp))
    rewritten = FolderSource(vox, 8000)
    assert calls == ["id10270/x6uYqmx31kE/00001.wav"]
    assert rewritten.num_samples[rewritten.index_of("id10270/x6uYqmx31kE/00001.wav")] == 800

    # A removed file leaves the index; nothing is decoded.
    calls.clear()
    (vox / "id10271/1gtz-CUIygI/00002.wav").unlink()
    shrunk = FolderSource(vox, 8000)
    assert calls == [] and len(shrunk) == 3
    assert "id10271/1gtz-CUIygI/00002.wav" not in json.loads(cache.read_text())["good"]

    FolderSource(vox, 8000, cache_index=False)
    assert len(calls) == 3


def test_stale_or_foreign_index_is_rebuilt(vox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = vox / sources.INDEX_FILENAME
    cache.write_text(json.dumps({"format": 1, "entries": [], "bad": {}}))  # an older format
    calls = _count_checks(monkeypatch)
    assert len(FolderSource(vox, 8000)) == 3 and len(calls) == 3
    cache.write_text("{not json")
    calls.clear()
    assert len(FolderSource(vox, 8000)) == 3 and len(calls) == 3


def test_read_only_root_uses_index_cache_dir(
    vox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_write = io_utils.atomic_write_json

    def write(path: Path, payload, **kwargs):
        if Path(path).parent == vox.resolve():
            raise PermissionError(13, "Read-only file system", str(path))
        return real_write(path, payload, **kwargs)

    monkeypatch.setattr(io_utils, "atomic_write_json", write)
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        in_memory = FolderSource(vox, 8000)
    assert in_memory.index_path is None and "in memory only" in caplog.text
    assert not (vox / sources.INDEX_FILENAME).exists()

    cache_dir = tmp_path / "cache"
    src = FolderSource(vox, 8000, index_cache_dir=cache_dir)
    assert src.index_path is not None and src.index_path.parent == cache_dir
    calls = _count_checks(monkeypatch)
    FolderSource(vox, 8000, index_cache_dir=cache_dir)
    assert calls == []


# ------------------------------------------------------------------------- bad input


def test_missing_root_and_folder_without_audio(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere does not exist"):
        FolderSource(tmp_path / "nowhere", 8000)
    (tmp_path / "file.wav").write_bytes(b"")
    with pytest.raises(DataError, match="file.wav is not a directory"):
        FolderSource(tmp_path / "file.wav", 8000)
    (tmp_path / "empty" / "a" / "b").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "b" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"empty.*\.wav, \.flac, \.ogg"):
        FolderSource(tmp_path / "empty", 8000)


@pytest.mark.parametrize("kind", ["corrupt", "zero_length", "misplaced", "broken_link"])
def test_bad_file_error_names_it_and_skip_warns(
    vox: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    if kind == "corrupt":
        rel = "id10271/1gtz-CUIygI/00009.wav"
        (vox / rel).write_bytes(b"RIFF\x00\x00garbage, not a wave file" * 3)
        reason = "unreadable"
    elif kind == "zero_length":
        rel = "id10271/1gtz-CUIygI/00009.wav"
        _write(vox, rel, np.zeros(0, np.float32), 8000)
        reason = "zero-length"
    elif kind == "misplaced":
        rel = "id10271/00009.wav"
        _write(vox, rel, _tone(100, 0), 8000)
        reason = "depth 2"
    else:
        rel = "id10271/1gtz-CUIygI/00009.wav"
        os.symlink(vox / "gone.wav", vox / rel)
        reason = "broken symlink"
    with pytest.raises(BadAudioFileError, match=reason) as info:
        FolderSource(vox, 8000)
    assert info.value.path == str(vox.resolve() / rel)
    assert str(vox.resolve() / rel) in str(info.value)

    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        src = FolderSource(vox, 8000, on_bad_file="skip")
    assert rel not in src.keys and len(src) == 3 and src.skipped == [rel]
    assert "skipped 1 bad audio file" in caplog.text and rel in caplog.text
    # The cached index remembers the bad file: 'error' must still refuse it.
    with pytest.raises(BadAudioFileError, match=reason):
        FolderSource(vox, 8000)


def test_nan_samples_found_when_the_source_is_built(vox: Path, caplog) -> None:
    rel = "id10271/1gtz-CUIygI/00003.wav"
    data = _tone(1000, 0)
    data[10] = np.nan
    _write(vox, rel, data, 8000, subtype="FLOAT")
    with pytest.raises(BadAudioFileError, match=r"00003\.wav: contains 1 NaN/Inf.*frame 10"):
        FolderSource(vox, 8000)
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        src = FolderSource(vox, 8000, on_bad_file="skip")
    assert src.skipped == [rel] and rel not in src.keys
    assert "skipped 1 bad audio file" in caplog.text and "NaN/Inf" in caplog.text


def test_nan_written_after_indexing_raises_at_load_time(vox: Path) -> None:
    rel = "id10271/1gtz-CUIygI/00003.wav"
    _write(vox, rel, _tone(1000, 0), 8000, subtype="FLOAT")
    src = FolderSource(vox, 8000)
    data = _tone(1000, 0)
    data[10] = np.nan
    _write(vox, rel, data, 8000, subtype="FLOAT")
    i = src.index_of(rel)
    with pytest.raises(BadAudioFileError, match=r"00003\.wav: contains 1 NaN/Inf"):
        src[i]
    with pytest.raises(BadAudioFileError, match=r"00003\.wav"):
        src.read_segment(i, 0, 50)


def test_single_speaker_rejected(tmp_path: Path) -> None:
    _write(tmp_path, "solo/s1/1.wav", _tone(100, 0), 8000)
    _write(tmp_path, "solo/s2/2.wav", _tone(100, 1), 8000)
    with pytest.raises(DataError, match=r"1 speaker\(s\) \('solo'\).*at least 2"):
        FolderSource(tmp_path, 8000)


def test_folder_source_pickles(vox: Path) -> None:
    src = FolderSource(vox, 8000)
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone[1], src[1])


# ------------------------------------------------------------------------- synthetic


@dataclasses.dataclass(frozen=True)
class _Corpus:  # the fields of synthetic.Corpus
    waveforms: list[np.ndarray]
    keys: list[str]
    speakers: list[str]
    sample_rate: int


def test_synthetic_source_wraps_corpus() -> None:
    waves = [np.full(n, i, np.float32) for i, n in enumerate([30, 40, 50])]
    keys = ["spk0/sess00/utt000.wav", "spk0/sess00/utt001.wav", "spk1/sess00/utt000.wav"]
    src = SyntheticSource(_Corpus(waves, keys, ["spk0", "spk0", "spk1"], 8000))
    assert len(src) == 3 and src.sample_rate == 8000
    np.testing.assert_array_equal(src.num_samples, [30, 40, 50])
    assert src.index_of("spk1/sess00/utt000.wav") == 2
    np.testing.assert_array_equal(src[2], waves[2])
    np.testing.assert_array_equal(src.read_segment(1, 5, 9), np.ones(4, np.float32))

    bad = [w.copy() for w in waves]
    bad[1][3] = np.inf
    with pytest.raises(BadAudioFileError, match="utt001.wav: contains 1 NaN/Inf"):
        SyntheticSource(_Corpus(bad, keys, ["spk0", "spk0", "spk1"], 8000))
    with pytest.raises(BadAudioFileError, match="utt000.wav.*float32"):
        SyntheticSource(_Corpus([w.astype(np.float64) for w in waves], keys, ["a", "a", "b"], 8000))
    with pytest.raises(ValueError, match="at least 2"):
        SyntheticSource(_Corpus(waves, keys, ["a", "a", "a"], 8000))
    with pytest.raises(ValueError, match="duplicate key"):
        SyntheticSource(_Corpus(waves, [keys[0]] * 3, ["a", "a", "b"], 8000))


# ------------------------------------------------------------------------- tfds


class CscTinySpeech(tfds.core.GeneratorBasedBuilder):
    """6 utterances, 3 speakers, int16 speech stored as a plain Tensor (no TensorFlow needed)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "speech": tfds.features.Tensor(shape=(None,), dtype=np.int16),
                    "speaker_id": np.int64,
                    "id": tfds.features.Text(),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(6):
            speech = np.full(1600 + 200 * i, 16384 if i % 2 else -8192, np.int16)
            yield i, {"speech": speech, "speaker_id": 100 + i % 3, "id": f"{100 + i % 3}-0-{i:04d}"}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("tfds")
    CscTinySpeech(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return data_dir


def test_tfds_source_reads_array_record(tfds_dir: Path, tmp_path: Path) -> None:
    src = TfdsSource(
        "csc_tiny_speech",
        "train",
        data_dir=tfds_dir,
        sample_rate=8000,
        dataset_sample_rate=16000,
        index_cache_dir=tmp_path,
    )
    assert len(src) == 6
    assert sorted(src.keys) == sorted(f"{100 + i % 3}-0-{i:04d}" for i in range(6))
    i = src.index_of("101-0-0001")
    assert src.speakers[i] == "101"
    assert src.num_samples[i] == (1600 + 200) // 2
    x = src[i]
    assert x.dtype == np.float32 and x.shape == (900,)
    np.testing.assert_allclose(x[100:-100], 0.5, atol=1e-3)  # 16384 / 32768, resampled
    native = TfdsSource(
        "csc_tiny_speech",
        "train",
        data_dir=tfds_dir,
        sample_rate=16000,
        dataset_sample_rate=16000,
        id_key=None,
    )
    # tfds shuffles examples when writing; recover the generator index from the id key.
    for j, key in enumerate(native.keys):
        assert key == f"{native.speakers[j]}/train/{j:08d}"
        i = int(src.keys[j].rsplit("-", 1)[1])
        assert native.speakers[j] == str(100 + i % 3)
        expected = np.full(1600 + 200 * i, 0.5 if i % 2 else -0.25, np.float32)
        np.testing.assert_array_equal(native[j], expected)
    clone = pickle.loads(pickle.dumps(native))
    np.testing.assert_array_equal(clone[j], native[j])
    assert len(list(tmp_path.glob("tfds_index_csc_tiny_speech_*.json"))) == 1


def test_tfds_index_cache_is_reused(
    tfds_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = dict(data_dir=tfds_dir, sample_rate=8000, dataset_sample_rate=16000)
    first = TfdsSource("csc_tiny_speech", "train", index_cache_dir=tmp_path, **kwargs)

    def forbidden(self, n):
        raise AssertionError("tfds index rebuilt although it is cached")

    monkeypatch.setattr(TfdsSource, "_build_index", forbidden)
    again = TfdsSource("csc_tiny_speech", "train", index_cache_dir=tmp_path, **kwargs)
    assert again.keys == first.keys and again.speakers == first.speakers
    np.testing.assert_array_equal(again.num_samples, first.num_samples)
    with pytest.raises(AssertionError, match="rebuilt"):  # other keys: a separate cache entry
        TfdsSource("csc_tiny_speech", "train", index_cache_dir=tmp_path, id_key=None, **kwargs)


def test_tfds_audio_feature_without_tensorflow(tfds_dir: Path, tmp_path: Path) -> None:
    """A features.json declaring tfds.features.Audio (as LibriSpeech's does) is readable.

    Building with Audio needs TensorFlow, so the prepared Tensor dataset is copied under a new,
    unregistered name with its speech feature declared as Audio at 16 kHz; the stored bytes
    of eager Audio and an int16 Tensor are identical.
    """
    src_dir = tfds_dir / "csc_tiny_speech" / "1.0.0"
    dst_dir = tmp_path / "libri_like" / "1.0.0"
    dst_dir.mkdir(parents=True)
    for f in src_dir.iterdir():
        shutil.copy(f, dst_dir / f.name.replace("csc_tiny_speech", "libri_like"))
    info = json.loads((dst_dir / "dataset_info.json").read_text())
    info["name"] = "libri_like"
    (dst_dir / "dataset_info.json").write_text(json.dumps(info))
    features = json.loads((dst_dir / "features.json").read_text())
    features["featuresDict"]["features"]["speech"] = {
        "pythonClassName": "tensorflow_datasets.core.features.audio_feature.Audio",
        "audio": {
            "shape": {"dimensions": ["-1"]},
            "dtype": "int16",
            "sampleRate": "16000",
            "encoding": "none",
        },
    }
    (dst_dir / "features.json").write_text(json.dumps(features))

    src = TfdsSource("libri_like", "train", data_dir=tmp_path, sample_rate=8000)
    assert src.dataset_sample_rate == 16000
    i = src.index_of("100-0-0000")
    assert src[i].shape == (800,)
    with pytest.raises(ValueError, match="says 16000 Hz but dataset_sample_rate=8000"):
        TfdsSource(
            "libri_like", "train", data_dir=tmp_path, sample_rate=8000, dataset_sample_rate=8000
        )


def test_tfds_errors(tfds_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tfds build no_such_dataset"):
        TfdsSource("no_such_dataset", "train", data_dir=tmp_path, sample_rate=8000)
    with pytest.raises(DataError, match="not prepared.*tfds build csc_tiny_speech"):
        TfdsSource("csc_tiny_speech", "train", data_dir=tmp_path, sample_rate=8000)
    with pytest.raises(KeyError, match=r"audio_key='audio'.*\['id', 'speaker_id', 'speech'\]"):
        TfdsSource(
            "csc_tiny_speech", "train", data_dir=tfds_dir, audio_key="audio", sample_rate=8000
        )
    with pytest.raises(KeyError, match="speaker_key='speaker'"):
        TfdsSource(
            "csc_tiny_speech", "train", data_dir=tfds_dir, speaker_key="speaker", sample_rate=8000
        )
    with pytest.raises(DataError, match=r"no split 'test'; splits: \['train'\]"):
        TfdsSource("csc_tiny_speech", "test", data_dir=tfds_dir, sample_rate=8000)
    with pytest.raises(ConfigError, match="pass dataset_sample_rate"):
        TfdsSource("csc_tiny_speech", "train", data_dir=tfds_dir, sample_rate=8000)


# ------------------------------------------------------------------------- make_source


def _config(**data) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.data = ml_collections.ConfigDict(
        {
            "source": "folder",
            "sample_rate": 8000,
            "cache_dir": "",
            "folder": {"train_root": "", "test_root": ""},
            "tfds": {
                "name": "",
                "train_split": "train",
                "data_dir": "",
                "audio_key": "speech",
                "speaker_key": "speaker_id",
            },
        }
    )
    c.data.update(data)
    return c


def test_make_source_dispatch(vox: Path, tfds_dir: Path, tmp_path: Path) -> None:
    config = _config(source="folder", folder={"train_root": str(vox), "test_root": ""})
    assert make_source(config, "train").keys == FolderSource(vox, 8000).keys
    with pytest.raises(ConfigError, match="config.data.folder.test_root"):
        make_source(config, "test")
    with pytest.raises(ConfigError, match="'synthetic', 'folder', 'tfds'"):
        make_source(_config(source="wav"), "train")
    config = _config(source="tfds", cache_dir=str(tmp_path))
    config.data.tfds.name = "csc_tiny_speech"
    config.data.tfds.data_dir = str(tfds_dir)
    config.data.tfds.dataset_sample_rate = 16000
    assert len(make_source(config, "train")) == 6


# A synthetic corpus small enough to generate in a test: 3 training speakers x 2 utterances.
TINY_SYNTHETIC = {
    "seed": 1,
    "num_train_speakers": 3,
    "num_test_speakers": 2,
    "train_utterances_per_speaker": 2,
    "test_utterances_per_speaker": 2,
    "num_val_speakers": 2,
    "val_utterances_per_speaker": 2,
    "min_seconds": 0.25,
    "max_seconds": 0.3,
}


def test_make_source_synthetic(tmp_path: Path) -> None:
    config = _config(source="synthetic", cache_dir=str(tmp_path))
    config.data.synthetic = ml_collections.ConfigDict(TINY_SYNTHETIC)
    src = make_source(config, "train")
    corpus = synthetic.load_or_generate(config.data.synthetic, "train", 8000, str(tmp_path))
    assert isinstance(src, SyntheticSource) and src.keys == list(corpus.keys)
    assert len(set(src.speakers)) == 3
    np.testing.assert_array_equal(src[0], corpus.waveforms[0])


def test_make_source_mixed_trains_on_both_and_tests_on_the_primary(vox: Path, tmp_path: Path):
    config = _config(source="mixed", cache_dir=str(tmp_path))
    config.data.folder.test_root = str(vox)
    config.data.mixed = ml_collections.ConfigDict(
        {"train": "folder:3,synthetic:1", "primary": "folder"}
    )
    config.data.folder.train_root = str(vox)
    config.data.synthetic = ml_collections.ConfigDict(TINY_SYNTHETIC)
    train = make_source(config, "train")
    assert isinstance(train, sources.MixedSource) and len(train) == 3 + 6
    assert train.keys[0] == "folder/id10270/8jEAjG6SegY/00002.wav"
    assert train.keys[3].startswith("synthetic/") and len(set(train.speakers)) == 2 + 3
    np.testing.assert_array_equal(
        train[4],
        make_source(
            _config(source="synthetic", cache_dir=str(tmp_path), synthetic=config.data.synthetic),
            "train",
        )[1],
    )
    assert train.weights == [0.75, 0.25]
    test = make_source(config, "test")
    assert isinstance(test, FolderSource) and test.keys == FolderSource(vox, 8000).keys


def test_references_of_a_mixed_config_are_fit_on_its_primary_corpus(vox: Path, tmp_path: Path):
    """The references' z-scoring sample comes from the test data's corpus, not the training
    mix, so a mix and its primary corpus alone get the same references on one test set."""
    from csc_jax.evaluation.verification import reference_waveforms

    mixed = _config(source="mixed", cache_dir=str(tmp_path))
    mixed.data.folder = ml_collections.ConfigDict({"train_root": str(vox), "test_root": str(vox)})
    mixed.data.mixed = ml_collections.ConfigDict(
        {"train": "folder:1,synthetic:3", "primary": "folder"}
    )
    mixed.data.synthetic = ml_collections.ConfigDict(TINY_SYNTHETIC)
    mixed.eval = ml_collections.ConfigDict({"seconds": 0.5, "seed": 0})
    alone = mixed.copy_and_resolve_references()
    alone.data.source = "folder"
    got, want = reference_waveforms(mixed), reference_waveforms(alone)
    assert got.shape == (3, 4000)
    np.testing.assert_array_equal(got, want)
