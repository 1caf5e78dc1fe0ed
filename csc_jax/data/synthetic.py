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
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Mapping

import numpy as np
import scipy.signal
import soundfile
import tqdm

# Bump whenever a change alters generated audio, so stale caches are never reused.
CORPUS_VERSION = 2
SPLITS = ("train", "test")
NUM_SESSIONS = 3
PARAM_KEYS = (
    "seed",
    "num_train_speakers",
    "num_test_speakers",
    "train_utterances_per_speaker",
    "test_utterances_per_speaker",
    "min_seconds",
    "max_seconds",
)
MIN_SAMPLE_RATE = 8000
MIN_SECONDS = 0.25
MAX_SECONDS = 60.0

# First SeedSequence word: keeps these streams apart from anything else seeded with the same
# corpus seed.
_SEED_NAMESPACE = 0xC5C0
_SPLIT_CODE = {"train": 1, "test": 2}
_KIND_SPEAKER, _KIND_SESSION, _KIND_UTTERANCE = 0, 1, 2
# Formant targets are held constant over blocks of this length (Klatt used 5 ms frames).
_BLOCK_SECONDS = 0.005
_PCM_SCALE = 32768.0
_PEAK_LIMIT = 0.95

# ---------------------------------------------------------------------------- phone inventory
# Reference targets are for an adult male voice; each voice scales them by its tract factor.
# Vowel F1-F3 (Hz): Peterson & Barney (1952) male averages.
_VOWELS = {
    "iy": (270.0, 2290.0, 3010.0),
    "ih": (390.0, 1990.0, 2550.0),
    "eh": (530.0, 1840.0, 2480.0),
    "ae": (660.0, 1720.0, 2410.0),
    "ah": (520.0, 1190.0, 2390.0),
    "aa": (730.0, 1090.0, 2440.0),
    "ao": (570.0, 840.0, 2410.0),
    "uh": (440.0, 1020.0, 2240.0),
    "uw": (300.0, 870.0, 2240.0),
    "er": (490.0, 1350.0, 1690.0),
}
_VOWEL_NAMES = tuple(_VOWELS)
_F4_REFERENCE = 3300.0
# Reference bandwidths (Hz) of F1-F4 before the voice's bandwidth scaling.
_BANDWIDTHS = np.array([80.0, 100.0, 140.0, 220.0])

# Frication noise bands (lo, hi) in Hz for: s, sh, f, and the t / k / p release bursts.
_FRICATION_BANDS = (
    (3500.0, 7000.0),
    (1900.0, 4500.0),
    (1000.0, 7000.0),
    (2800.0, 6500.0),
    (1300.0, 2800.0),
    (400.0, 2200.0),
)
_S, _SH, _F, _BT, _BK, _BP = range(len(_FRICATION_BANDS))


@dataclasses.dataclass(frozen=True)
class _Segment:
    """One steady-state target: formants (Hz, male reference), source amplitudes, duration."""

    f1: float
    f2: float
    f3: float
    av: float = 0.0  # voicing amplitude into the formant cascade
    ah: float = 0.0  # aspiration noise into the formant cascade
    an: float = 0.0  # nasal murmur (parallel nasal resonator)
    fric: int = -1  # frication band index into _FRICATION_BANDS, -1 for none
    af: float = 0.0  # frication amplitude relative to the vowel level
    ms: float = 80.0  # base duration before rate and random scaling
    vowel: int = -1  # index into _VOWEL_NAMES for the voice's per-vowel offsets


def _vowel_segment(name: str) -> _Segment:
    f1, f2, f3 = _VOWELS[name]
    return _Segment(f1, f2, f3, av=1.0, ms=110.0, vowel=_VOWEL_NAMES.index(name))


_CONSONANTS: dict[str, tuple[_Segment, ...]] = {
    "w": (_Segment(300, 610, 2200, av=0.6, ms=55),),
    "y": (_Segment(280, 2250, 2900, av=0.6, ms=55),),
    "l": (_Segment(360, 1100, 2700, av=0.65, ms=60),),
    "m": (_Segment(270, 1000, 2200, av=0.25, an=0.9, ms=70),),
    "n": (_Segment(270, 1500, 2500, av=0.25, an=0.9, ms=65),),
    "s": (_Segment(400, 1700, 2600, fric=_S, af=0.3, ms=100),),
    "sh": (_Segment(400, 1900, 2500, fric=_SH, af=0.35, ms=100),),
    "f": (_Segment(400, 1100, 2400, fric=_F, af=0.12, ms=90),),
    "z": (_Segment(300, 1700, 2600, av=0.3, fric=_S, af=0.15, ms=85),),
    "t": (
        _Segment(400, 1800, 2600, ms=55),
        _Segment(400, 1800, 2600, fric=_BT, af=0.6, ms=8),
        _Segment(450, 1750, 2600, ah=0.35, ms=35),
    ),
    "k": (
        _Segment(300, 1900, 2300, ms=60),
        _Segment(300, 1900, 2300, fric=_BK, af=0.6, ms=10),
        _Segment(400, 1800, 2300, ah=0.35, ms=40),
    ),
    "p": (
        _Segment(300, 900, 2200, ms=60),
        _Segment(300, 900, 2200, fric=_BP, af=0.5, ms=7),
        _Segment(400, 950, 2300, ah=0.3, ms=30),
    ),
    "d": (
        _Segment(300, 1700, 2600, av=0.12, ms=50),
        _Segment(300, 1700, 2600, av=0.2, fric=_BT, af=0.35, ms=7),
    ),
}
# Silence; its neutral formant targets shape the transitions into and out of pauses.
_PAUSE = _Segment(500, 1500, 2500, ms=0)
_ONSETS = ("w", "y", "l", "m", "n", "s", "sh", "f", "z", "t", "k", "p", "d")
_ONSET_WEIGHTS = np.array([4, 2, 5, 5, 6, 6, 2, 3, 2, 7, 5, 4, 5], dtype=np.float64)
_ONSET_WEIGHTS /= _ONSET_WEIGHTS.sum()
_CODAS = ("m", "n", "s", "z", "t", "k", "d", "l", "f", "sh", "p")
_CODA_WEIGHTS = np.array([3, 6, 5, 3, 6, 3, 4, 3, 2, 1, 2], dtype=np.float64)
_CODA_WEIGHTS /= _CODA_WEIGHTS.sum()
# The inventory the module docstring promises: vowels + consonants + pause.
NUM_PHONE_UNITS = len(_VOWELS) + len(_CONSONANTS) + 1


# ---------------------------------------------------------------------------- corpus API
@dataclasses.dataclass(frozen=True)
class Corpus:
    """A generated corpus split.

    Attributes:
      waveforms: one float32 array of shape (num_samples,) per utterance, values in (-1, 1).
      keys: VoxCeleb-style relative paths, e.g. 'spk0203/sess00/utt000.wav'.
      speakers: speaker name per utterance, e.g. 'spk0203'.
      sample_rate: samples per second of every waveform.
    """

    waveforms: list[np.ndarray]
    keys: list[str]
    speakers: list[str]
    sample_rate: int


def _plain_params(params: Mapping) -> dict:
    if hasattr(params, "to_dict"):  # ml_collections.ConfigDict
        params = params.to_dict()
    if not isinstance(params, Mapping):
        raise TypeError(
            f"synthetic corpus params must be a mapping (data.synthetic), got {type(params)!r}"
        )
    return dict(params)


def _validate_params(params: Mapping) -> dict:
    """Returns the params with canonical types (so 2 and 2.0 hash alike); raises on bad keys."""
    raw = _plain_params(params)
    for key in raw:
        if key not in PARAM_KEYS:
            raise ValueError(
                f"unknown synthetic corpus param {key!r} (data.synthetic.{key}); "
                f"expected keys: {', '.join(PARAM_KEYS)}"
            )
    for key in PARAM_KEYS:
        if key not in raw:
            raise ValueError(f"missing synthetic corpus param {key!r} (data.synthetic.{key})")
    out: dict = {}
    for key in PARAM_KEYS[:5]:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"synthetic corpus param {key!r} must be an integer, got {value!r}")
        lowest = 0 if key == "seed" else 1
        if value < lowest:
            raise ValueError(f"synthetic corpus param {key!r} must be >= {lowest}, got {value!r}")
        out[key] = int(value)
    for key in ("min_seconds", "max_seconds"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"synthetic corpus param {key!r} must be a number, got {value!r}")
        value = float(value)
        if not MIN_SECONDS <= value <= MAX_SECONDS:
            raise ValueError(
                f"synthetic corpus param {key!r} must be in [{MIN_SECONDS}, {MAX_SECONDS}], "
                f"got {value!r}"
            )
        out[key] = value
    if out["min_seconds"] > out["max_seconds"]:
        raise ValueError(
            f"synthetic corpus param 'min_seconds' ({out['min_seconds']}) must not exceed "
            f"'max_seconds' ({out['max_seconds']})"
        )
    return out


def _validate_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown synthetic corpus split {split!r}; expected one of {SPLITS}")
    return split


def _validate_sample_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise TypeError(f"sample_rate must be an integer, got {sample_rate!r}")
    if sample_rate < MIN_SAMPLE_RATE:
        # Formant and frication targets assume at least a telephone band (4 kHz).
        raise ValueError(f"sample_rate must be >= {MIN_SAMPLE_RATE}, got {sample_rate!r}")
    return int(sample_rate)


def _split_layout(p: dict, split: str) -> tuple[int, int, int]:
    """Returns (number of speakers, utterances per speaker, first speaker number)."""
    if split == "train":
        return p["num_train_speakers"], p["train_utterances_per_speaker"], 0
    return p["num_test_speakers"], p["test_utterances_per_speaker"], p["num_train_speakers"]


def speaker_name(number: int) -> str:
    """Speaker name for a global speaker number (test speakers follow the train speakers)."""
    return f"spk{number:04d}"


def utterance_key(speaker: str, utterance_index: int) -> str:
    """Trial-list key: '<speaker>/sess<utterance_index % 3>/utt<utterance_index>.wav'."""
    return f"{speaker}/sess{utterance_index % NUM_SESSIONS:02d}/utt{utterance_index:03d}.wav"


def generate_corpus(
    params: Mapping, split: str, sample_rate: int, *, progress: bool | None = None
) -> Corpus:
    """Synthesises one split of the procedural corpus (deterministic for the params).

    Args:
      params: c.data.synthetic: seed, num_train_speakers, num_test_speakers,
        train_utterances_per_speaker, test_utterances_per_speaker, min_seconds, max_seconds.
      split: 'train' or 'test'.
      sample_rate: output rate in Hz (>= 8000).
      progress: show a tqdm bar; None shows it only when stderr is a terminal.

    Returns:
      Corpus ordered speaker-major; utterance lengths are uniform in [min_seconds, max_seconds].
    """
    p = _validate_params(params)
    _validate_split(split)
    sample_rate = _validate_sample_rate(sample_rate)
    num_speakers, per_speaker, first = _split_layout(p, split)
    if progress is None:
        progress = sys.stderr.isatty()
    waveforms: list[np.ndarray] = []
    keys: list[str] = []
    speakers: list[str] = []
    with tqdm.tqdm(
        total=num_speakers * per_speaker,
        desc=f"synthetic {split} corpus",
        unit="utt",
        disable=not progress,
    ) as bar:
        for s in range(num_speakers):
            name = speaker_name(first + s)
            for u in range(per_speaker):
                waveforms.append(
                    synthesize_utterance(
                        p["seed"],
                        split,
                        s,
                        u,
                        sample_rate,
                        min_seconds=p["min_seconds"],
                        max_seconds=p["max_seconds"],
                    )
                )
                keys.append(utterance_key(name, u))
                speakers.append(name)
                bar.update(1)
    return Corpus(waveforms=waveforms, keys=keys, speakers=speakers, sample_rate=sample_rate)


def cache_path(
    params: Mapping, split: str, sample_rate: int, cache_dir: str | os.PathLike
) -> pathlib.Path:
    """`<cache_dir>/synthetic/<split>-<hash>.npz`; the hash covers params, split, rate, version."""
    p = _validate_params(params)
    _validate_split(split)
    sample_rate = _validate_sample_rate(sample_rate)
    return (
        pathlib.Path(cache_dir) / "synthetic" / f"{split}-{_cache_hash(p, split, sample_rate)}.npz"
    )


def _cache_description(p: dict, split: str, sample_rate: int) -> str:
    return json.dumps(
        {"params": p, "split": split, "sample_rate": sample_rate, "version": CORPUS_VERSION},
        sort_keys=True,
    )


def _cache_hash(p: dict, split: str, sample_rate: int) -> str:
    return hashlib.sha256(_cache_description(p, split, sample_rate).encode()).hexdigest()[:16]


def load_or_generate(
    params: Mapping,
    split: str,
    sample_rate: int,
    cache_dir: str | os.PathLike,
    *,
    progress: bool | None = None,
) -> Corpus:
    """Returns the corpus split from the cache, generating and caching it on a miss.

    The cache file is written atomically (temporary file + os.replace). An unreadable or
    inconsistent cache file is not trusted: a warning naming the file is issued and the split is
    regenerated and rewritten (the cache only holds derived data).
    """
    p = _validate_params(params)
    _validate_split(split)
    sample_rate = _validate_sample_rate(sample_rate)
    path = cache_path(p, split, sample_rate, cache_dir)
    description = _cache_description(p, split, sample_rate)
    if path.exists():
        try:
            return _read_cache(path, description)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(
                f"synthetic corpus cache {str(path)!r} is unreadable ({err}); regenerating it",
                RuntimeWarning,
                stacklevel=2,
            )
    corpus = generate_corpus(p, split, sample_rate, progress=progress)
    _write_cache(corpus, path, description)
    return corpus


def _write_cache(corpus: Corpus, path: pathlib.Path, description: str) -> None:
    lengths = np.array([len(w) for w in corpus.waveforms], dtype=np.int64)
    audio = np.concatenate(corpus.waveforms) if corpus.waveforms else np.zeros(0, np.float32)
    pcm = np.round(audio * np.float32(_PCM_SCALE)).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                pcm=pcm,
                lengths=lengths,
                keys=np.array(corpus.keys, dtype=np.str_),
                speakers=np.array(corpus.speakers, dtype=np.str_),
                sample_rate=np.int64(corpus.sample_rate),
                description=np.array(description),
            )
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; caches are shared like any output file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_cache(path: pathlib.Path, description: str) -> Corpus:
    with np.load(path, allow_pickle=False) as data:
        stored = str(data["description"][()])
        if stored != description:
            raise ValueError("its recorded params/version do not match the requested corpus")
        pcm = data["pcm"]
        lengths = data["lengths"]
        keys = [str(k) for k in data["keys"]]
        speakers = [str(s) for s in data["speakers"]]
        sample_rate = int(data["sample_rate"])
    if pcm.dtype != np.int16 or lengths.ndim != 1 or int(lengths.sum()) != pcm.shape[0]:
        raise ValueError("audio and utterance lengths are inconsistent")
    if not len(keys) == len(speakers) == len(lengths):
        raise ValueError("keys, speakers and lengths differ in count")
    audio = pcm.astype(np.float32) / np.float32(_PCM_SCALE)
    waveforms = list(np.split(audio, np.cumsum(lengths)[:-1])) if len(lengths) else []
    return Corpus(waveforms=waveforms, keys=keys, speakers=speakers, sample_rate=sample_rate)


def save_wav_tree(corpus: Corpus, root: str | os.PathLike) -> pathlib.Path:
    """Writes the corpus as `<root>/<key>` 16-bit PCM wav files (VoxCeleb layout); returns root.

    Lossless: reading a file back with soundfile (float32) gives the waveform bit for bit.
    """
    root = pathlib.Path(root)
    for key, wave in zip(corpus.keys, corpus.waveforms, strict=True):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        pcm = np.round(np.asarray(wave, np.float32) * np.float32(_PCM_SCALE))
        if pcm.size and (pcm.max() > 32767 or pcm.min() < -32768):
            raise ValueError(f"waveform {key!r} exceeds the 16-bit range")
        soundfile.write(path, pcm.astype(np.int16), corpus.sample_rate, subtype="PCM_16")
    return root


# ---------------------------------------------------------------------------- voices
@dataclasses.dataclass(frozen=True)
class Voice:
    """Speaker-level synthesis parameters (scalars in the units named)."""

    f0: float  # mean f0, Hz
    f0_range: float  # accent size, semitones
    declination: float  # f0 fall over an utterance, semitones (negative)
    tract: float  # formant frequency scale (shorter tract -> larger)
    glottal: float  # glottal pulse corner frequency / f0 (pulse shape)
    tilt: float  # extra one-pole spectral tilt coefficient in [0, 1)
    breath: float  # aspiration noise relative to voicing
    jitter: float  # pulse timing std, fraction of a period
    shimmer: float  # pulse log-amplitude std
    bw_scale: float  # formant bandwidth scale
    nasality: float  # nasal murmur in voiced sounds
    nasal_freq: float  # nasal resonance, Hz
    extra_freq: float  # individual extra resonance, Hz (before sample-rate clamping)
    extra_gain_db: float
    extra_q: float
    rate: float  # duration multiplier (> 1 is slower)
    vowel_offsets: tuple[tuple[float, float, float], ...]  # per-vowel F1-F3 multipliers


def _rng(seed: int, split: str, speaker: int, kind: int, index: int) -> np.random.Generator:
    # Fixed-length entropy: SeedSequence pads shorter entropy with zeros, so varying lengths
    # could collide.
    entropy = [_SEED_NAMESPACE, seed, _SPLIT_CODE[split], speaker, kind, index]
    return np.random.default_rng(np.random.SeedSequence(entropy))


_VOICE_CLASSES = (
    # (probability, f0 centre Hz, tract centre, breathiness centre)
    (0.45, 115.0, 0.92, 0.06),  # male-like
    (0.45, 205.0, 1.12, 0.12),  # female-like
    (0.10, 265.0, 1.24, 0.10),  # child-like
)


def _draw_voice(rng: np.random.Generator) -> Voice:
    probs = np.array([c[0] for c in _VOICE_CLASSES])
    _, f0_centre, tract_centre, breath_centre = _VOICE_CLASSES[rng.choice(len(probs), p=probs)]
    offsets = np.exp(rng.normal(0.0, 0.04, size=(len(_VOWELS), 3)))
    return Voice(
        f0=float(np.clip(f0_centre * np.exp(rng.normal(0.0, 0.14)), 78.0, 310.0)),
        f0_range=float(rng.uniform(1.5, 5.0)),
        declination=float(-rng.uniform(0.5, 4.0)),
        tract=float(np.clip(tract_centre * np.exp(rng.normal(0.0, 0.045)), 0.8, 1.3)),
        glottal=float(rng.uniform(0.8, 1.8)),
        tilt=float(rng.uniform(0.0, 0.6)),
        breath=float(np.clip(breath_centre * np.exp(rng.normal(0.0, 0.6)), 0.01, 0.3)),
        jitter=float(rng.uniform(0.003, 0.025)),
        shimmer=float(rng.uniform(0.02, 0.15)),
        bw_scale=float(np.exp(rng.uniform(np.log(0.75), np.log(1.5)))),
        nasality=float(rng.uniform(0.0, 0.3)),
        nasal_freq=float(rng.uniform(220.0, 320.0)),
        extra_freq=float(np.exp(rng.uniform(np.log(1000.0), np.log(3400.0)))),
        extra_gain_db=float(rng.uniform(-5.0, 5.0)),
        extra_q=float(rng.uniform(2.0, 5.0)),
        rate=float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))),
        vowel_offsets=tuple(tuple(float(v) for v in row) for row in offsets),
    )


def _sibling_voice(base: Voice, rng: np.random.Generator) -> Voice:
    """A near-copy of `base`: the corpus's deliberately hard speaker pairs."""

    def jiggle(value: float, sigma: float) -> float:
        return float(value * np.exp(rng.normal(0.0, sigma)))

    offsets = np.array(base.vowel_offsets) * np.exp(rng.normal(0.0, 0.015, (len(_VOWELS), 3)))
    return dataclasses.replace(
        base,
        f0=float(np.clip(jiggle(base.f0, 0.06), 78.0, 310.0)),
        f0_range=jiggle(base.f0_range, 0.15),
        tract=float(np.clip(jiggle(base.tract, 0.02), 0.8, 1.3)),
        glottal=jiggle(base.glottal, 0.1),
        tilt=float(np.clip(base.tilt + rng.normal(0.0, 0.05), 0.0, 0.7)),
        breath=float(np.clip(jiggle(base.breath, 0.2), 0.01, 0.3)),
        jitter=jiggle(base.jitter, 0.2),
        shimmer=jiggle(base.shimmer, 0.2),
        bw_scale=jiggle(base.bw_scale, 0.08),
        extra_gain_db=float(base.extra_gain_db + rng.normal(0.0, 1.0)),
        rate=jiggle(base.rate, 0.05),
        vowel_offsets=tuple(tuple(float(v) for v in row) for row in offsets),
    )


@functools.lru_cache(maxsize=1024)
def speaker_voice(seed: int, split: str, speaker_index: int) -> Voice:
    """The voice of speaker `speaker_index` (0-based within `split`); depends on nothing else."""
    _validate_split(split)
    rng = _rng(seed, split, speaker_index, _KIND_SPEAKER, 0)
    # About 30% of odd-numbered speakers are siblings of the (never-sibling) even one before.
    if speaker_index % 2 == 1 and rng.random() < 0.3:
        return _sibling_voice(speaker_voice(seed, split, speaker_index - 1), rng)
    return _draw_voice(rng)


# ---------------------------------------------------------------------------- DSP helpers
def _peaking_ba(freq: float, gain_db: float, q: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ-cookbook peaking EQ biquad."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / sr
    alpha = math.sin(w0) / (2.0 * q)
    cos = math.cos(w0)
    b = np.array([1.0 + alpha * a_lin, -2.0 * cos, 1.0 - alpha * a_lin])
    a = np.array([1.0 + alpha / a_lin, -2.0 * cos, 1.0 - alpha / a_lin])
    return b / a[0], a / a[0]


def _high_shelf_ba(freq: float, gain_db: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """RBJ-cookbook high shelf (slope 1)."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / sr
    cos = math.cos(w0)
    two_sqrt_a_alpha = 2.0 * math.sqrt(a_lin) * math.sin(w0) / 2.0 * math.sqrt(2.0)
    b = a_lin * np.array(
        [
            (a_lin + 1) + (a_lin - 1) * cos + two_sqrt_a_alpha,
            -2.0 * ((a_lin - 1) + (a_lin + 1) * cos),
            (a_lin + 1) + (a_lin - 1) * cos - two_sqrt_a_alpha,
        ]
    )
    a = np.array(
        [
            (a_lin + 1) - (a_lin - 1) * cos + two_sqrt_a_alpha,
            2.0 * ((a_lin - 1) - (a_lin + 1) * cos),
            (a_lin + 1) - (a_lin - 1) * cos - two_sqrt_a_alpha,
        ]
    )
    return b / a[0], a / a[0]


def _resonator_a(freq: np.ndarray, bw: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Second-order all-pole resonator coefficients (a1, a2), elementwise."""
    r = np.exp(-np.pi * bw / sr)
    return -2.0 * r * np.cos(2.0 * np.pi * freq / sr), r * r


@functools.lru_cache(maxsize=4096)
def _frication_filter(band: int, tract: float, sr: int) -> tuple[np.ndarray, float]:
    """Band-pass sos for a frication band of a voice, and its RMS gain for white noise."""
    lo, hi = _FRICATION_BANDS[band]
    hi = min(hi * tract, 0.46 * sr)
    lo = min(lo * tract, 0.7 * hi)
    sos = scipy.signal.butter(2, [lo, hi], btype="bandpass", fs=sr, output="sos")
    impulse = np.zeros(sr)
    impulse[0] = 1.0
    return sos, float(np.sqrt(np.sum(scipy.signal.sosfilt(sos, impulse) ** 2)))


def _session_channel(seed: int, split: str, speaker: int, session: int, sr: int):
    """Gentle random EQ (sos) and noise-floor SNR (dB) of one recording session."""
    rng = _rng(seed, split, speaker, _KIND_SESSION, session)
    sections = [scipy.signal.butter(1, rng.uniform(50.0, 150.0), "highpass", fs=sr, output="sos")]
    for _ in range(2):
        freq = float(np.exp(rng.uniform(np.log(250.0), np.log(0.4 * sr))))
        b, a = _peaking_ba(freq, rng.uniform(-3.5, 3.5), rng.uniform(0.7, 2.0), sr)
        sections.append(np.concatenate([b, a])[None])
    b, a = _high_shelf_ba(min(2500.0, 0.3 * sr), rng.uniform(-4.0, 2.0), sr)
    sections.append(np.concatenate([b, a])[None])
    return np.concatenate(sections), float(rng.uniform(35.0, 50.0))


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Hann-window moving average along axis 0 with edge padding (no level change at ends).

    Direct (not FFT) convolution: runs of equal inputs stay bitwise equal, which lets
    `_time_varying_allpole` merge them into one filter call.
    """
    if width <= 1:
        return x
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    pad = width // 2
    padded = np.pad(x, [(pad, width - 1 - pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    kernel = kernel.reshape((-1,) + (1,) * (x.ndim - 1))
    return scipy.signal.convolve(padded, kernel, "valid", method="direct")


def _upsample(values: np.ndarray, block: int) -> np.ndarray:
    """Linear interpolation of per-block values (n_blocks, C) between block centres.

    Returns float64 (n_blocks * block, C), held constant beyond the first and last centres.
    Broadcasting instead of np.interp: one pass for all channels, no per-sample search.
    """
    position = np.arange(block) / block - 0.5  # offset from the block centre, in blocks
    first_half = int(np.sum(position < 0))
    weight = np.where(position < 0, position + 1.0, position)[None, :, None]
    padded = np.concatenate([values[:1], values, values[-1:]])
    before, here, after = padded[:-2, None], padded[1:-1, None], padded[2:, None]
    out = np.empty((values.shape[0], block, values.shape[1]))
    out[:, :first_half] = before + (here - before) * weight[:, :first_half]
    out[:, first_half:] = here + (after - here) * weight[:, first_half:]
    return out.reshape(-1, values.shape[1])


def _time_varying_allpole(x: np.ndarray, a: np.ndarray, block: int) -> np.ndarray:
    """Filters x (float64, (n_blocks * block,)) by A_k(1) / A_k(z), A_k = a[k] (n_blocks, p + 1).

    Coefficients switch at block boundaries (block >= p). The state carried across a switch is
    the last p outputs (direct form I), re-expressed as lfilter's transposed-form state under the
    new coefficients, so the result equals a per-sample time-varying recursion without switching
    transients. The A_k(1) gain gives unit DC gain. Consecutive blocks with identical
    coefficients are filtered in one call.
    """
    n_blocks, order = a.shape[0], a.shape[1] - 1
    # lfilter's state for an all-pole filter: zi[i] = -sum_m a[i + 1 + m] * y[n - m].
    idx = np.arange(order)[:, None] + np.arange(order)[None, :] + 1
    starts = np.flatnonzero(np.concatenate([[True], np.any(a[1:] != a[:-1], axis=1)]))
    stops = np.append(starts[1:], n_blocks)
    hankel = np.where(idx <= order, a[starts][:, np.minimum(idx, order)], 0.0)
    gains = a[starts].sum(axis=1)
    y = np.empty_like(x)
    history = np.zeros(order)  # y[n], y[n - 1], ... at the end of the previous run
    lfilter = scipy.signal.lfilter
    for r, (start, stop) in enumerate(zip(starts * block, stops * block, strict=True)):
        zi = -(hankel[r] @ history)
        out, _ = lfilter(gains[r : r + 1], a[starts[r]], x[start:stop], zi=zi)
        y[start:stop] = out
        history = out[: -order - 1 : -1]
    return y


# ---------------------------------------------------------------------------- utterances
def _utterance_segments(
    rng: np.random.Generator, rate: float, min_total_s: float
) -> tuple[list[_Segment], list[float], list[bool]]:
    """Random syllables until `min_total_s` is covered; returns segments, seconds, accented.

    Content comes only from `rng` (the utterance seed), never from the voice: the voice only
    sets the speaking `rate`.
    """
    segments: list[_Segment] = [_PAUSE]
    durations = [float(rng.uniform(0.03, 0.15))]
    accented = [False]
    total = durations[0]

    def add(segment: _Segment, scale: float = 1.0, accent: bool = False) -> None:
        nonlocal total
        seconds = segment.ms / 1000.0 * rate * scale * float(np.exp(rng.normal(0.0, 0.15)))
        segments.append(segment)
        durations.append(seconds)
        accented.append(accent)
        total += seconds

    while total < min_total_s:
        if rng.random() < 0.75:
            for segment in _CONSONANTS[_ONSETS[rng.choice(len(_ONSETS), p=_ONSET_WEIGHTS)]]:
                add(segment)
        accent = bool(rng.random() < 0.3)
        add(
            _vowel_segment(_VOWEL_NAMES[rng.integers(len(_VOWEL_NAMES))]),
            1.35 if accent else 1.0,
            accent,
        )
        if rng.random() < 0.35:
            for segment in _CONSONANTS[_CODAS[rng.choice(len(_CODAS), p=_CODA_WEIGHTS)]]:
                add(segment)
        if rng.random() < 0.12:
            segments.append(_PAUSE)
            durations.append(float(rng.uniform(0.06, 0.25)) * rate)
            accented.append(False)
            total += durations[-1]
    return segments, durations, accented


def synthesize_utterance(
    seed: int,
    split: str,
    speaker_index: int,
    utterance_index: int,
    sample_rate: int,
    *,
    min_seconds: float,
    max_seconds: float,
) -> np.ndarray:
    """One utterance, float32 (num_samples,), num_samples uniform in [min, max] seconds.

    Depends only on its arguments (not on which other utterances are generated).
    """
    _validate_split(split)
    sr = _validate_sample_rate(sample_rate)
    for name, index in (("speaker_index", speaker_index), ("utterance_index", utterance_index)):
        if index < 0:
            raise ValueError(f"{name} must be >= 0, got {index!r}")
    if not MIN_SECONDS <= min_seconds <= max_seconds <= MAX_SECONDS:
        raise ValueError(
            f"need {MIN_SECONDS} <= min_seconds <= max_seconds <= {MAX_SECONDS}, got "
            f"min_seconds={min_seconds!r}, max_seconds={max_seconds!r}"
        )
    if math.ceil(min_seconds * sr) > math.floor(max_seconds * sr):
        raise ValueError(
            f"no whole number of samples at {sr} Hz lies in [min_seconds={min_seconds!r}, "
            f"max_seconds={max_seconds!r}]"
        )
    voice = speaker_voice(seed, split, speaker_index)
    rng = _rng(seed, split, speaker_index, _KIND_UTTERANCE, utterance_index)
    num_samples = int(rng.integers(math.ceil(min_seconds * sr), math.floor(max_seconds * sr) + 1))
    block = round(_BLOCK_SECONDS * sr)

    # Per-utterance variation around the voice: pitch, rate, vocal effort, loudness.
    f0_mean = voice.f0 * float(np.exp(rng.normal(0.0, 0.06)))
    rate = voice.rate * float(np.exp(rng.normal(0.0, 0.08)))
    bw_scale = voice.bw_scale * float(np.exp(rng.normal(0.0, 0.05)))
    level_db = float(rng.uniform(-28.0, -18.0))

    # ---- segment targets -> per-block tracks
    segments, durations, accented = _utterance_segments(rng, rate, num_samples / sr + 0.1)
    counts = np.maximum(1, np.round(np.array(durations) / _BLOCK_SECONDS).astype(np.int64))
    # Rounding to whole blocks can lose a little time; the last segment absorbs any shortfall.
    shortfall = num_samples - int(counts.sum()) * block
    if shortfall > 0:
        counts[-1] += -(-shortfall // block)
    n_blocks = int(counts.sum())
    formants = np.array([[s.f1, s.f2, s.f3, _F4_REFERENCE] for s in segments])
    vowel_offsets = np.array(voice.vowel_offsets)
    for i, s in enumerate(segments):
        if s.vowel >= 0:
            formants[i, :3] *= vowel_offsets[s.vowel]
    formants = np.repeat(formants * voice.tract, counts, axis=0)
    # Smooth in log-frequency over ~35 ms: coarticulated transitions between targets.
    formants = np.exp(_smooth(np.log(formants), 7))
    formants = np.minimum(formants, 0.46 * sr)
    amps = np.repeat(np.array([[s.av, s.ah, s.an] for s in segments]), counts, axis=0)
    amps = _smooth(amps, 3)
    n_fric = len(_FRICATION_BANDS)
    fric = np.zeros((len(segments), n_fric))
    for i, s in enumerate(segments):
        if s.fric >= 0:
            fric[i, s.fric] = s.af
    fric = _smooth(np.repeat(fric, counts, axis=0), 2)

    # ---- prosody: declination, accents on stressed vowels, slow drift (semitones)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    t_block = (np.arange(n_blocks) + 0.5) * _BLOCK_SECONDS
    total_s = n_blocks * _BLOCK_SECONDS
    semitones = voice.declination * float(rng.uniform(0.5, 1.5)) * t_block / total_s
    for start, count, accent in zip(starts, counts, accented, strict=True):
        if accent:
            centre = (start + count / 2) * _BLOCK_SECONDS
            width = float(rng.uniform(0.06, 0.12))
            size = voice.f0_range * float(rng.uniform(0.3, 1.0))
            size *= 1.0 if rng.random() < 0.8 else -0.5
            semitones = semitones + size * np.exp(-0.5 * ((t_block - centre) / width) ** 2)
    drift = _smooth(np.cumsum(rng.normal(0.0, 0.15, n_blocks)), 41)
    semitones = semitones + np.clip(drift - drift.mean(), -2.0, 2.0)
    f0_block = np.clip(f0_mean * 2.0 ** (semitones / 12.0), 50.0, 0.3 * sr)

    # ---- block tracks -> sample-level envelopes
    n_total = n_blocks * block
    fric_bands = np.flatnonzero(fric.max(axis=0) > 0)
    tracks = _upsample(np.column_stack([f0_block, amps, fric[:, fric_bands]]), block)
    f0, av, ah, an = tracks[:, 0], tracks[:, 1], tracks[:, 2], tracks[:, 3]

    # ---- glottal source: jittered, shimmered pulse train shaped by the glottal/tilt filter
    increment = f0 / sr
    phase = np.cumsum(increment) + float(rng.random())
    cycle = np.floor(phase)
    crossings = np.flatnonzero(np.diff(cycle) > 0) + 1
    period = 1.0 / increment[crossings]
    when = crossings - (phase[crossings] - cycle[crossings]) * period
    when = when + rng.normal(0.0, voice.jitter, len(crossings)) * period
    when = np.clip(when, 0.0, n_total - 1.001)
    first = np.floor(when).astype(np.int64)
    frac = when - first
    height = np.exp(rng.normal(0.0, voice.shimmer, len(crossings)))
    pulses = np.bincount(first, height * (1.0 - frac), minlength=n_total + 1)
    pulses += np.bincount(first + 1, height * frac, minlength=n_total + 1)
    pulses = pulses[:n_total]
    pole = math.exp(-2.0 * math.pi * voice.glottal * voice.f0 / sr)
    glottal_a = np.convolve(np.convolve([1.0, -pole], [1.0, -pole]), [1.0, -voice.tilt])
    # (1 - z^-1): lip radiation differentiates the glottal flow.
    glottal = scipy.signal.lfilter([1.0, -1.0], glottal_a, pulses)
    glottal /= np.sqrt(np.mean(glottal**2)) + 1e-12

    # Aspiration noise is pitch-synchronous in real voices; a parabola in the cycle phase is a
    # cheap periodic gate (1 at each pulse, 0 mid-cycle).
    gate = (2.0 * (phase - cycle) - 1.0) ** 2
    noise = rng.standard_normal(n_total)
    source = av * glottal + (ah + voice.breath * av * gate) * noise

    # ---- vocal tract: time-varying cascade of F1-F4 as one 8th-order all-pole filter
    bandwidths = _BANDWIDTHS * bw_scale
    bandwidths = bandwidths * np.array([1.0 + 2.0 * voice.breath, 1.0, 1.0, 1.0])
    c1, c2 = _resonator_a(formants, np.broadcast_to(bandwidths, formants.shape), sr)
    poly = np.ones((n_blocks, 1))
    for j in range(formants.shape[1]):
        nxt = np.zeros((n_blocks, poly.shape[1] + 2))
        nxt[:, :-2] += poly
        nxt[:, 1:-1] += poly * c1[:, j : j + 1]
        nxt[:, 2:] += poly * c2[:, j : j + 1]
        poly = nxt
    speech = _time_varying_allpole(source, poly, block)

    # Parallel nasal murmur (nasal consonants + the voice's habitual nasality).
    n1, n2 = _resonator_a(np.array(voice.nasal_freq * voice.tract), np.array(100.0), sr)
    nasal_a = np.array([1.0, float(n1), float(n2)])
    speech += scipy.signal.lfilter([nasal_a.sum()], nasal_a, (an + voice.nasality * av) * glottal)
    extra_freq = min(voice.extra_freq, 0.42 * sr)
    b, a = _peaking_ba(extra_freq, voice.extra_gain_db, voice.extra_q, sr)
    speech = scipy.signal.lfilter(b, a, speech)

    # ---- frication / bursts bypass the cascade, levelled against the voiced speech
    voiced = av > 0.5
    reference = np.sqrt(np.mean(speech[voiced] ** 2)) if voiced.any() else 1.0
    for column, band in enumerate(fric_bands):
        envelope = tracks[:, 4 + column]
        sos, rms_gain = _frication_filter(int(band), voice.tract, sr)
        # Noise is only filtered where the band is active: frication covers a small part of an
        # utterance, and the envelope ramps from zero over the filter's onset transient.
        active = np.concatenate([[0], (envelope > 0).astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(active))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            hiss = scipy.signal.sosfilt(sos, rng.standard_normal(stop - start))
            speech[start:stop] += (reference / rms_gain) * envelope[start:stop] * hiss

    # ---- session channel: faint noise floor + gentle EQ
    session_sos, snr_db = _session_channel(
        seed, split, speaker_index, utterance_index % NUM_SESSIONS, sr
    )
    speech_rms = np.sqrt(np.mean(speech**2))
    speech += rng.standard_normal(n_total) * speech_rms * 10.0 ** (-snr_db / 20.0)
    speech = scipy.signal.sosfilt(session_sos, speech)

    # ---- trim, fade, level, quantise to 16-bit values
    out = speech[:num_samples]
    fade = min(round(0.01 * sr), num_samples // 4)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
    out[:fade] *= ramp
    out[num_samples - fade :] *= ramp[::-1]
    out *= 10.0 ** (level_db / 20.0) / (np.sqrt(np.mean(out**2)) + 1e-12)
    peak = np.max(np.abs(out))
    if peak > _PEAK_LIMIT:
        out *= _PEAK_LIMIT / peak
    pcm = np.round(out * _PCM_SCALE).astype(np.int16)
    return pcm.astype(np.float32) / np.float32(_PCM_SCALE)
