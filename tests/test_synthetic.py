"""Tests for the embedded procedural corpus (the csc_jax/data/synthetic package)."""

import hashlib
import math
import os
import pathlib
import warnings

import ml_collections
import numpy as np
import pytest
import soundfile

from csc_jax.data import synthetic
from csc_jax.data.synthetic import cache as corpus_cache

SR = 8000
SMALL = {
    "seed": 11,
    "num_train_speakers": 6,
    "num_test_speakers": 3,
    "train_utterances_per_speaker": 3,
    "test_utterances_per_speaker": 3,
    "num_val_speakers": 2,
    "val_utterances_per_speaker": 2,
    "min_seconds": 1.0,
    "max_seconds": 1.0,
}


def small(**overrides) -> dict:
    return {**SMALL, **overrides}


def digest(corpus: synthetic.Corpus) -> str:
    h = hashlib.sha256()
    for key, wave in zip(corpus.keys, corpus.waveforms, strict=True):
        h.update(key.encode())
        h.update(np.ascontiguousarray(wave).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def train() -> synthetic.Corpus:
    return synthetic.generate_corpus(SMALL, "train", SR)


@pytest.fixture(scope="module")
def test_split() -> synthetic.Corpus:
    return synthetic.generate_corpus(SMALL, "test", SR)


# ---------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes(train):
    again = synthetic.generate_corpus(dict(SMALL), "train", SR)
    assert digest(again) == digest(train)


def test_config_dict_params_match_plain_dict(train):
    config = ml_collections.ConfigDict(dict(SMALL))
    assert digest(synthetic.generate_corpus(config, "train", SR)) == digest(train)


def test_different_seed_gives_different_audio(train):
    other = synthetic.generate_corpus(small(seed=12), "train", SR)
    assert other.keys == train.keys
    assert digest(other) != digest(train)
    assert not any(
        np.array_equal(a, b) for a, b in zip(other.waveforms, train.waveforms, strict=True)
    )


def test_subset_matches_full_corpus(train):
    subset = synthetic.generate_corpus(
        small(num_train_speakers=2, train_utterances_per_speaker=2), "train", SR
    )
    full = dict(zip(train.keys, train.waveforms, strict=True))
    assert len(subset.keys) == 4
    for key, wave in zip(subset.keys, subset.waveforms, strict=True):
        np.testing.assert_array_equal(wave, full[key])


def test_generation_order_does_not_matter(train):
    # Reverse order, and with unrelated utterances generated in between.
    n_utt = SMALL["train_utterances_per_speaker"]
    for index in reversed(range(len(train.keys))):
        synthetic.synthesize_utterance(99, "test", 0, 0, SR, min_seconds=1.0, max_seconds=1.0)
        wave = synthetic.synthesize_utterance(
            SMALL["seed"],
            "train",
            index // n_utt,
            index % n_utt,
            SR,
            min_seconds=1.0,
            max_seconds=1.0,
        )
        np.testing.assert_array_equal(wave, train.waveforms[index])


def test_test_split_independent_of_train_speaker_count(test_split):
    more_train = synthetic.generate_corpus(small(num_train_speakers=9), "test", SR)
    for a, b in zip(more_train.waveforms, test_split.waveforms, strict=True):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------- layout
def test_keys_speakers_and_sessions(train):
    assert train.sample_rate == SR
    assert len(train.keys) == len(train.speakers) == len(train.waveforms) == 18
    assert len(set(train.keys)) == len(train.keys)
    assert train.keys[:4] == [
        "spk0000/sess00/utt000.wav",
        "spk0000/sess01/utt001.wav",
        "spk0000/sess02/utt002.wav",
        "spk0001/sess00/utt000.wav",
    ]
    for key, speaker in zip(train.keys, train.speakers, strict=True):
        assert key.split("/")[0] == speaker


def test_train_and_test_speakers_are_disjoint(train, test_split):
    assert set(train.speakers).isdisjoint(test_split.speakers)
    assert test_split.speakers[0] == "spk0006"  # numbered after the 6 train speakers
    # Different voice seeds, not just different names.
    for index in range(3):
        train_voice = synthetic.speaker_voice(SMALL["seed"], "train", index)
        test_voice = synthetic.speaker_voice(SMALL["seed"], "test", index)
        assert train_voice.f0 != test_voice.f0
        assert train_voice.tract != test_voice.tract
    train_audio = {w.tobytes() for w in train.waveforms}
    assert not any(w.tobytes() in train_audio for w in test_split.waveforms)


def test_lengths_are_within_bounds():
    corpus = synthetic.generate_corpus(
        small(num_train_speakers=4, min_seconds=0.5, max_seconds=1.5), "train", SR
    )
    lengths = [len(w) for w in corpus.waveforms]
    assert min(lengths) >= math.ceil(0.5 * SR)
    assert max(lengths) <= math.floor(1.5 * SR)
    assert len(set(lengths)) > 1


@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_waveforms_are_sane(sample_rate):
    corpus = synthetic.generate_corpus(
        small(num_train_speakers=4, min_seconds=0.25, max_seconds=2.0), "train", sample_rate
    )
    assert corpus.sample_rate == sample_rate
    for key, wave in zip(corpus.keys, corpus.waveforms, strict=True):
        assert wave.dtype == np.float32 and wave.ndim == 1, key
        assert np.all(np.isfinite(wave)), key
        assert np.sqrt(np.mean(wave.astype(np.float64) ** 2)) > 0.01, key  # not silent
        peak = np.max(np.abs(wave))
        assert peak < 0.96, key  # no clipping: peaks are limited to 0.95
        # Not a few huge spikes either: a healthy crest factor for speech.
        assert peak / np.sqrt(np.mean(wave.astype(np.float64) ** 2)) < 20.0, key
        pcm = wave * np.float32(32768)
        np.testing.assert_array_equal(pcm, np.round(pcm))  # 16-bit grid


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("split", ["dev", "Train", ""])
def test_unknown_split_is_rejected(split):
    with pytest.raises(ValueError, match=repr(split)):
        synthetic.generate_corpus(SMALL, split, SR)


def test_unknown_param_key_is_rejected():
    with pytest.raises(ValueError, match="num_speakers"):
        synthetic.generate_corpus(small(num_speakers=3), "train", SR)


@pytest.mark.parametrize("key", synthetic.PARAM_KEYS)
def test_missing_param_key_is_rejected(key):
    params = dict(SMALL)
    del params[key]
    with pytest.raises(ValueError, match=key):
        synthetic.generate_corpus(params, "train", SR)


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("seed", -1, ValueError),
        ("num_train_speakers", 0, ValueError),
        ("test_utterances_per_speaker", 1.5, TypeError),
        ("min_seconds", "1", TypeError),
        ("max_seconds", 0.1, ValueError),
        ("min_seconds", 2.0, ValueError),  # above max_seconds
    ],
)
def test_bad_param_values_are_rejected(key, value, error):
    with pytest.raises(error, match=key):
        synthetic.generate_corpus(small(**{key: value}), "train", SR)


def test_low_sample_rate_is_rejected():
    with pytest.raises(ValueError, match="4000"):
        synthetic.generate_corpus(SMALL, "train", 4000)


# ---------------------------------------------------------------------------- voices
def test_voice_population_covers_ranges_and_has_hard_pairs():
    voices = [synthetic.speaker_voice(1234, "train", i) for i in range(200)]
    f0 = np.array([v.f0 for v in voices])
    tract = np.array([v.tract for v in voices])
    assert f0.min() < 100 and f0.max() > 240
    assert tract.min() < 0.9 and tract.max() > 1.2
    assert np.all((f0 >= 78) & (f0 <= 310))
    # Sibling pairs: near-identical pitch and tract length.
    close = [
        i
        for i in range(1, 200, 2)
        if abs(math.log(f0[i] / f0[i - 1])) < 0.15 and abs(math.log(tract[i] / tract[i - 1])) < 0.06
    ]
    assert 10 <= len(close) <= 60


def _f0_estimate(wave: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch (Hz) over the loudest frames."""
    n = 400
    frames = np.lib.stride_tricks.sliding_window_view(wave.astype(np.float64), n)[::200]
    energy = np.sum(frames**2, axis=1)
    estimates = []
    for frame in frames[energy > np.percentile(energy, 60)]:
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lo, hi = sr // 400, sr // 60
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            estimates.append(sr / lag)
    return float(np.median(estimates))


def test_voice_pitch_is_realised(train):
    for index in range(SMALL["num_train_speakers"]):
        voice = synthetic.speaker_voice(SMALL["seed"], "train", index)
        name = synthetic.speaker_name(index)
        waves = [w for w, s in zip(train.waveforms, train.speakers, strict=True) if s == name]
        estimate = np.median([_f0_estimate(w, SR) for w in waves])
        assert abs(math.log(estimate / voice.f0)) < math.log(1.25), (name, voice.f0, estimate)


def _mean_log_spectrum(wave: np.ndarray) -> np.ndarray:
    n = 256
    frames = np.lib.stride_tricks.sliding_window_view(wave.astype(np.float64), n)[::128]
    power = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2
    energy = power.sum(axis=1)
    log_spectrum = np.log(power[energy > np.median(energy)].mean(axis=0) + 1e-10)
    return log_spectrum - log_spectrum.mean()  # level-independent


def test_speakers_are_distinguishable_while_utterances_differ():
    corpus = synthetic.generate_corpus(
        small(seed=7, num_train_speakers=8, train_utterances_per_speaker=4, max_seconds=1.5),
        "train",
        SR,
    )
    features = np.array([_mean_log_spectrum(w) for w in corpus.waveforms])
    speakers = np.array(corpus.speakers)
    distance = np.linalg.norm(features[:, None] - features[None], axis=-1)
    same = speakers[:, None] == speakers[None]
    off_diagonal = ~np.eye(len(speakers), dtype=bool)
    within = distance[same & off_diagonal].mean()
    between = distance[~same].mean()
    assert within < 0.8 * between, (within, between)
    # Content varies within a speaker: same-speaker utterances are different signals.
    assert distance[same & off_diagonal].min() > 0.05 * between
    first = [w for w, s in zip(corpus.waveforms, corpus.speakers, strict=True) if s == "spk0000"]
    n = min(len(w) for w in first)
    assert abs(np.corrcoef(first[0][:n], first[1][:n])[0, 1]) < 0.3


# ---------------------------------------------------------------------------- cache
def test_cache_path_layout_and_hash(tmp_path):
    path = synthetic.cache_path(SMALL, "train", SR, tmp_path)
    assert path.parent == tmp_path / "synthetic"
    assert path.name.startswith("train-") and path.suffix == ".npz"
    # Equal values hash alike whatever their types; any change gives another file.
    same = synthetic.cache_path(small(min_seconds=1, max_seconds=1), "train", SR, tmp_path)
    assert same == path
    assert synthetic.cache_path(small(seed=12), "train", SR, tmp_path) != path
    assert synthetic.cache_path(SMALL, "test", SR, tmp_path).name.startswith("test-")
    assert synthetic.cache_path(SMALL, "train", 16000, tmp_path) != path


def test_cache_hit_returns_identical_data_without_regenerating(tmp_path, monkeypatch, train):
    first = synthetic.load_or_generate(SMALL, "train", SR, tmp_path)
    assert digest(first) == digest(train)
    path = synthetic.cache_path(SMALL, "train", SR, tmp_path)
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary files left

    def fail(*args, **kwargs):
        raise AssertionError("generate_corpus called on a cache hit")

    monkeypatch.setattr(corpus_cache, "generate_corpus", fail)
    second = synthetic.load_or_generate(ml_collections.ConfigDict(SMALL), "train", SR, tmp_path)
    assert digest(second) == digest(train)
    assert second.keys == train.keys and second.speakers == train.speakers
    assert second.sample_rate == SR
    assert all(w.dtype == np.float32 for w in second.waveforms)


def test_corrupt_cache_warns_and_regenerates(tmp_path, train):
    path = synthetic.cache_path(SMALL, "train", SR, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not really a zip file")
    with pytest.warns(RuntimeWarning, match=path.name):
        corpus = synthetic.load_or_generate(SMALL, "train", SR, tmp_path)
    assert digest(corpus) == digest(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert digest(synthetic.load_or_generate(SMALL, "train", SR, tmp_path)) == digest(train)


def test_cache_with_mismatched_content_is_not_trusted(tmp_path, train):
    # A valid npz for other params copied to this name (e.g. by hand) must not be returned.
    other_dir = tmp_path / "other"
    synthetic.load_or_generate(small(seed=12), "train", SR, other_dir)
    path = synthetic.cache_path(SMALL, "train", SR, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(synthetic.cache_path(small(seed=12), "train", SR, other_dir).read_bytes())
    with pytest.warns(RuntimeWarning, match="do not match"):
        corpus = synthetic.load_or_generate(SMALL, "train", SR, tmp_path)
    assert digest(corpus) == digest(train)


def test_failed_cache_write_leaves_no_file(tmp_path, monkeypatch):
    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        synthetic.load_or_generate(SMALL, "train", SR, tmp_path)
    assert list((tmp_path / "synthetic").iterdir()) == []


# ---------------------------------------------------------------------------- wav tree
def test_save_wav_tree_is_lossless(tmp_path, test_split):
    root = synthetic.save_wav_tree(test_split, tmp_path / "wavs")
    assert root == pathlib.Path(tmp_path / "wavs")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.wav"))
    assert files == sorted(test_split.keys)
    for key, wave in zip(test_split.keys, test_split.waveforms, strict=True):
        data, rate = soundfile.read(root / key, dtype="float32")
        assert rate == SR
        assert soundfile.info(root / key).subtype == "PCM_16"
        np.testing.assert_array_equal(data, wave)
