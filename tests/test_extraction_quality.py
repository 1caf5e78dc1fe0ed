"""A trained small model extracts the enrolled speaker from a two-talker mixture.

The model is configs/extraction_small.py, trained here from scratch with the project's training
loop (1200 steps, ~1.5 min on 2 CPU cores), the smallest measured to extract (README "Use a
trained model"): 4 ms encoder frames (L=32 at 8 kHz, so the filterbank resolves formant
structure), identity initialisation, 40 training speakers, two-talker training mixtures
without noise. The test mixtures (csc_jax.evaluation.extraction)
pair held-out test speakers of clearly different pitch (mean f0 ratio > 1.4, e.g. a male-like
and a female-like voice); for similar voices a model this small does not beat the mixture
(measured, README).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from _train_worker import subprocess_env

import csc_jax
from csc_jax import config as config_lib
from csc_jax import losses
from csc_jax.data import synthetic
from csc_jax.evaluation import extraction

F0_RATIO = 1.4
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "extraction_small.py")


@pytest.fixture(scope="module")
def extractor(tmp_path_factory, shared_cache):
    # Trained by train.py in a child process at XLA's full optimisation (the test processes
    # compile with the fast flags, tests/conftest.py, which make 1200 steps slower).
    workdir = str(tmp_path_factory.mktemp("extractor_run"))
    cmd = [sys.executable, os.path.join(REPO, "train.py"), "--config", CONFIG]
    cmd += ["--workdir", workdir, f"--config.data.cache_dir={shared_cache}"]
    cmd += ["--config.train.progress_bar=False", "--config.train.eval_at_end=False"]
    cmd += ["--config.eval.validation_every=0"]  # as before: the loop without evaluators
    env = subprocess_env(fast_compile=False)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = config_lib.load_config_file(CONFIG)
    config.data.cache_dir = str(shared_cache)
    model = csc_jax.load(workdir)
    corpus = synthetic.load_or_generate(
        config.data.synthetic, "test", config.data.sample_rate, config.data.cache_dir
    )
    return model, corpus, config


def test_extract_improves_si_snr_on_mixtures_of_two_test_speakers(extractor):
    model, corpus, config = extractor
    pairs = extraction.pitch_pairs(corpus, config.data.synthetic, F0_RATIO)["distinct"]
    assert len(pairs) >= 20, pairs
    got = extraction.two_talker_extraction(model, corpus, pairs, sir_db=0.0)
    gains, margins = got["si_snri"], got["margin"]
    summary = (
        f"{len(pairs)} mixtures at SIR 0 dB: SI-SNRi mean {gains.mean():+.2f} dB, "
        f"{np.mean(gains > 0):.0%} positive; enrollment margin {margins.mean():+.2f} dB"
    )
    print(summary)
    assert gains.mean() > 0.5, summary
    assert np.mean(gains > 0) > 0.5, summary
    # The conditioning decides what comes out: enrolling the interferer gives a worse target.
    assert margins.mean() > 1.0, summary

    # The first figure, recomputed here by hand.
    a, b = pairs[0]
    first = {name: corpus.speakers.index(name) for name in (a, b)}
    s, i = corpus.waveforms[first[a]], corpus.waveforms[first[b]]
    n = min(len(s), len(i))
    s, i = s[:n], i[:n]
    mixture = s + i * np.sqrt(np.sum(s**2) / np.sum(i**2))
    estimate = model.extract(mixture, corpus.waveforms[first[a] + 1])
    assert corpus.speakers[first[a] + 1] == a
    by_hand = _si_snr(estimate, s) - _si_snr(mixture, s)
    assert by_hand == pytest.approx(gains[0], abs=1e-3)


def _si_snr(est, ref) -> float:
    return float(losses.si_snr(np.asarray(est, np.float32), np.asarray(ref, np.float32)))


def test_pitch_pairs_split_every_ordered_pair_once(shared_cache):
    config = config_lib.load_config_file(CONFIG)
    config.data.cache_dir = str(shared_cache)
    p = config.data.synthetic
    corpus = synthetic.load_or_generate(p, "test", config.data.sample_rate, str(shared_cache))
    f0 = extraction.speaker_f0(corpus, p)
    assert len(f0) == p.num_test_speakers and len(set(f0.values())) == len(f0)
    groups = extraction.pitch_pairs(corpus, p, F0_RATIO)
    both = groups["distinct"] + groups["similar"]
    assert len(both) == len(set(both)) == len(f0) * (len(f0) - 1)
    for a, b in groups["distinct"]:
        assert max(f0[a], f0[b]) / min(f0[a], f0[b]) > F0_RATIO
    for a, b in groups["similar"]:
        assert max(f0[a], f0[b]) / min(f0[a], f0[b]) <= F0_RATIO
    # speaker_f0 maps names to split-local voice indices: the first test speaker is voice 0.
    assert sorted(f0)[0] == synthetic.speaker_name(p.num_train_speakers)


def test_two_talker_extraction_needs_two_utterances_per_speaker(shared_cache):
    config = config_lib.load_config_file(CONFIG)
    p = config.data.synthetic
    p.test_utterances_per_speaker = 1
    corpus = synthetic.load_or_generate(p, "test", config.data.sample_rate, str(shared_cache))
    a, b = sorted(set(corpus.speakers))[:2]
    with pytest.raises(ValueError, match=a):
        extraction.two_talker_extraction(None, corpus, [(a, b)])


def test_ideal_mask_extraction_is_the_masks_ceiling(shared_cache):
    """The ideal amplitude mask recovers most of the target (a reference for the 'stft'
    extractor, scripts/eval_extraction.py), more the more interference it removes."""
    config = config_lib.load_config_file(CONFIG)
    p = config.data.synthetic
    corpus = synthetic.load_or_generate(p, "test", config.data.sample_rate, str(shared_cache))
    pairs = extraction.sample_pairs(extraction.pitch_pairs(corpus, p, F0_RATIO)["similar"], 6)
    window, hop = 160, 80  # 20 ms / 10 ms at 8 kHz
    at = {
        sir: extraction.ideal_mask_extraction(corpus, pairs, sir, window, hop)["si_snri"]
        for sir in (0.0, 5.0, 40.0)
    }
    assert at[0.0].shape == (len(pairs),)
    assert np.all(at[0.0] > 4.0) and np.all(at[5.0] > 2.0), at
    # Nearly clean input: the masked, inverted STFT keeps the target (SI-SNR = 40 dB + gain).
    assert np.all(at[0.0] > at[5.0]) and np.all(40.0 + at[40.0] > 35.0), at
    # The first figure by hand: min(|S| / |X|, 1) with the mixture's phase.
    import jax.numpy as jnp

    from csc_jax.models import stft

    a, b = pairs[0]
    s = corpus.waveforms[corpus.speakers.index(a)]
    i = corpus.waveforms[corpus.speakers.index(b)]
    n = min(len(s), len(i))
    s, i = s[:n], i[:n]
    x = s + i * np.sqrt(np.sum(s**2) / np.sum(i**2))
    spec_x, spec_s = stft.stft(jnp.asarray(x), window, hop), stft.stft(jnp.asarray(s), window, hop)
    mask = np.minimum(np.abs(spec_s) / np.abs(spec_x), 1.0)
    estimate = np.asarray(stft.istft(mask * spec_x, window, hop, n))
    assert _si_snr(estimate, s) - _si_snr(x, s) == pytest.approx(at[0.0][0], abs=1e-3)


def test_sample_pairs_is_a_seeded_ordered_subset():
    pairs = [(f"a{k}", f"b{k}") for k in range(50)]
    got = extraction.sample_pairs(pairs, 10)
    assert len(got) == 10 and set(got) <= set(pairs)
    assert got == sorted(got, key=pairs.index) == extraction.sample_pairs(pairs, 10)
    assert got != extraction.sample_pairs(pairs, 10, seed=1)
    assert extraction.sample_pairs(pairs, 0) == pairs == extraction.sample_pairs(pairs, 80)
    with pytest.raises(ValueError, match="max_pairs"):
        extraction.sample_pairs(pairs, -1)
