"""Target-speaker extraction on two-talker mixtures of held-out speakers of the embedded corpus.

Each ordered speaker pair (a, b) gives one mixture: a's first utterance plus b's first utterance
scaled to the given SIR, both cut to the shorter length; a's second utterance is the
enrollment. Reported per mixture: SI-SNRi of the extracted target over the mixture, and the
*enrollment margin*, SI-SNR (vs. a's signal) of the extraction enrolled with a minus the one
enrolled with b's second utterance (how much the conditioning decides what comes out).

Pairs are split by the voices' mean f0 (known for the procedural corpus,
``synthetic.speaker_voice``): a ratio above ``min_ratio`` (e.g. male-like vs. female-like) is
"distinct", the rest "similar".
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np

from csc_jax import losses
from csc_jax.data import synthetic
from csc_jax.evaluation import conditions
from csc_jax.models import stft


def speaker_f0(corpus: synthetic.Corpus, params) -> dict[str, float]:
    """Mean f0 (Hz) of every test speaker of a generated test split (``params`` = its config)."""
    first = params.num_train_speakers
    return {
        name: synthetic.speaker_voice(params.seed, "test", int(name[3:]) - first).f0
        for name in sorted(set(corpus.speakers))
    }


def pitch_pairs(
    corpus: synthetic.Corpus, params, min_ratio: float = 1.4
) -> dict[str, list[tuple[str, str]]]:
    """Ordered (target, interferer) speaker pairs: {'distinct': [...], 'similar': [...]}."""
    f0 = speaker_f0(corpus, params)
    out = {"distinct": [], "similar": []}
    for a, b in itertools.permutations(f0, 2):
        ratio = max(f0[a], f0[b]) / min(f0[a], f0[b])
        out["distinct" if ratio > min_ratio else "similar"].append((a, b))
    return out


def _si_snr(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(losses.si_snr(np.asarray(estimate, np.float32), np.asarray(reference, np.float32)))


def sample_pairs(
    pairs: list[tuple[str, str]], max_pairs: int, seed: int = 0
) -> list[tuple[str, str]]:
    """At most ``max_pairs`` of ``pairs`` (0 = all), drawn without replacement by ``seed``, in
    their original order: the same subset on every call, so two models can be compared on it."""
    if max_pairs < 0:
        raise ValueError(f"max_pairs must be >= 0, got {max_pairs}")
    if max_pairs == 0 or max_pairs >= len(pairs):
        return list(pairs)
    keep = np.sort(np.random.default_rng(seed).choice(len(pairs), max_pairs, replace=False))
    return [pairs[int(i)] for i in keep]


def _mixtures(corpus: synthetic.Corpus, pairs: list[tuple[str, str]], sir_db: float):
    """Yield (target (T,), mixture (T,), target enrollment, interferer enrollment) per pair:
    a's first utterance plus b's first scaled to ``sir_db``, both cut to the shorter one; the
    enrollments are each speaker's second utterance."""
    utts: dict[str, list[int]] = {}
    for index, name in enumerate(corpus.speakers):
        utts.setdefault(name, []).append(index)
    for name in dict.fromkeys(x for pair in pairs for x in pair):  # first-seen order
        if len(utts.get(name, [])) < 2:
            raise ValueError(f"speaker {name!r} needs >= 2 utterances in the corpus")
    speech = conditions.Condition("speech", float(sir_db))
    for a, b in pairs:
        s, i = corpus.waveforms[utts[a][0]], corpus.waveforms[utts[b][0]]
        n = min(len(s), len(i))
        s = s[:n]
        mixture = conditions.corrupt(s, speech, rng=None, interferer=i[:n])
        yield s, mixture, corpus.waveforms[utts[a][1]], corpus.waveforms[utts[b][1]]


def two_talker_extraction(
    model, corpus: synthetic.Corpus, pairs: list[tuple[str, str]], sir_db: float = 0.0
) -> dict[str, np.ndarray]:
    """Extract each pair's target from its mixture.

    Args:
      model: a ``csc_jax.inference.SpeakerModel`` (``csc_jax.load``).
      corpus: the test split (at least two utterances per speaker).
      pairs: ordered (target speaker, interferer speaker) names.
      sir_db: target-to-interferer power ratio of the mixtures.

    Returns:
      {'si_snri': (P,) float64 dB, 'margin': (P,) float64 dB}.
    """
    gains, margins = [], []
    for s, mixture, enroll_a, enroll_b in _mixtures(corpus, pairs, sir_db):
        right = model.extract(mixture, enroll_a)
        wrong = model.extract(mixture, enroll_b)
        gains.append(_si_snr(right, s) - _si_snr(mixture, s))
        margins.append(_si_snr(right, s) - _si_snr(wrong, s))
    return {"si_snri": np.array(gains), "margin": np.array(margins)}


def ideal_mask_extraction(
    corpus: synthetic.Corpus,
    pairs: list[tuple[str, str]],
    sir_db: float,
    window: int,
    hop: int,
) -> dict[str, np.ndarray]:
    """The ceiling of the 'stft' front end's extractor on the same mixtures as
    :func:`two_talker_extraction`: the ideal amplitude mask min(|S| / |X|, 1) of the target S
    in the mixture X (the sigmoid mask's range), applied with the mixture's phase and
    inverted (models/stft.py, ``window`` / ``hop`` in samples).

    Returns:
      {'si_snri': (P,) float64 dB}.
    """
    gains = []
    for s, mixture, _, _ in _mixtures(corpus, pairs, sir_db):
        spec_x = stft.stft(jnp.asarray(mixture), window, hop)
        spec_s = stft.stft(jnp.asarray(s), window, hop)
        mask = jnp.minimum(jnp.abs(spec_s) / jnp.maximum(jnp.abs(spec_x), 1e-12), 1.0)
        estimate = np.asarray(stft.istft(mask * spec_x, window, hop, len(s)))
        gains.append(_si_snr(estimate, s) - _si_snr(mixture, s))
    return {"si_snri": np.array(gains)}
