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

import numpy as np

from csc_jax import losses
from csc_jax.data import synthetic
from csc_jax.evaluation import conditions


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
    utts: dict[str, list[int]] = {}
    for index, name in enumerate(corpus.speakers):
        utts.setdefault(name, []).append(index)
    for name in dict.fromkeys(x for pair in pairs for x in pair):  # first-seen order
        if len(utts.get(name, [])) < 2:
            raise ValueError(f"speaker {name!r} needs >= 2 utterances in the corpus")
    speech = conditions.Condition("speech", float(sir_db))
    gains, margins = [], []
    for a, b in pairs:
        s, i = corpus.waveforms[utts[a][0]], corpus.waveforms[utts[b][0]]
        n = min(len(s), len(i))
        s = s[:n]
        mixture = conditions.corrupt(s, speech, rng=None, interferer=i[:n])
        right = model.extract(mixture, corpus.waveforms[utts[a][1]])
        wrong = model.extract(mixture, corpus.waveforms[utts[b][1]])
        gains.append(_si_snr(right, s) - _si_snr(mixture, s))
        margins.append(_si_snr(right, s) - _si_snr(wrong, s))
    return {"si_snri": np.array(gains), "margin": np.array(margins)}
