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
from csc_jax.evaluation.noise import NoiseFolder

RATE = 8000
T = 4000


class _FakeSource:
    """Minimal AudioSource: 3 speakers x 2 utterances of distinct sinusoids."""

    def __init__(self):
        self.keys = [f"spk{s}/u{u}.wav" for s in range(3) for u in range(2)]
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


def test_interferer_is_neither_enrollment_nor_test_speaker_and_trials_are_independent():
    source = _FakeSource()
    audio = verification._Audio(source, T)
    cond = cond_lib.Condition("speech", 0.0)
    full = verification.corrupted_tests(audio, TRIALS, cond, 3, seed=11)
    again = verification.corrupted_tests(audio, TRIALS, cond, 3, seed=11)
    np.testing.assert_array_equal(full, again)
    other_seed = verification.corrupted_tests(audio, TRIALS, cond, 3, seed=12)
    assert not np.array_equal(full, other_seed)
    for n, t in enumerate(TRIALS):
        added = full[n] - audio(t.test)
        excluded = {t.enroll.split("/")[0], t.test.split("/")[0]}
        matches = [
            i for i, k in enumerate(source.keys) if abs(np.corrcoef(added, audio(i))[0, 1]) > 0.999
        ]
        assert len(matches) == 1 and source.speakers[matches[0]] not in excluded


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
    audio = verification._Audio(_FakeSource(), T)
    cond = cond_lib.Condition("noise", 5.0)
    colored = verification.corrupted_tests(audio, TRIALS, cond, 1, seed=3)
    recorded = verification.corrupted_tests(audio, TRIALS, cond, 1, seed=3, noise=bank)
    assert not np.allclose(colored, recorded)
    np.testing.assert_array_equal(
        recorded, verification.corrupted_tests(audio, TRIALS, cond, 1, seed=3, noise=bank)
    )
    for n, t in enumerate(TRIALS):
        clean = audio(t.test)
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
