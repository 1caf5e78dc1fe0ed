"""Training augmentations for transfer: what each one changes, and that the stream stays a
pure function of (seed, position) with them on (csc_jax/data/augmentation.py, pipeline.py,
sources/mixed.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.signal

from csc_jax.config import base_config, validate_config
from csc_jax.data import augmentation, pipeline
from csc_jax.data.augmentation import Augmentation
from csc_jax.data.sources import MixedSource, SyntheticSource
from csc_jax.data.synthetic.corpus import Corpus
from csc_jax.errors import ConfigError, DataError

FS = 8000
T = 800  # 0.1 s crops
K = 3


def _source(waves: list[np.ndarray], rate: int = FS, prefix: str = "spk") -> SyntheticSource:
    keys = [f"{prefix}{u}/s/{u:03d}.wav" for u in range(len(waves))]
    return SyntheticSource(Corpus(waves, keys, [k.split("/")[0] for k in keys], rate))


# Utterance u is a sinusoid at TONES[u] Hz: a crop's spectral peak tells its utterance and speed.
TONES = [250.0 + 130.0 * u for u in range(8)]
# Lengths: long ones take the windowed-read path, the last one (shorter than T) the tiled one.
TONE_LENGTHS = [4 * FS] * 7 + [600]
TONE_SOURCE = _source(
    [
        np.sin(2 * np.pi * f * np.arange(n) / FS).astype(np.float32)
        for f, n in zip(TONES, TONE_LENGTHS, strict=True)
    ]
)


def _peaks(x: np.ndarray, rate: int = FS, rel: float = 0.2) -> np.ndarray:
    """Frequencies (Hz) of the local maxima of |rfft| above `rel` of the largest (zero-padded,
    Hann window: about 1 Hz resolution on 0.1 s)."""
    n = 8 * rate
    mag = np.abs(np.fft.rfft(x * np.hanning(x.shape[0]), n))
    idx, _ = scipy.signal.find_peaks(mag, height=rel * mag.max(), distance=20 * n // rate)
    return idx * rate / n


def _band_share(x: np.ndarray, low: float, high: float, rate: int = FS) -> float:
    """Share of x's energy between `low` and `high` Hz."""
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.shape[0], 1 / rate)
    return float(p[(f >= low) & (f < high)].sum() / p.sum())


def _batches(source, aug, n=2, seed=0, batch_size=4, **kwargs):
    it = pipeline.make_train_iterator(
        source,
        batch_size=batch_size,
        num_conditions=K,
        segment_samples=T,
        seed=seed,
        augment=aug,
        **kwargs,
    )
    return list(itertools.islice(it, n))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturb_moves_f0_and_envelope_peak_by_the_factor(factor):
    rate, f0, formant = 16000, 200.0, 1000.0
    t = np.arange(rate) / rate
    harmonics = np.arange(1, 30)
    amps = np.exp(-(((harmonics * f0 - formant) / 300.0) ** 2)) + 0.05
    wave = sum(a * np.sin(2 * np.pi * h * f0 * t) for h, a in zip(harmonics, amps, strict=True))
    out = augmentation.speed_perturb(wave.astype(np.float32), factor)
    assert out.dtype == np.float32 and out.shape == (round(rate / factor),)
    before, after = _peaks(wave, rate, rel=0.01), _peaks(out, rate, rel=0.01)
    assert after[0] == pytest.approx(factor * before[0], rel=0.01)  # f0: the lowest harmonic

    def envelope_peak(x):  # the strongest harmonic: where the spectral envelope peaks
        mag = np.abs(np.fft.rfft(x, 8 * rate))
        return np.argmax(mag) / 8

    assert envelope_peak(wave) == pytest.approx(formant, rel=0.01)
    assert envelope_peak(out) == pytest.approx(factor * formant, rel=0.01)
    assert augmentation.speed_perturb(wave, 1.0) is wave


def test_views_share_the_speed_factor_and_interferers_draw_their_own():
    factors = (0.8, 1.25)
    aug = Augmentation(speed_factors=factors)
    candidates = np.array([[a * f for a in factors] for f in TONES])  # (utterance, factor)

    def which(crop):
        (peak,) = _peaks(crop)
        u, a = np.unravel_index(np.argmin(np.abs(candidates - peak)), candidates.shape)
        assert abs(candidates[u, a] - peak) < 0.01 * peak
        return int(u), int(a)

    target_factors, mixed_interferers = set(), 0
    for batch in _batches(TONE_SOURCE, aug, n=4):
        assert batch["target"].shape == batch["interferer"].shape == (4, K, T)
        for b in range(4):
            views = {which(v) for v in batch["target"][b]}
            assert len(views) == 1  # one utterance, one factor for the K views
            target_factors |= {a for _, a in views}
            inter = [which(v) for v in batch["interferer"][b]]
            assert all(u != next(iter(views))[0] for u, _ in inter)
            mixed_interferers += len({a for _, a in inter}) > 1
    assert target_factors == {0, 1} and mixed_interferers > 0


def test_biquads_have_their_gains():
    rate = 16000
    freqs = np.array([50.0, 1000.0, 7500.0])

    def gain_db(sos):
        _, h = scipy.signal.sosfreqz(sos, worN=freqs, fs=rate)
        return 20 * np.log10(np.abs(h))

    np.testing.assert_allclose(
        gain_db(augmentation.peaking_sos(1000, 6, 1, rate)), [0, 6, 0], atol=0.1
    )
    np.testing.assert_allclose(
        gain_db(augmentation.shelf_sos("low", 200, -6, rate)), [-6, 0, 0], atol=0.3
    )
    np.testing.assert_allclose(
        gain_db(augmentation.shelf_sos("high", 3000, 4, rate)), [0, 0, 4], atol=0.3
    )


def test_eq_and_band_limits_change_the_spectrum_where_expected():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(FS).astype(np.float32)
    level = np.sqrt(np.mean(noise**2))
    eq = Augmentation(eq_prob=1.0, eq_gain_db=9.0)
    out = augmentation.random_channel(noise, eq, FS, np.random.default_rng(1))
    assert np.sqrt(np.mean(out**2)) == pytest.approx(level, rel=1e-3)  # level kept
    bands = [(100, 500), (500, 1500), (1500, 3500)]
    change = [10 * np.log10(_band_share(out, *b) / _band_share(noise, *b)) for b in bands]
    assert max(np.abs(change)) > 1.0 and max(np.abs(change)) < 3 * 9.0 + 6
    limited = Augmentation(band_limit_prob=1.0, highpass_hz=(500, 500), lowpass_hz=(2000, 2000))
    out = augmentation.random_channel(noise, limited, FS, np.random.default_rng(1))
    assert _band_share(out, 0, 250) < 0.01 and _band_share(out, 3000, FS / 2) < 0.01
    assert _band_share(out, 500, 2000) > 0.85
    off = Augmentation()
    assert augmentation.random_channel(noise, off, FS, np.random.default_rng(1)) is noise


def test_telephone_band_and_mulaw_codec():
    rate = 16000
    noise = np.random.default_rng(0).standard_normal(rate).astype(np.float32)
    out = augmentation.telephone(noise, rate, mulaw=False)
    assert _band_share(noise, 0, 300, rate) > 0.03 and _band_share(noise, 3400, 8000, rate) > 0.5
    assert _band_share(out, 0, 200, rate) < 0.005 and _band_share(out, 4000, 8000, rate) < 0.005
    coded = augmentation.mulaw_codec(out)
    assert len(np.unique(coded)) <= 255
    snr = 10 * np.log10(np.sum(out**2) / np.sum((coded - out) ** 2))
    assert 20 < snr < 45  # audible but coarse: a codec, not a no-op


def test_reverb_lengthens_the_energy_decay():
    rate = 16000
    rng = np.random.default_rng(0)
    rir = augmentation.synthetic_rir(0.5, 3.0, rate, rng)
    assert rir.shape == (8000,) and rir[0] == 1.0
    tail = rir[1:] ** 2
    assert 10 * np.log10(tail.sum()) == pytest.approx(-3.0, abs=1e-3)  # direct-to-reverberant
    first, last = tail[:400].mean(), tail[-400:].mean()
    assert 10 * np.log10(first / last) > 45  # about 60 dB over RT60
    burst = np.zeros(rate, np.float32)
    burst[:800] = rng.standard_normal(800)
    wet = augmentation.reverberate(burst, rir)
    after = lambda x, a, b: float(np.sum(x[800 + a : 800 + b] ** 2))  # noqa: E731
    assert after(burst, 0, 3200) == 0.0 and after(wet, 0, 3200) > 1e-2 * np.sum(burst**2)
    assert after(wet, 0, 1600) > 10 * after(wet, 4800, 6400)  # and it decays


@pytest.mark.parametrize(("speakers", "counts"), [((3, 3), {3}), ((2, 4), {2, 3, 4})])
def test_babble_sums_the_drawn_number_of_other_utterances(speakers, counts):
    aug = Augmentation(babble_prob=1.0, babble_speakers=speakers)
    long_source = _source([TONE_SOURCE[u] for u in range(7)])
    seen = set()
    for batch in _batches(long_source, aug, n=3):
        for b in range(4):
            (target,) = {round(p) for v in batch["target"][b] for p in _peaks(v)}
            for v in batch["interferer"][b]:
                peaks = _peaks(v, rel=0.3)
                seen.add(len(peaks))
                assert all(min(abs(p - np.array(TONES))) < 3 for p in peaks)
                assert all(abs(p - target) > 3 for p in peaks)
    assert seen == counts


def _mixed(weights=(0.7, 0.3)) -> MixedSource:
    # Component 0: positive constant utterances, component 1: negative; sign tells the corpus.
    a = _source([np.full(300 + 10 * u, u + 1.0, np.float32) for u in range(10)], prefix="a")
    b = _source([np.full(400, -(u + 1.0), np.float32) for u in range(30)], prefix="b")
    return MixedSource([("a", a, weights[0]), ("b", b, weights[1])])


def test_mixed_source_draws_corpora_in_proportion_to_the_weights():
    source = _mixed()
    table = source.epoch_table
    assert set(table) == set(range(40))  # every utterance once per epoch at least
    assert np.mean(table < 10) == pytest.approx(0.7, abs=0.01)
    it = pipeline.make_train_iterator(
        source, batch_size=10, num_conditions=K, segment_samples=64, seed=3
    )
    # 200 positions: two epochs of the 100-slot table (exactly 70 % corpus a), 600 interferers.
    batches = list(itertools.islice(it, 20))
    targets = np.concatenate([x["target"][:, 0, 0] for x in batches])  # one per example
    interferers = np.concatenate([x["interferer"][..., 0].ravel() for x in batches])
    for name, first in (("target", targets), ("interferer", interferers)):
        share, n = np.mean(first > 0), first.size
        assert abs(share - 0.7) < 3 * np.sqrt(0.7 * 0.3 / n), (name, share)
    with pytest.raises(DataError, match="one sample rate .*a 8000 Hz, b 16000 Hz"):
        MixedSource(
            [
                ("a", _source([np.ones(9, np.float32)] * 2), 1.0),
                ("b", _source([np.ones(9, np.float32)] * 2, 16000), 1.0),
            ]
        )


ALL_ON = Augmentation(
    speed_range=(0.85, 1.15),
    eq_prob=0.7,
    band_limit_prob=0.5,
    telephone_prob=0.3,
    reverb_prob=0.5,
    reverb_rt60=(0.05, 0.2),
    babble_prob=0.5,
)


def test_augmented_stream_is_a_pure_function_of_seed_and_position():
    a, b, c = (_batches(TONE_SOURCE, ALL_ON, n=2, seed=s, batch_size=6) for s in (5, 5, 6))
    for x, y in zip(a, b, strict=True):
        for name in ("target", "interferer"):
            assert x[name].shape == (6, K, T) and x[name].dtype == np.float32
            assert np.isfinite(x[name]).all()
            np.testing.assert_array_equal(x[name], y[name])
    assert not np.array_equal(a[0]["target"], c[0]["target"])
    assert not np.array_equal(a[0]["target"][0], a[0]["target"][1])  # positions differ
    shards = [
        _batches(TONE_SOURCE, ALL_ON, n=2, seed=5, batch_size=6, shard_index=s, shard_count=2)
        for s in range(2)
    ]
    for t in range(2):
        for s in range(2):
            for name in ("target", "interferer"):
                np.testing.assert_array_equal(shards[s][t][name], a[t][name][s::2])
    clean = _batches(TONE_SOURCE, None, n=1, seed=5, batch_size=6)[0]
    assert not np.array_equal(clean["target"], a[0]["target"])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("speed_factors", (0.9, 0.0), "factors must be in"),
        ("speed_range", (1.2, 0.8), "low <= high"),
        ("eq_prob", 1.5, r"must be in \[0, 1\]"),
        ("babble_prob", -0.1, r"must be in \[0, 1\]"),
        ("babble_speakers", (0, 2), "1 <= low"),
        ("highpass_hz", (100.0, 5000.0), "below data.augment.lowpass_hz"),
    ],
)
def test_bad_augment_values_name_the_key(key, value, message):
    config = base_config()
    config.data.augment[key] = value
    with pytest.raises(ConfigError, match=f"^data.augment.{key}=.*{message}"):
        validate_config(config)


def test_mixed_spec_is_checked():
    config = base_config()
    config.data.source = "mixed"
    for spec, message in (
        ("", "needs KIND:WEIGHT"),
        ("folder:0", "WEIGHT > 0"),
        ("wav:1", "KIND in"),
        ("folder:1,folder:2", "twice"),
    ):
        config.data.mixed.train = spec
        with pytest.raises(ConfigError, match=f"^data.mixed.train=.*{message}"):
            validate_config(config)
    config.data.mixed.train = "folder:0.7, synthetic:0.3"
    validate_config(config)
    assert augmentation.from_config(config) is None  # all off by default
