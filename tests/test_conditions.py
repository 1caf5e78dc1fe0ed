"""Evaluation conditions: levels, determinism, interferer choice and recorded noise."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest
import soundfile as sf

from csc_jax.data.trials import Trial
from csc_jax.errors import DataError
from csc_jax.evaluation import conditions as cond_lib
from csc_jax.evaluation import verification
from csc_jax.evaluation.eval_set import EvalSet
from csc_jax.evaluation.noise import NoiseFolder

RATE = 8000
T = 4000


class _FakeSource:
    """Minimal AudioSource: ``speakers`` speakers x 2 utterances of distinct sinusoids."""

    def __init__(self, speakers: int = 3):
        self.keys = [f"spk{s}/u{u}.wav" for s in range(speakers) for u in range(2)]
        self.speakers = [k.split("/")[0] for k in self.keys]
        t = np.arange(T) / RATE
        self._audio = [
            (0.1 * (i + 1) * np.sin(2 * np.pi * (200 + 90 * i) * t)).astype(np.float32)
            for i in range(len(self.keys))
        ]

    def index_of(self, key):
        return self.keys.index(key)

    def __getitem__(self, i):
        return self._audio[i]


TRIALS = [
    Trial(1, "spk0/u0.wav", "spk0/u1.wav"),
    Trial(0, "spk0/u0.wav", "spk1/u0.wav"),
    Trial(1, "spk2/u0.wav", "spk2/u1.wav"),
]


def _snr_db(clean, corrupted):
    other = corrupted - clean
    return 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(other**2))


def test_condition_names_follow_the_config():
    ev = ml_collections.ConfigDict({"noise_snr_db": (10.0, 0.0), "interferer_sir_db": (5.0,)})
    names = [c.name for c in cond_lib.conditions_from_config(ev)]
    assert names == ["clean", "SNR 10 dB", "SNR 0 dB", "SIR 5 dB"]


@pytest.mark.parametrize("level", [-5.0, 0.0, 7.5])
def test_corrupt_sets_the_requested_snr_and_sir(level):
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(T).astype(np.float32)
    noisy = cond_lib.corrupt(clean, cond_lib.Condition("noise", level), rng)
    assert _snr_db(clean, noisy) == pytest.approx(level, abs=1e-3)
    other = rng.standard_normal(T).astype(np.float32) * 3
    mixed = cond_lib.corrupt(clean, cond_lib.Condition("speech", level), rng, interferer=other)
    assert _snr_db(clean, mixed) == pytest.approx(level, abs=1e-3)
    with pytest.raises(ValueError, match="interferer"):
        cond_lib.corrupt(clean, cond_lib.Condition("speech", 0.0), rng)


def _added_source(source, es, added):
    """Index of the one source utterance whose waveform ``added`` is (scaled)."""
    matches = [
        i for i in range(len(source.keys)) if abs(np.corrcoef(added, es.audio(i))[0, 1]) > 0.999
    ]
    assert len(matches) == 1
    return matches[0]


def test_each_test_utterance_is_corrupted_once_per_condition_deterministically():
    """Per-utterance corruption: the same audio whatever trials an utterance is in, the same
    for the same seed, different for another seed; one interferer per utterance for every
    SIR, whose speaker is neither the utterance's nor any speaker it is scored against."""
    source = _FakeSource(speakers=5)
    trials = TRIALS + [Trial(0, "spk3/u0.wav", "spk0/u1.wav")]
    es = EvalSet(source, trials, T, seed=11)
    cond = cond_lib.Condition("speech", 0.0)
    full = es.tests(cond, 3)
    assert full.shape == (len(es.test_keys), T)
    np.testing.assert_array_equal(full, EvalSet(source, trials, T, seed=11).tests(cond, 3))
    assert not np.array_equal(full, EvalSet(source, trials, T, seed=12).tests(cond, 3))
    # A subset of the trials gives the same audio for the utterances they keep.
    sub = EvalSet(source, trials[2:], T, seed=11)
    for row, key in enumerate(sub.test_keys):
        np.testing.assert_array_equal(sub.tests(cond, 3)[row], full[es.test_keys.index(key)])
    # The same interferer at another SIR.
    louder = es.tests(cond_lib.Condition("speech", 5.0), 4)
    for row, key in enumerate(es.test_keys):
        clean = es.audio(key)
        assert _added_source(source, es, full[row] - clean) == _added_source(
            source, es, louder[row] - clean
        )
    scored_against = {}
    for t in trials:
        scored_against.setdefault(t.test, set()).add(t.enroll.split("/")[0])
    for row, key in enumerate(es.test_keys):
        spk = source.speakers[_added_source(source, es, full[row] - es.audio(key))]
        assert spk != key.split("/")[0] and spk not in scored_against[key]
    assert es.interferer_conflicts == 0


def test_tiny_test_set_falls_back_and_counts_interferer_conflicts():
    """With 2 speakers no interferer avoids the enrolled speaker of a non-target trial: the
    test speaker is still excluded, and the conflicting trials are counted."""
    source = _FakeSource(speakers=2)
    trials = [Trial(1, "spk0/u0.wav", "spk0/u1.wav"), Trial(0, "spk0/u0.wav", "spk1/u1.wav")]
    es = EvalSet(source, trials, T, seed=0)
    assert es.interferer_conflicts == 1
    assert source.speakers[es.interferer["spk1/u1.wav"]] == "spk0"
    assert source.speakers[es.interferer["spk0/u1.wav"]] == "spk1"


def _write_noise_folder(root):
    (root / "a").mkdir(parents=True)
    rng = np.random.default_rng(1)
    # stereo 16 kHz, 1 s (resampled and downmixed) and a short mono 8 kHz file (wrapped)
    sf.write(root / "a" / "hum.flac", rng.standard_normal((16000, 2)) * 0.1, 16000)
    sf.write(root / "z_short.wav", rng.standard_normal(1000) * 0.2, RATE)
    (root / "notes.txt").write_text("not audio")
    return root


def test_noise_folder_lists_samples_deterministically_and_wraps_short_files(tmp_path):
    bank = NoiseFolder(_write_noise_folder(tmp_path / "noise"), RATE)
    assert [p.rsplit("/", 1)[-1] for p in bank.files] == ["hum.flac", "z_short.wav"]
    a = bank.sample(np.random.default_rng([0, 1]), T)
    b = bank.sample(np.random.default_rng([0, 1]), T)
    assert a.shape == (T,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    short = bank._load(1)
    assert short.shape == (1000,)
    drawn = [bank.sample(np.random.default_rng(s), T) for s in range(20)]
    wrapped = [x for x in drawn if np.array_equal(x[:1000], short)]
    assert wrapped, "the short file was never drawn"
    np.testing.assert_array_equal(wrapped[0][1000:2000], short)


def test_noise_folder_bad_inputs_name_the_path(tmp_path):
    with pytest.raises(DataError, match="noise_root=.*missing_dir"):
        NoiseFolder(tmp_path / "missing_dir", RATE)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="noise_root=.*empty"):
        NoiseFolder(tmp_path / "empty", RATE)
    (tmp_path / "silent").mkdir()
    sf.write(tmp_path / "silent" / "zeros.wav", np.zeros(800), RATE)
    bank = NoiseFolder(tmp_path / "silent", RATE)
    with pytest.raises(ValueError, match="zeros.wav"):
        bank.sample(np.random.default_rng(0), T)


def test_recorded_noise_replaces_colored_noise_at_the_same_snr(tmp_path):
    bank = NoiseFolder(_write_noise_folder(tmp_path / "noise"), RATE)
    cond = cond_lib.Condition("noise", 5.0)
    colored = EvalSet(_FakeSource(), TRIALS, T, seed=3).tests(cond, 1)
    es = EvalSet(_FakeSource(), TRIALS, T, seed=3, noise=bank)
    recorded = es.tests(cond, 1)
    assert not np.allclose(colored, recorded)
    np.testing.assert_array_equal(recorded, es.tests(cond, 1))
    for n, key in enumerate(es.test_keys):
        clean = es.audio(key)
        assert _snr_db(clean, recorded[n]) == pytest.approx(5.0, abs=1e-3)
        added = recorded[n] - clean
        # the added signal is a scaled window of one of the recordings
        hits = []
        for i in range(len(bank)):
            x = np.resize(bank._load(i), 3 * T)
            for start in range(0, x.shape[0] - T + 1):
                seg = x[start : start + T]
                if abs(np.corrcoef(added, seg)[0, 1]) > 0.9999:
                    hits.append((i, start))
                    break
        assert hits, f"trial {n}: added noise is not a window of a recording"


def test_noise_bank_from_config(tmp_path):
    config = ml_collections.ConfigDict(
        {"data": {"sample_rate": RATE, "folder": {"noise_root": ""}}}
    )
    assert verification.noise_bank(config) is None
    config.data.folder.noise_root = str(_write_noise_folder(tmp_path / "n"))
    assert len(verification.noise_bank(config)) == 2
