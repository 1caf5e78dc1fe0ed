#!/usr/bin/env python3
"""Build an English multi-speaker corpus with espeak-ng + MBROLA diphone voices.

Every MBROLA voice is a diphone database cut from one real speaker's recordings, so each of the
20 voices used here is a distinct recorded voice. espeak-ng turns English text into phonemes and
prosody (always with its English rules, also for the German, French, ... voices, which then speak
English with their own phone set), MBROLA concatenates the speaker's diphones.

Pitch (-p), speaking rate (-s) and word gap (-g) are drawn per utterance, inside a pitch/rate
regime that differs per session, and the text is drawn from a procedurally generated pool of
English sentences, because espeak-ng sets duration and intonation by rule: identical settings
would hand a model a shortcut. Everything is seeded; the same seed gives the same corpus
(bit-identical wavs, checked by the sha256 in the manifest).

Layout (each split root is a VoxCeleb-layout root for FolderSource):

    <out>/train/<speaker>/<session>/<utt>.wav   16 kHz mono 16-bit PCM
    <out>/val/<speaker>/<session>/<utt>.wav
    <out>/manifest.jsonl     one JSON object per utterance (key relative to its split root)
    <out>/trials_val.txt     VoxCeleb trial list "label enroll test", keys relative to <out>/val
    <out>/settings.json      the settings the corpus was built with (compared on rerun)
    <out>/summary.json       counts, hours, level statistics and build time
    <out>/NOTICE.txt         the MBROLA licence restriction

LICENCE: the MBROLA voices may be used for non-commercial, non-military purposes only; so may the
corpus built from them. Install: `sudo scripts/install_tts_voices.sh` (see docs/tts_corpus.md).

Example:
    python scripts/make_tts_corpus.py --out cache/tts_corpus --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

FORMAT_VERSION = 2
SAMPLE_RATE = 16000
NUM_SESSIONS = 3
# Session s uses pitch band s; its rate band is a per-voice permutation of the rate bands, so
# pitch and rate are not tied together across voices. Values are espeak-ng -p (0-99) and -s (wpm).
PITCH_BANDS = ((30, 43), (44, 56), (57, 70))
RATE_BANDS = ((130, 149), (150, 169), (170, 190))
WORD_GAP_RANGE = (0, 2)  # espeak-ng -g, in units of 10 ms at the default rate
AMPLITUDE = 50  # espeak-ng -a (default 100 clips some voices, e.g. fr4, de5, af1)
AMPLITUDE_RETRY_FACTOR = 0.7  # lower the amplitude by this factor when an utterance clips
MAX_AMPLITUDE_RETRIES = 4
SENTENCE_POOL_SIZE = 500
MIN_RMS = 1e-3  # -60 dBFS: quieter means (nearly) silent, which is an error
DEFAULT_UTTERANCES_PER_VOICE = 60
DEFAULT_TRIALS_PER_UTTERANCE = 2
DEFAULT_SEED = 0
PROGRESS_JOURNAL = ".progress.jsonl"
INSTALL_SCRIPT = "scripts/install_tts_voices.sh"
LICENCE_NOTE = (
    "LICENCE: use for non-commercial, non-military purposes only. The MBROLA diphone voices this "
    "corpus was synthesised with may not be sold or built into a product that is sold without "
    "the database owner's permission, and mbrola-de4 may not be used for military purposes "
    "(see /usr/share/doc/mbrola-*/copyright). Treat the corpus the same way: research use, no "
    "commercial or military use, do not redistribute it with a product."
)


@dataclasses.dataclass(frozen=True)
class Voice:
    """One MBROLA voice: database name, espeak-ng voice name, speaker gender, original language."""

    db: str
    espeak: str
    gender: str
    language: str

    @property
    def speaker(self) -> str:
        return f"mb-{self.db}"

    @property
    def package(self) -> str:
        return f"mbrola-{self.db}"


# Native English voices use their own espeak-ng voice; the others use espeak-ng's "mb-xx-en"
# variants, which apply the English text-to-phoneme rules and map English phonemes onto the
# voice's phone set. Genders as listed by `espeak-ng --voices=mb` (espeak-ng 1.51).
VOICES: dict[str, Voice] = {
    v.db: v
    for v in (
        Voice("us1", "mb-us1", "F", "en-us"),
        Voice("us2", "mb-us2", "M", "en-us"),
        Voice("us3", "mb-us3", "M", "en-us"),
        Voice("en1", "mb-en1", "M", "en-gb"),
        Voice("de1", "mb-de1-en", "F", "de"),
        Voice("de2", "mb-de2-en", "M", "de"),
        Voice("de3", "mb-de3-en", "F", "de"),
        Voice("de4", "mb-de4-en", "M", "de"),
        Voice("de5", "mb-de5-en", "F", "de"),
        Voice("de6", "mb-de6-en", "M", "de"),
        Voice("fr1", "mb-fr1-en", "M", "fr"),
        Voice("fr4", "mb-fr4-en", "F", "fr"),
        Voice("af1", "mb-af1-en", "M", "af"),
        Voice("gr2", "mb-gr2-en", "M", "el"),
        Voice("hu1", "mb-hu1-en", "F", "hu"),
        Voice("nl2", "mb-nl2-en", "M", "nl"),
        Voice("pl1", "mb-pl1-en", "F", "pl"),
        Voice("ro1", "mb-ro1-en", "M", "ro"),
        Voice("sw1", "mb-sw1-en", "M", "sv"),
        Voice("sw2", "mb-sw2-en", "F", "sv"),
    )
}
# Held out for validation: 2 female + 2 male, four languages (US English, German, French,
# Polish), both source sample rates (de5 is 22.05 kHz, the others 16 kHz). Fixed, not seeded.
DEFAULT_VAL_VOICES = ("us3", "de5", "fr1", "pl1")


class CorpusError(RuntimeError):
    """A problem the user has to fix (missing dependency, conflicting settings, bad argument)."""


# --------------------------------------------------------------------------- sentence pool

_NAMES = (
    "Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Irene", "Jack",
    "Karen", "Leo", "Maria", "Nathan", "Olivia", "Peter", "Rachel", "Samuel", "Tina", "Victor",
    "Walter", "Yvonne", "Oscar", "Helen", "Martin", "Sophie", "Thomas", "Lucy", "George", "Nora",
)  # fmt: skip
_CITIES = (
    "Boston", "Chicago", "Denver", "Dublin", "Edinburgh", "Glasgow", "Houston", "London",
    "Melbourne", "Miami", "Oxford", "Phoenix", "Seattle", "Sydney", "Toronto", "Vancouver",
)  # fmt: skip
_ADJECTIVES = (
    "old", "new", "small", "large", "heavy", "bright", "quiet", "broken", "golden", "wooden",
    "yellow", "green", "strange", "famous", "narrow", "ancient", "empty", "careful", "noisy",
    "simple", "useful", "expensive", "cheap", "fragile", "shiny", "dusty", "modern", "curious",
)  # fmt: skip
_NOUNS = (
    "box", "letter", "garden", "window", "bicycle", "lamp", "kettle", "ladder", "map", "basket",
    "clock", "engine", "bridge", "violin", "carpet", "jacket", "notebook", "camera", "bottle",
    "wagon", "statue", "painting", "tractor", "umbrella", "suitcase", "telescope", "blanket",
    "radio", "mirror", "fence", "boat", "candle", "parcel", "whistle", "saddle", "compass",
)  # fmt: skip
_PLURALS = (
    "apples", "birds", "boats", "candles", "horses", "pencils", "stones", "tickets", "trees",
    "windows", "bottles", "coins", "ducks", "lanterns", "oranges", "sheep", "chairs", "letters",
)  # fmt: skip
_VERBS_PAST = (
    ("carried", "carry"), ("painted", "paint"), ("repaired", "repair"), ("found", "find"),
    ("sold", "sell"), ("moved", "move"), ("cleaned", "clean"), ("lost", "lose"),
    ("borrowed", "borrow"), ("wrapped", "wrap"), ("opened", "open"), ("measured", "measure"),
    ("hid", "hide"), ("bought", "buy"), ("checked", "check"), ("described", "describe"),
    ("delivered", "deliver"), ("covered", "cover"), ("packed", "pack"), ("watched", "watch"),
)  # fmt: skip
_PLACES = (
    "in the kitchen", "near the station", "behind the barn", "on the top shelf",
    "under the bridge", "by the river", "at the market", "in the library", "across the street",
    "next to the church", "inside the old shed", "on the hill", "at the harbour",
    "in the back yard", "along the canal", "outside the bakery",
)  # fmt: skip
_TIMES = (
    "yesterday", "this morning", "last week", "on Monday", "before lunch", "after dinner",
    "at noon", "late at night", "early on Sunday", "in the spring", "during the storm",
    "two days ago", "at half past six", "every Friday", "last summer", "in October",
)  # fmt: skip
_ADVERBS = (
    "slowly", "quickly", "carefully", "quietly", "suddenly", "gladly", "rarely", "nearly",
    "almost", "certainly", "honestly", "proudly",
)  # fmt: skip
_FEELINGS = (
    "happy", "tired", "surprised", "worried", "delighted", "confused", "hungry", "nervous",
    "calm", "angry", "curious", "relieved",
)  # fmt: skip
_WEATHER = ("rains", "snows", "gets windy", "stays warm", "turns cold", "clears up")
_JOBS = (
    "the teacher", "the farmer", "the pilot", "the doctor", "the baker", "the driver",
    "the gardener", "the painter", "the captain", "the nurse", "the engineer", "the mayor",
)  # fmt: skip


def _fill(rng: random.Random) -> dict[str, str]:
    verb_past, verb_base = rng.choice(_VERBS_PAST)
    name, name2 = rng.sample(_NAMES, 2)
    return {
        "name": name,
        "name2": name2,
        "city": rng.choice(_CITIES),
        "adj": rng.choice(_ADJECTIVES),
        "adj2": rng.choice(_ADJECTIVES),
        "noun": rng.choice(_NOUNS),
        "noun2": rng.choice(_NOUNS),
        "plural": rng.choice(_PLURALS),
        "past": verb_past,
        "base": verb_base,
        "place": rng.choice(_PLACES),
        "time": rng.choice(_TIMES),
        "adverb": rng.choice(_ADVERBS),
        "feeling": rng.choice(_FEELINGS),
        "weather": rng.choice(_WEATHER),
        "job": rng.choice(_JOBS),
        "number": str(rng.randint(2, 99)),
        "big": str(rng.randint(100, 2500)),
        "year": str(rng.randint(1890, 2023)),
    }


# Statements, questions, exclamations, imperatives, short and long, with numbers and names, so
# that espeak-ng's rule-based intonation and duration vary between utterances.
_TEMPLATES = (
    "{name} {past} the {adj} {noun} {place} {time}.",
    "Did {name} really {base} the {noun} {place}?",
    "Please {base} the {adj} {noun} before {name} comes home.",
    "The {noun} was {adj2}, but nobody noticed until {time}.",
    "We counted {number} {plural} {place}.",
    "If it {weather} tomorrow, {name} will {base} the {noun} {place}.",
    "How many {plural} did you see {place}?",
    "What a {adj} {noun} that was!",
    "{name} said that a {adj} {noun} in {city} costs {number} dollars.",
    "{time}, {name} and {name2} {adverb} {past} the {noun}.",
    "{job} was {feeling} when the {noun} arrived {time}.",
    "Why would anyone {base} a {adj} {noun} {place}?",
    "{name} lived in {city} until {year}, and then moved away.",
    "There were {big} {plural} {place}, or so {job} claimed.",
    "I {adverb} {past} the {noun}, and {name} {past} the {noun2}.",
    "Is the {adj} {noun} still {place}, or did {name2} take it?",
    "{name} felt {feeling}.",
    "Never {base} the {noun} {place}!",
    "Our {adj} {noun} came all the way from {city}.",
    "{job} {adverb} explained why the {noun} was so {adj2}.",
    "After {number} minutes, {name} finally {past} the {adj} {noun}.",
    "Where did {name} put the {noun}?",
    "It was {time} when {job} first saw the {adj} {noun} {place}.",
    "{name} asked {name2} to {base} {number} {plural} for the school fair.",
    "The train to {city} leaves at {number} minutes past nine.",
    "You should {base} the {noun} {adverb}, because it is very {adj2}.",
    "In {year}, {job} in {city} {past} a {adj} {noun}.",
    "Yes, {name}, the {noun} is {adj2}.",
)


def _articles(text: str) -> str:
    """'a' -> 'an' before a vowel sound ('an old box', but 'a useful map')."""
    return re.sub(r"\b([Aa]) (?=[aeio]|u(?!se))", r"\1n ", text)


def sentence_pool(seed: int, size: int = SENTENCE_POOL_SIZE) -> list[str]:
    """`size` distinct English sentences, a deterministic function of `seed` (no downloads)."""
    if size < 1:
        raise ValueError(f"sentence pool size must be >= 1, got {size}")
    rng = random.Random(f"csc-tts-sentences:{seed}")
    pool: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(pool) < size:
        attempts += 1
        if attempts > 100 * size:
            raise RuntimeError(f"could not generate {size} distinct sentences")
        text = _articles(rng.choice(_TEMPLATES).format(**_fill(rng)))
        text = text[0].upper() + text[1:]
        if text not in seen:
            seen.add(text)
            pool.append(text)
    return pool


# --------------------------------------------------------------------------- voices and plan


def resolve_voices(names: Iterable[str]) -> list[Voice]:
    """Voices by database name (`us1`), speaker name (`mb-us1`) or espeak-ng name (`mb-de1-en`)."""
    by_name: dict[str, Voice] = {}
    for v in VOICES.values():
        by_name[v.db] = by_name[v.speaker] = by_name[v.espeak] = v
    voices: list[Voice] = []
    unknown: list[str] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        if name not in by_name:
            unknown.append(name)
        elif by_name[name] not in voices:
            voices.append(by_name[name])
    if unknown:
        raise CorpusError(
            f"unknown voice(s) {', '.join(unknown)}; known voices: {', '.join(VOICES)}"
        )
    return voices


def split_voices(
    voices: Sequence[Voice], val_voices: Sequence[Voice] = ()
) -> tuple[list[Voice], list[Voice]]:
    """(train, val) voices, each in database-name order. `val_voices` default: the fixed list."""
    val_set = {v.db for v in val_voices} if val_voices else set(DEFAULT_VAL_VOICES)
    train = sorted((v for v in voices if v.db not in val_set), key=lambda v: v.db)
    val = sorted((v for v in voices if v.db in val_set), key=lambda v: v.db)
    return train, val


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One planned utterance: where it goes and the espeak-ng settings that make it."""

    split: str
    voice: Voice
    index: int
    session: str
    text: str
    pitch: int
    rate: int
    word_gap: int

    @property
    def key(self) -> str:
        """Path relative to the split root (VoxCeleb layout), as used in trial lists."""
        return f"{self.voice.speaker}/{self.session}/u{self.index:04d}.wav"


def plan_voice(voice: Voice, split: str, count: int, seed: int, pool: Sequence[str]):
    """The `count` utterances of one voice; depends only on (voice, count, seed, pool)."""
    rng = random.Random(f"csc-tts-voice:{seed}:{voice.db}")
    rate_bands = list(range(NUM_SESSIONS))
    rng.shuffle(rate_bands)
    # Distinct sentences within a voice while the pool lasts.
    order: list[int] = []
    while len(order) < count:
        order.extend(rng.sample(range(len(pool)), len(pool)))
    utts = []
    for i in range(count):
        s = i % NUM_SESSIONS
        utts.append(
            Utterance(
                split=split,
                voice=voice,
                index=i,
                session=f"s{s}",
                text=pool[order[i]],
                pitch=rng.randint(*PITCH_BANDS[s]),
                rate=rng.randint(*RATE_BANDS[rate_bands[s]]),
                word_gap=rng.randint(*WORD_GAP_RANGE),
            )
        )
    return utts


def plan_corpus(
    train: Sequence[Voice], val: Sequence[Voice], count: int, seed: int
) -> list[Utterance]:
    pool = sentence_pool(seed)
    plan: list[Utterance] = []
    for split, voices in (("train", train), ("val", val)):
        for voice in voices:
            plan.extend(plan_voice(voice, split, count, seed, pool))
    return plan


# --------------------------------------------------------------------------- trials


def make_trials(
    records: Sequence[tuple[str, str, str]], seed: int, per_utterance: int
) -> list[tuple[int, str, str]]:
    """A balanced VoxCeleb trial list from (key, speaker, session) records.

    Every utterance enrols in up to `per_utterance` target trials against utterances of the same
    speaker from a *different* session and in exactly as many non-target trials against other
    speakers' utterances. An unordered pair is used at most once. Deterministic in `seed`.
    Returns (label, enroll_key, test_key) with label 1 = same speaker.
    """
    if per_utterance < 1:
        raise ValueError(f"per_utterance must be >= 1, got {per_utterance}")
    records = sorted(records)
    speakers = sorted({spk for _, spk, _ in records})
    if len(speakers) < 2:
        raise CorpusError("a trial list needs at least 2 speakers (non-targets need another one)")
    rng = random.Random(f"csc-tts-trials:{seed}")
    used: set[frozenset[str]] = set()
    trials: list[tuple[int, str, str]] = []
    for key, spk, sess in records:
        targets = [k for k, s, se in records if s == spk and se != sess]
        others = [k for k, s, _ in records if s != spk]
        targets = [k for k in targets if frozenset((key, k)) not in used]
        others = [k for k in others if frozenset((key, k)) not in used]
        n = min(per_utterance, len(targets), len(others))
        for label, pick in ((1, rng.sample(targets, n)), (0, rng.sample(others, n))):
            for k in pick:
                used.add(frozenset((key, k)))
                trials.append((label, key, k))
    if not any(label == 1 for label, _, _ in trials):
        raise CorpusError("no target trials: every speaker needs utterances in 2 sessions")
    return trials


# --------------------------------------------------------------------------- dependencies


def espeak_version(espeak: str) -> str:
    out = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"


def install_help(packages: Sequence[str]) -> str:
    return (
        "Install them on Debian 12 (the MBROLA voices are in the contrib and non-free components;"
        " non-commercial, non-military use only) with:\n"
        f"  sudo {INSTALL_SCRIPT}\n"
        "or by hand:\n"
        "  sudo sed -i 's/^Components: main$/Components: main contrib non-free/' "
        "/etc/apt/sources.list.d/debian.sources\n"
        "  sudo apt-get update\n"
        f"  sudo apt-get install --no-install-recommends {' '.join(packages)}\n"
        "(see docs/tts_corpus.md)"
    )


def _synth_probe(espeak: str, voice: Voice, tmpdir: str) -> str | None:
    """None when `voice` synthesises a word, else espeak-ng's error text."""
    wav = os.path.join(tmpdir, f"probe-{voice.db}.wav")
    proc = subprocess.run(
        [espeak, "-v", voice.espeak, "-w", wav, "test"], check=False, capture_output=True, text=True
    )
    if proc.returncode == 0 and os.path.exists(wav) and os.path.getsize(wav) > 44:
        return None
    return (proc.stderr or proc.stdout).strip() or f"exit status {proc.returncode}"


def check_dependencies(voices: Sequence[Voice]) -> str:
    """Path of espeak-ng once it and every voice in `voices` work; else CorpusError saying what
    to install."""
    all_packages = ["espeak-ng", "mbrola"] + [v.package for v in voices]
    espeak = shutil.which("espeak-ng")
    missing_programs = [p for p in ("espeak-ng", "mbrola") if shutil.which(p) is None]
    if missing_programs:
        raise CorpusError(
            f"program(s) not found on PATH: {', '.join(missing_programs)} "
            f"(needed voices: {', '.join(v.db for v in voices)}).\n" + install_help(all_packages)
        )
    assert espeak is not None
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="csc-tts-probe-") as tmp:
        for v in voices:
            err = _synth_probe(espeak, v, tmp)
            if err is not None:
                failed[v.db] = err
    if failed:
        details = "\n".join(
            f"  {db} ({VOICES[db].espeak}): {err.splitlines()[0]}" for db, err in failed.items()
        )
        packages = ["espeak-ng", "mbrola"] + [VOICES[db].package for db in failed]
        raise CorpusError(
            f"{len(failed)} MBROLA voice(s) missing or broken: {', '.join(failed)}\n"
            f"{details}\n" + install_help(packages)
        )
    return espeak


# --------------------------------------------------------------------------- synthesis


def _read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    import soundfile as sf

    x, sr = sf.read(path, dtype="int16", always_2d=True)
    if x.shape[1] != 1:
        raise RuntimeError(f"{path}: expected mono, got {x.shape[1]} channels")
    return x[:, 0], int(sr)


def _levels(pcm: np.ndarray) -> tuple[float, float]:
    x = pcm.astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0, float(np.max(np.abs(x), initial=0.0))


def _to_16k(pcm: np.ndarray, sr: int) -> tuple[np.ndarray, bool]:
    """Resample int16 audio to SAMPLE_RATE with soxr; returns (int16, clipped)."""
    import soxr

    if sr == SAMPLE_RATE:
        return pcm, bool(np.any(np.abs(pcm.astype(np.int32)) >= 32767))
    y = soxr.resample(pcm.astype(np.float32) / 32768.0, sr, SAMPLE_RATE, quality="HQ")
    y = np.round(y.astype(np.float64) * 32768.0)
    clipped = bool(np.any(np.abs(y) >= 32767))
    return np.clip(y, -32768, 32767).astype(np.int16), clipped


def synthesise(espeak: str, utt: Utterance, out_root: str) -> dict:
    """Synthesise one utterance to <out_root>/<split>/<key> (atomically, through a temporary
    file and os.replace); returns its manifest record."""
    import soundfile as sf

    final = Path(out_root) / utt.split / utt.key
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{threading.get_ident()}"
    tmp_raw = final.with_name(f"{final.stem}.{tag}.espeak.tmp")
    tmp_out = final.with_name(f"{final.stem}.{tag}.wav.tmp")
    amplitude = AMPLITUDE
    try:
        for _ in range(MAX_AMPLITUDE_RETRIES + 1):
            cmd = [espeak, "-v", utt.voice.espeak, "-p", str(utt.pitch), "-s", str(utt.rate)]
            cmd += ["-g", str(utt.word_gap), "-a", str(amplitude), "-w", str(tmp_raw), "--stdin"]
            proc = subprocess.run(cmd, check=False, input=utt.text, capture_output=True, text=True)
            if proc.returncode != 0 or not tmp_raw.exists():
                raise RuntimeError(
                    f"espeak-ng failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                    f"{proc.stderr.strip()}"
                )
            raw, source_rate = _read_wav(tmp_raw)
            raw_clipped = bool(np.any(np.abs(raw.astype(np.int32)) >= 32767))
            pcm, clipped = _to_16k(raw, source_rate)
            if not (raw_clipped or clipped):
                break
            amplitude = max(1, int(amplitude * AMPLITUDE_RETRY_FACTOR))
        else:
            raise RuntimeError(f"still clips at espeak-ng -a {amplitude}")
        # Diphones a voice lacks (mostly the non-English voices speaking English) are replaced
        # by a short silence; count them so they can be inspected or filtered.
        missing_diphones = proc.stderr.count("unknown, replaced")
        sf.write(tmp_out, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp_out, final)
    finally:
        for p in (tmp_raw, tmp_out):
            p.unlink(missing_ok=True)
    rms, peak = _levels(pcm)
    return {
        "key": utt.key,
        "path": f"{utt.split}/{utt.key}",
        "speaker": utt.voice.speaker,
        "session": utt.session,
        "split": utt.split,
        "voice": utt.voice.espeak,
        "gender": utt.voice.gender,
        "voice_language": utt.voice.language,
        "text": utt.text,
        "pitch": utt.pitch,
        "rate": utt.rate,
        "word_gap": utt.word_gap,
        "amplitude": amplitude,
        "source_rate": source_rate,
        "missing_diphones": missing_diphones,
        "seconds": round(len(pcm) / SAMPLE_RATE, 4),
        "rms": round(rms, 6),
        "peak": round(peak, 6),
        "sha256": _sha256(final),
    }


# --------------------------------------------------------------------------- output


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_journal(path: Path) -> dict[str, dict]:
    """Records of the progress journal by path; a line cut short by a crash is ignored."""
    done: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[rec["path"]] = rec
    return done


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare_output(out: Path, settings: dict, overwrite: bool) -> None:
    """Create `out`, or check that an existing corpus there was made with the same settings."""
    settings_path = out / "settings.json"
    if settings_path.exists():
        old = json.loads(settings_path.read_text(encoding="utf-8"))
        if old == settings:
            return
        if not overwrite:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise CorpusError(
                f"{out} holds a corpus built with different settings ({', '.join(diff)}); "
                "pass --overwrite to replace it, or choose another --out"
            )
        for name in ("train", "val"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (
            "manifest.jsonl",
            "trials_val.txt",
            "summary.json",
            "settings.json",
            PROGRESS_JOURNAL,
        ):
            (out / name).unlink(missing_ok=True)
    elif out.exists() and any(out.iterdir()):
        raise CorpusError(
            f"{out} exists, is not empty and has no settings.json (not made by this script); "
            "choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(settings_path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def summarise(records: Sequence[dict], run_seconds: float, run_synthesised: int) -> dict:
    """Counts, hours and level ranges per split; run_* describe this invocation only (a rerun
    that finds every file finished synthesises 0 utterances)."""
    summary: dict = {
        "run_seconds": round(run_seconds, 1),
        "run_synthesised": run_synthesised,
        "splits": {},
    }
    for split in ("train", "val"):
        rs = [r for r in records if r["split"] == split]
        if not rs:
            continue
        secs = np.array([r["seconds"] for r in rs])
        rms = np.array([r["rms"] for r in rs])
        peak = np.array([r["peak"] for r in rs])
        summary["splits"][split] = {
            "speakers": len({r["speaker"] for r in rs}),
            "utterances": len(rs),
            "hours": round(float(secs.sum()) / 3600, 4),
            "seconds_min": float(secs.min()),
            "seconds_max": float(secs.max()),
            "rms_min": float(rms.min()),
            "rms_max": float(rms.max()),
            "peak_min": float(peak.min()),
            "peak_max": float(peak.max()),
            "utterances_with_missing_diphones": sum(1 for r in rs if r["missing_diphones"]),
        }
    return summary


def build(args: argparse.Namespace) -> dict:
    voices = resolve_voices(args.voices.split(",")) if args.voices else list(VOICES.values())
    val_voices = resolve_voices(args.val_voices.split(",")) if args.val_voices else []
    if not voices:
        raise CorpusError("no voices selected")
    if args.utterances_per_voice < 1:
        raise CorpusError("--utterances-per-voice must be >= 1")
    if args.jobs < 1:
        raise CorpusError("--jobs must be >= 1")
    if args.trials_per_utterance < 1:
        raise CorpusError("--trials-per-utterance must be >= 1")
    train, val = split_voices(voices, val_voices)
    espeak = check_dependencies(voices)
    settings = {
        "format_version": FORMAT_VERSION,
        "seed": args.seed,
        "utterances_per_voice": args.utterances_per_voice,
        "trials_per_utterance": args.trials_per_utterance,
        "train_voices": [v.db for v in train],
        "val_voices": [v.db for v in val],
        "sample_rate": SAMPLE_RATE,
        "sessions": NUM_SESSIONS,
        "pitch_bands": [list(b) for b in PITCH_BANDS],
        "rate_bands": [list(b) for b in RATE_BANDS],
        "word_gap_range": list(WORD_GAP_RANGE),
        "amplitude": AMPLITUDE,
        "sentence_pool_size": SENTENCE_POOL_SIZE,
        "espeak_ng": espeak_version(espeak),
    }
    out = Path(args.out)
    prepare_output(out, settings, args.overwrite)
    _write_atomic(out / "NOTICE.txt", LICENCE_NOTE + "\n")
    for split in ("train", "val"):  # leftovers of an interrupted run
        for p in (out / split).glob("*/*/*.tmp"):
            p.unlink(missing_ok=True)

    plan = plan_corpus(train, val, args.utterances_per_voice, args.seed)
    # Finished utterances of an earlier, interrupted run: a wav is reused only when the progress
    # journal holds its record and the file's sha256 matches; anything else is synthesised again.
    journal_path = out / PROGRESS_JOURNAL
    done = _read_journal(journal_path)
    records: list[dict] = []
    todo: list[Utterance] = []
    for u in plan:
        rec = done.get(f"{u.split}/{u.key}")
        wav = out / u.split / u.key
        if rec is not None and wav.exists() and _sha256(wav) == rec["sha256"]:
            records.append(rec)
        else:
            todo.append(u)
    failures: list[str] = []
    start = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(
        total=len(plan), initial=len(records), desc="synthesising", unit="utt", disable=args.quiet
    )
    with (
        journal_path.open("a", encoding="utf-8") as journal,
        # Threads, not processes: the work is the espeak-ng/MBROLA subprocess and soxr (both
        # outside the GIL), and forking a process that may have imported JAX can deadlock.
        concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool,
    ):
        futures = {pool.submit(synthesise, espeak, u, str(out)): u for u in todo}
        for fut in concurrent.futures.as_completed(futures):
            u = futures[fut]
            try:
                rec = fut.result()
            except Exception as e:  # noqa: BLE001 - collected and reported below
                failures.append(f"{u.split}/{u.key} ({u.voice.espeak}): {e}")
            else:
                if rec["rms"] < MIN_RMS:
                    failures.append(f"{rec['path']}: silent (RMS {rec['rms']:.2e})")
                else:
                    journal.write(json.dumps(rec, sort_keys=True) + "\n")
                    journal.flush()
                records.append(rec)
            bar.update(1)
    bar.close()
    run_seconds = time.perf_counter() - start
    if failures:
        raise CorpusError(
            f"{len(failures)} of {len(plan)} utterances failed; no manifest written:\n  "
            + "\n  ".join(sorted(failures)[:50])
        )
    records.sort(key=lambda r: (r["split"], r["speaker"], r["key"]))
    manifest = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    _write_atomic(out / "manifest.jsonl", manifest)
    _write_atomic(journal_path, manifest)  # compact: one line per finished utterance
    val_records = [(r["key"], r["speaker"], r["session"]) for r in records if r["split"] == "val"]
    trials_path = out / "trials_val.txt"
    if len({spk for _, spk, _ in val_records}) >= 2:
        trials = make_trials(val_records, args.seed, args.trials_per_utterance)
        _write_atomic(trials_path, "".join(f"{lab} {e} {t}\n" for lab, e, t in trials))
    else:
        trials_path.unlink(missing_ok=True)
        trials = []
        print(
            "note: trials_val.txt not written: it needs at least 2 validation voices",
            file=sys.stderr,
        )
    summary = summarise(records, run_seconds, len(todo))
    summary["trials"] = {
        "targets": sum(1 for t in trials if t[0] == 1),
        "nontargets": sum(1 for t in trials if t[0] == 0),
    }
    _write_atomic(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=(
            "LICENCE: the MBROLA voices (and so this corpus) are for non-commercial, "
            f"non-military use only. Install them with: sudo {INSTALL_SCRIPT}. "
            "Details: docs/tts_corpus.md."
        ),
    )
    p.add_argument("--out", required=True, help="output directory (e.g. cache/tts_corpus)")
    p.add_argument(
        "--utterances-per-voice",
        type=int,
        default=DEFAULT_UTTERANCES_PER_VOICE,
        help="utterances per voice, spread round-robin over 3 sessions (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default %(default)s")
    p.add_argument(
        "--jobs",
        type=int,
        default=max(1, min(4, os.cpu_count() or 1)),
        help="parallel synthesis processes (default %(default)s)",
    )
    p.add_argument(
        "--voices",
        default="",
        help=f"comma-separated subset of voices (default: all 20: {','.join(VOICES)})",
    )
    p.add_argument(
        "--val-voices",
        default="",
        help=f"comma-separated validation voices (default: {','.join(DEFAULT_VAL_VOICES)})",
    )
    p.add_argument(
        "--trials-per-utterance",
        type=int,
        default=DEFAULT_TRIALS_PER_UTTERANCE,
        help="target (and as many non-target) trials per enrolment utterance (default %(default)s)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a corpus in --out that was built with different settings",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = build(args)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(json.dumps(summary, indent=2, sort_keys=True))
        print(LICENCE_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
