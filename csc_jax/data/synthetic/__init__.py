"""Embedded procedural multi-speaker corpus: source-filter speech from seeded synthetic voices.

The default corpus needs no download: every utterance is synthesised with numpy/scipy from a
glottal pulse train (jitter, shimmer, aspiration) passed through a time-varying cascade of formant
resonators, plus parallel nasal and frication branches. Speaker identity and content vary
independently, so the corpus is a real speaker-verification problem:

* a *voice* (drawn once per speaker from the speaker seed) fixes the mean f0 and accent range,
  vocal-tract length (scales every formant), glottal pulse shape and spectral tilt, breathiness,
  jitter, shimmer, formant bandwidths, nasality, an individual extra resonance, a speaking-rate
  tendency and small per-vowel formant offsets (an "accent"). Voices come from male / female /
  child-like classes, and some odd-numbered speakers are near-copies ("siblings") of the
  previous speaker, so the corpus has both easy and hard speaker pairs;
* an *utterance* draws a random syllable sequence from a 24-unit inventory shared by all speakers
  (10 vowels with Peterson & Barney F1-F3 targets, glides, nasals, fricatives, plosives, pauses),
  its own prosody (declination, accents, f0 drift), speaking rate and loudness;
* a *session* (``sess00`` .. ``sess02``, utterance ``u`` is in session ``u % 3``) adds a mild
  channel colouring (gentle random EQ) and a faint noise floor, so trial lists can pair
  enrollment and test utterances from different sessions.

Every random draw comes from a ``numpy.random.SeedSequence`` built from
``(corpus seed, split, speaker index, kind, index)``, so an utterance is bit-identical however
many speakers or utterances are generated, in whatever order. Train and test voices come from
different seeds and test speakers are named after the train speakers (``spk0200`` .. when there
are 200 train speakers), so the two splits never share a speaker.

Waveforms are 16-bit PCM values stored as float32 (``q / 32768`` with integer ``|q| <= 32767``),
so writing them as 16-bit wav files (`save_wav_tree`) and reading them back is lossless.

Modules: params.py (parameters, validation, seeded streams), phones.py (inventory and syllable
content), voices.py (speaker voices), filters.py (DSP building blocks), utterance.py (one
utterance), corpus.py (a split: `Corpus`, `generate_corpus`), cache.py (the .npz cache,
`load_or_generate`, `save_wav_tree`). The names below are the package's API.
"""

from csc_jax.data.synthetic.cache import CORPUS_VERSION, cache_path, load_or_generate, save_wav_tree
from csc_jax.data.synthetic.corpus import Corpus, generate_corpus, speaker_name, utterance_key
from csc_jax.data.synthetic.params import (
    MAX_SECONDS,
    MIN_SAMPLE_RATE,
    MIN_SECONDS,
    NUM_SESSIONS,
    PARAM_KEYS,
    SPLITS,
)
from csc_jax.data.synthetic.utterance import synthesize_utterance
from csc_jax.data.synthetic.voices import Voice, speaker_voice

__all__ = [
    "CORPUS_VERSION",
    "MAX_SECONDS",
    "MIN_SAMPLE_RATE",
    "MIN_SECONDS",
    "NUM_SESSIONS",
    "PARAM_KEYS",
    "SPLITS",
    "Corpus",
    "Voice",
    "cache_path",
    "generate_corpus",
    "load_or_generate",
    "save_wav_tree",
    "speaker_name",
    "speaker_voice",
    "synthesize_utterance",
    "utterance_key",
]
