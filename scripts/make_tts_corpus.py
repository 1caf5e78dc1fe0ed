#!/usr/bin/env python3
"""Build a multi-speaker, multi-language corpus with espeak-ng + MBROLA diphone voices.

Every MBROLA voice is a diphone database cut from one real speaker's recordings, so each of the
62 voices used here is a distinct recorded voice (22 female, 40 male, 24 languages). espeak-ng
turns text into phonemes and prosody (an MBROLA .pho file); MBROLA concatenates the speaker's
diphones. Voices with an English espeak-ng voice or `mb-xx-en` variant read English sentences;
the others read sentences in their own language (German, French, Spanish, Italian, Dutch,
Portuguese, Japanese pools), English sentences through their own language's letter-to-sound rules,
or numbers read in their own language, whichever of these their database covers (see VOICES).

Pitch (-p), speaking rate (-s) and word gap (-g) are drawn per utterance, inside a pitch/rate
regime that differs per session, and the text is drawn from procedurally generated sentence
pools, because espeak-ng sets duration and intonation by rule: identical settings would hand a
model a shortcut. Every utterance is scaled to the same RMS level, so loudness is no speaker cue.
Everything is seeded; the same seed gives the same corpus (bit-identical wavs, checked by the
sha256 in the manifest).

Layout (each split root is a VoxCeleb-layout root for FolderSource):

    <out>/train/<speaker>/<session>/<utt>.wav   16 kHz mono 16-bit PCM
    <out>/val/<speaker>/<session>/<utt>.wav
    <out>/manifest.jsonl     one JSON object per utterance (key relative to its split root)
    <out>/trials_val.txt     VoxCeleb trial list "label enroll test", keys relative to <out>/val
    <out>/settings.json      the settings the corpus was built with (compared on rerun)
    <out>/summary.json       voices, counts, hours, level statistics, trials, skipped voices, time
    <out>/NOTICE.txt         the MBROLA licence restriction

LICENCE: the MBROLA voices may be used for non-commercial, non-military purposes only; so may the
corpus built from them. Install: `sudo scripts/install_tts_voices.sh` (see docs/tts_corpus.md).

Example:
    python scripts/make_tts_corpus.py --out cache/tts_corpus_v2 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

FORMAT_VERSION = 3
SAMPLE_RATE = 16000
NUM_SESSIONS = 3
# Session s uses pitch band s; its rate band is a per-voice permutation of the rate bands, so
# pitch and rate are not tied together across voices. Values are espeak-ng -p (0-99) and -s (wpm).
PITCH_BANDS = ((30, 43), (44, 56), (57, 70))
RATE_BANDS = ((130, 149), (150, 169), (170, 190))
WORD_GAP_RANGE = (0, 2)  # espeak-ng -g, in units of 10 ms at the default rate
# Output level: every utterance is scaled to TARGET_RMS_DBFS, or less where its peak would
# exceed PEAK_LIMIT_DBFS. Databases differ by up to 20 dB in level, which an embedder could
# otherwise learn as a speaker cue.
TARGET_RMS_DBFS = -26.0
PEAK_LIMIT_DBFS = -1.0
VOLUME_RETRY_FACTOR = 0.7  # lower MBROLA's volume ratio by this factor when its output clips
MAX_VOLUME_RETRIES = 4
SENTENCE_POOL_SIZE = 500
MIN_RMS = 1e-3  # -60 dBFS before scaling: quieter means (nearly) silent, which is an error
DEFAULT_UTTERANCES_PER_VOICE = 60
DEFAULT_TRIALS_PER_UTTERANCE = 2
DEFAULT_NONTARGET_RATIO = 2
DEFAULT_SEED = 0
PROGRESS_JOURNAL = ".progress.jsonl"
INSTALL_SCRIPT = "scripts/install_tts_voices.sh"
# Where espeak-ng (and Debian's mbrola-* packages) put the databases: <dir>/<db>/<db>.
MBROLA_DIRS = ("/usr/share/mbrola", "/usr/local/share/mbrola", "/usr/share/mbrola/voices")
LICENCE_NOTE = (
    "LICENCE: use for non-commercial, non-military purposes only. The MBROLA diphone voices this "
    "corpus was synthesised with may not be sold or built into a product that is sold without "
    "the database owner's permission, and mbrola-de4 may not be used for military purposes "
    "(see /usr/share/doc/mbrola-*/copyright). Treat the corpus the same way: research use, no "
    "commercial or military use, do not redistribute it with a product."
)


# --------------------------------------------------------------------------- voices

# Language of each database (the speaker's language) -> (name, family). The family balances the
# held-out split; it is the speaker's language, also for voices that read English.
LANGUAGES: dict[str, tuple[str, str]] = {
    "en-us": ("US English", "Germanic"),
    "en-gb": ("British English", "Germanic"),
    "de": ("German", "Germanic"),
    "de-bar": ("Bavarian German", "Germanic"),
    "nl": ("Dutch", "Germanic"),
    "af": ("Afrikaans", "Germanic"),
    "sv": ("Swedish", "Germanic"),
    "fr": ("French", "Romance"),
    "fr-be": ("Belgian French", "Romance"),
    "fr-ca": ("Canadian French", "Romance"),
    "es": ("Spanish", "Romance"),
    "es-mx": ("Mexican Spanish", "Romance"),
    "es-ve": ("Venezuelan Spanish", "Romance"),
    "it": ("Italian", "Romance"),
    "pt-pt": ("European Portuguese", "Romance"),
    "pt-br": ("Brazilian Portuguese", "Romance"),
    "ro": ("Romanian", "Romance"),
    "la": ("Latin", "Romance"),
    "pl": ("Polish", "Slavic"),
    "cs": ("Czech", "Slavic"),
    "hr": ("Croatian", "Slavic"),
    "lt": ("Lithuanian", "Baltic"),
    "hu": ("Hungarian", "Uralic"),
    "et": ("Estonian", "Uralic"),
    "el": ("Greek", "Greek"),
    "tr": ("Turkish", "Turkic"),
    "fa": ("Persian", "Indo-Iranian"),
    "te": ("Telugu", "Dravidian"),
    "ja": ("Japanese", "Japonic"),
    "id": ("Indonesian", "Austronesian"),
    "ms": ("Malay", "Austronesian"),
}
TEXT_SOURCES = {
    "en": "English sentences",
    "de": "German sentences",
    "fr": "French sentences",
    "es": "Spanish sentences",
    "it": "Italian sentences",
    "nl": "Dutch sentences",
    "pt": "Portuguese sentences",
    "ja": "Japanese sentences (kana)",
    "num": "numbers",
}


@dataclasses.dataclass(frozen=True)
class Voice:
    """One MBROLA voice: database name, espeak-ng voice name, speaker gender (as espeak-ng lists
    it), database language, text source (a key of POOLS) and phoneme clones.

    `clones` are MBROLA -C pairs "db_phone espeak_phone ...": espeak-ng's phoneme table for some
    voices names phonemes the database calls differently (mb-es1 asks for "e/", the database has
    "e"); without the clone MBROLA replaces every diphone with that phoneme by silence."""

    db: str
    espeak: str
    gender: str
    language: str
    text: str
    clones: str = ""

    @property
    def speaker(self) -> str:
        return f"mb-{self.db}"

    @property
    def package(self) -> str:
        return f"mbrola-{self.db}"

    @property
    def family(self) -> str:
        return LANGUAGES[self.language][1]

    @property
    def reads(self) -> str:
        """What the voice reads, in words (for the summary and docs)."""
        name = LANGUAGES[self.language][0]
        if self.text == "num":
            return f"numbers, read in {name}"
        if self.text != "en" or self.language.startswith("en-"):
            return TEXT_SOURCES[self.text]
        if self.espeak.endswith("-en"):
            return "English sentences (espeak-ng English rules, the voice's phone set)"
        return f"English sentences through {name} letter-to-sound rules"


# Genders as listed by `espeak-ng --voices=mb` (espeak-ng 1.51). Text source per voice, in this
# order of preference: English for the native English voices and the 16 voices with an espeak-ng
# "mb-xx-en" variant (English rules mapped onto the voice's phone set); the voice's own language
# where this script has a sentence pool; English text read with the voice's own letter-to-sound
# rules for the other Latin-script languages; numbers (digits, read by espeak-ng's number rules
# of the voice's language) where English text leaves more than MAX_MISSING_DIPHONES of the
# diphones missing (non-Latin scripts: espeak-ng reads Latin letters with English phonemes that
# the database lacks). Every voice here leaves at most 5 % of its diphones missing on its text.
VOICES: dict[str, Voice] = {
    v.db: v
    for v in (
        # English, native voices
        Voice("us1", "mb-us1", "F", "en-us", "en"),
        Voice("us2", "mb-us2", "M", "en-us", "en"),
        Voice("us3", "mb-us3", "M", "en-us", "en", clones="O O2"),
        Voice("en1", "mb-en1", "M", "en-gb", "en"),
        # English through espeak-ng's mb-xx-en variants
        Voice("af1", "mb-af1-en", "M", "af", "en"),
        Voice("nl2", "mb-nl2-en", "M", "nl", "en"),
        Voice("fr1", "mb-fr1-en", "M", "fr", "en"),
        Voice("fr4", "mb-fr4-en", "F", "fr", "en"),
        Voice("de1", "mb-de1-en", "F", "de", "en"),
        Voice("de2", "mb-de2-en", "M", "de", "en"),
        Voice("de3", "mb-de3-en", "F", "de", "en"),
        Voice("de4", "mb-de4-en", "M", "de", "en"),
        Voice("de5", "mb-de5-en", "F", "de", "en"),
        Voice("de6", "mb-de6-en", "M", "de", "en"),
        Voice("gr2", "mb-gr2-en", "M", "el", "en"),
        Voice("hu1", "mb-hu1-en", "F", "hu", "en"),
        Voice("pl1", "mb-pl1-en", "F", "pl", "en"),
        Voice("ro1", "mb-ro1-en", "M", "ro", "en"),
        Voice("sw1", "mb-sw1-en", "M", "sv", "en"),
        Voice("sw2", "mb-sw2-en", "F", "sv", "en", clones="i: i"),
        # Their own language
        Voice("de7", "mb-de7", "F", "de", "de"),
        Voice("de8", "mb-de8", "M", "de-bar", "de", clones="i: i OI OY pf pF Y Y:"),
        Voice("fr2", "mb-fr2", "F", "fr", "fr"),
        Voice("fr3", "mb-fr3", "M", "fr", "fr"),
        Voice("fr5", "mb-fr5", "M", "fr-be", "fr"),
        Voice("fr6", "mb-fr6", "M", "fr", "fr"),
        Voice("fr7", "mb-fr7", "M", "fr-be", "fr"),
        Voice("ca1", "mb-ca1", "M", "fr-ca", "fr"),
        Voice("ca2", "mb-ca2", "M", "fr-ca", "fr"),
        Voice("es1", "mb-es1", "M", "es", "es", clones="e e/ o o/"),
        Voice("es2", "mb-es2", "M", "es", "es", clones="e e/ o o/"),
        Voice("es3", "mb-es3", "F", "es", "es", clones="H h r R2 Y L s tS a aU e eI e eU"),
        Voice("es4", "mb-es4", "M", "es", "es", clones="i j r R2 a aU e eI e eU"),
        Voice("mx1", "mb-mx1", "M", "es-mx", "es", clones="e e/ o o/ l l^"),
        Voice("mx2", "mb-mx2", "M", "es-mx", "es", clones="e e/ o o/ l l^"),
        Voice("vz1", "mb-vz1", "M", "es-ve", "es", clones="e e/ o o/ l l^"),
        Voice("it1", "mb-it1", "M", "it", "it", clones="ch tS gh dZ J j U2 U1 SS ss"),
        Voice("it2", "mb-it2", "F", "it", "it", clones="ch tS gh dZ J j U2 U1 SS ss"),
        Voice("it3", "mb-it3", "M", "it", "it", clones="i i/ s ss"),
        Voice("it4", "mb-it4", "F", "it", "it", clones="i i/ s ss"),
        Voice("nl3", "mb-nl3", "F", "nl", "nl"),
        Voice("pt1", "mb-pt1", "F", "pt-pt", "pt", clones="O oo"),
        Voice("br1", "mb-br1", "M", "pt-br", "pt"),
        Voice("br2", "mb-br2", "F", "pt-br", "pt"),
        Voice("br3", "mb-br3", "M", "pt-br", "pt"),
        Voice("br4", "mb-br4", "F", "pt-br", "pt"),
        Voice("jp1", "mb-jp1", "M", "ja", "ja", clones="u U rr r"),
        Voice("jp2", "mb-jp2", "F", "ja", "ja", clones="u U n N"),
        Voice("jp3", "mb-jp3", "F", "ja", "ja", clones="u U rr r"),
        # English text through their own letter-to-sound rules
        Voice("cr1", "mb-cr1", "M", "hr", "en"),
        Voice("cz2", "mb-cz2", "M", "cs", "en"),
        Voice("ee1", "mb-ee1", "M", "et", "en"),
        Voice("id1", "mb-id1", "M", "id", "en"),
        Voice("lt1", "mb-lt1", "M", "lt", "en"),
        Voice("lt2", "mb-lt2", "M", "lt", "en"),
        Voice("tr1", "mb-tr1", "M", "tr", "en", clones="L L/ l l/ e &"),
        Voice("tr2", "mb-tr2", "F", "tr", "en", clones="L L/ l l/ e &"),
        # Numbers read in their own language
        Voice("gr1", "mb-gr1", "M", "el", "num", clones="l L r R n N"),
        Voice("ir1", "mb-ir1", "M", "fa", "num"),
        Voice("la1", "mb-la1", "M", "la", "num"),
        # The Malay database uses English-style phoneme names ("@U", not "o").
        Voice("ma1", "mb-ma1", "F", "ms", "num", clones="d D l l/ l l/2 Q O @U o U u: I i:"),
        Voice("tl1", "mb-tl1", "F", "te", "num", clones="v v# D d. b b# T t. d d#"),
    )
}
# The bar every voice in VOICES cleared (measured on 30 sentences); a build warns about a voice
# above it, which means its text or clones no longer fit its database.
MAX_MISSING_DIPHONES = 0.05
# The MBROLA databases Debian 12 ships that are not used, and why (measured with espeak-ng 1.51,
# mbrola 3.3: share of the diphones MBROLA had to replace by silence on 30 sentences).
SKIPPED_VOICES: dict[str, str] = {
    "bz1": "no espeak-ng voice (Breton)",
    "ar1": "espeak-ng 1.51's Arabic rules are not deterministic: the same number gives different "
    "phonemes from run to run (e.g. 77), so the corpus could not be rebuilt bit for bit",
    "ar2": "as ar1",
    "hn1": "no espeak-ng voice (Korean)",
    "cn1": "espeak-ng 1.51's mb-cn1 names language 'zh' and zh_phtrans, which 1.51 does not "
    "ship (it has cmn), so the voice does not load",
    "nl1": "the database holds only 145 diphones: 68 % missing on Dutch text",
    "hb1": "espeak-ng reads no digits in Hebrew and Latin text with English phonemes the database "
    "lacks (over 100 % of diphones missing); Hebrew text needs vowel points",
    "hb2": "as hb1",
    "in1": "13 % of diphones missing on numbers read in Hindi (48 % on English text)",
    "in2": "as in1",
    "nz1": "91 % of diphones missing on English text, 36 % on numbers read in Maori",
    "cz1": "13 % of diphones missing on English text, 6.5 % on numbers read in Czech",
    "ic1": "5.9 % of diphones missing on English text, 7 % on numbers read in Icelandic",
}

# --------------------------------------------------------------------------- sentence pools
#
# One pool per text source: English (read by the native English voices and by the voices whose
# own language has no pool here), German, French, Spanish, Italian, Dutch, Portuguese and
# Japanese sentences made from templates and word lists written for this script, and strings of
# numbers, which espeak-ng reads out in any language it knows (for the voices whose language is
# written in a non-Latin script and has no pool: espeak-ng reads Latin letters there with its
# English rules, which the voice's diphone set does not cover). Noun phrases are stored in the
# form the templates need (case, gender, article), so no template has to inflect anything.


@dataclasses.dataclass(frozen=True, eq=False)
class PoolSpec:
    """Sentence templates and the words and number ranges that fill their slots."""

    templates: tuple[str, ...]
    words: dict[str, tuple[str, ...]]
    numbers: dict[str, tuple[int, int]]
    fix: Callable[[str], str] | None = None  # applied to every filled template


def _articles(text: str) -> str:
    """'a' -> 'an' before a vowel sound ('an old box', but 'a useful map')."""
    return re.sub(r"\b([Aa]) (?=[aeio]|u(?!se))", r"\1n ", text)


_COMMON_NUMBERS = {"number": (2, 99), "big": (100, 2500), "year": (1890, 2023)}

# fmt: off
_EN_ADJECTIVES = (
    "old", "new", "small", "large", "heavy", "bright", "quiet", "broken", "golden", "wooden",
    "yellow", "green", "strange", "famous", "narrow", "ancient", "empty", "careful", "noisy",
    "simple", "useful", "expensive", "cheap", "fragile", "shiny", "dusty", "modern", "curious",
)
_EN_NOUNS = (
    "box", "letter", "garden", "window", "bicycle", "lamp", "kettle", "ladder", "map", "basket",
    "clock", "engine", "bridge", "violin", "carpet", "jacket", "notebook", "camera", "bottle",
    "wagon", "statue", "painting", "tractor", "umbrella", "suitcase", "telescope", "blanket",
    "radio", "mirror", "fence", "boat", "candle", "parcel", "whistle", "saddle", "compass",
)

POOLS: dict[str, PoolSpec] = {
    # Statements, questions, exclamations, imperatives, short and long, with numbers and names,
    # so that espeak-ng's rule-based intonation and duration vary between utterances.
    "en": PoolSpec(
        templates=(
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
        ),
        words={
            "name": (
                "Anna", "Ben", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Irene",
                "Jack", "Karen", "Leo", "Maria", "Nathan", "Olivia", "Peter", "Rachel", "Samuel",
                "Tina", "Victor", "Walter", "Yvonne", "Oscar", "Helen", "Martin", "Sophie",
                "Thomas", "Lucy", "George", "Nora",
            ),
            "city": (
                "Boston", "Chicago", "Denver", "Dublin", "Edinburgh", "Glasgow", "Houston",
                "London", "Melbourne", "Miami", "Oxford", "Phoenix", "Seattle", "Sydney",
                "Toronto", "Vancouver",
            ),
            "adj": _EN_ADJECTIVES,
            "adj2": _EN_ADJECTIVES,
            "noun": _EN_NOUNS,
            "noun2": _EN_NOUNS,
            "plural": (
                "apples", "birds", "boats", "candles", "horses", "pencils", "stones", "tickets",
                "trees", "windows", "bottles", "coins", "ducks", "lanterns", "oranges", "sheep",
                "chairs", "letters",
            ),
            # No template uses both "past" and "base", so they need not come from one verb.
            "past": (
                "carried", "painted", "repaired", "found", "sold", "moved", "cleaned", "lost",
                "borrowed", "wrapped", "opened", "measured", "hid", "bought", "checked",
                "described", "delivered", "covered", "packed", "watched",
            ),
            "base": (
                "carry", "paint", "repair", "find", "sell", "move", "clean", "lose", "borrow",
                "wrap", "open", "measure", "hide", "buy", "check", "describe", "deliver", "cover",
                "pack", "watch",
            ),
            "place": (
                "in the kitchen", "near the station", "behind the barn", "on the top shelf",
                "under the bridge", "by the river", "at the market", "in the library",
                "across the street", "next to the church", "inside the old shed", "on the hill",
                "at the harbour", "in the back yard", "along the canal", "outside the bakery",
            ),
            "time": (
                "yesterday", "this morning", "last week", "on Monday", "before lunch",
                "after dinner", "at noon", "late at night", "early on Sunday", "in the spring",
                "during the storm", "two days ago", "at half past six", "every Friday",
                "last summer", "in October",
            ),
            "adverb": (
                "slowly", "quickly", "carefully", "quietly", "suddenly", "gladly", "rarely",
                "nearly", "almost", "certainly", "honestly", "proudly",
            ),
            "feeling": (
                "happy", "tired", "surprised", "worried", "delighted", "confused", "hungry",
                "nervous", "calm", "angry", "curious", "relieved",
            ),
            "weather": ("rains", "snows", "gets windy", "stays warm", "turns cold", "clears up"),
            "job": (
                "the teacher", "the farmer", "the pilot", "the doctor", "the baker", "the driver",
                "the gardener", "the painter", "the captain", "the nurse", "the engineer",
                "the mayor",
            ),
        },
        numbers=_COMMON_NUMBERS,
        fix=_articles,
    ),
    "de": PoolSpec(
        templates=(
            "{name} hat {time} {obj} {place} {part}.",
            "Hat {name} wirklich {obj} {place} {part}?",
            "Bitte {inf} Sie {obj}, bevor {name} nach Hause kommt.",
            "Wir haben {number} {plural} {place} gezählt.",
            "Wie viele {plural} hast du {place} gesehen?",
            "{name} wohnte bis {year} in {city} und zog dann weg.",
            "Der Zug nach {city} fährt um {hour} Uhr {minute}.",
            "{name} war {feeling}, als {name2} {time} ankam.",
            "Was für ein {adj} Tag!",
            "Wenn es morgen {weather}, bleibt {name} zu Hause.",
            "Im Jahr {year} hat {job} in {city} {obj} {part}.",
            "Wo hat {name} {obj} gelassen?",
            "Nach {number} Minuten hat {name} endlich {obj} {part}.",
            "{name} und {name2} haben {time} {number} {plural} gekauft.",
            "Ja, {name}, das kostet {big} Euro.",
        ),
        words={
            "name": (
                "Anna", "Lukas", "Marie", "Felix", "Sophie", "Jonas", "Lena", "Paul", "Clara",
                "Max", "Hanna", "Emil", "Greta", "Moritz", "Laura", "Tobias",
            ),
            "city": (
                "Berlin", "Hamburg", "München", "Köln", "Dresden", "Leipzig", "Bremen", "Wien",
                "Zürich", "Graz", "Basel", "Hannover",
            ),
            "obj": (
                "den alten Schrank", "das rote Fahrrad", "die kleine Lampe",
                "den schweren Koffer", "das neue Fenster", "die hölzerne Leiter",
                "den grünen Mantel", "das kaputte Radio", "die goldene Uhr", "den leeren Korb",
                "das große Bild", "den blauen Teppich", "das alte Boot", "die gelbe Tasche",
                "den langen Brief", "das kleine Paket", "die warme Decke", "den hellen Spiegel",
                "die teure Kamera",
            ),
            "part": (
                "repariert", "gefunden", "verkauft", "gekauft", "geputzt", "getragen", "geöffnet",
                "gemalt", "versteckt", "gesucht", "bestellt", "geholt",
            ),
            "inf": (
                "reparieren", "finden", "verkaufen", "kaufen", "putzen", "tragen", "öffnen",
                "verstecken", "suchen", "bestellen", "holen",
            ),
            "plural": (
                "Äpfel", "Vögel", "Boote", "Kerzen", "Pferde", "Stühle", "Flaschen", "Münzen",
                "Bäume", "Briefe",
            ),
            "place": (
                "in der Küche", "am Bahnhof", "hinter der Scheune", "im obersten Regal",
                "unter der Brücke", "am Fluss", "auf dem Markt", "in der Bibliothek",
                "neben der Kirche", "im Garten", "im Keller", "auf dem Dachboden", "am Hafen",
                "vor der Bäckerei",
            ),
            "time": (
                "gestern", "heute Morgen", "letzte Woche", "am Montag", "vor dem Mittagessen",
                "nach dem Abendessen", "am Sonntag", "im Frühling", "während des Sturms",
                "vor zwei Tagen", "letzten Sommer", "im Oktober",
            ),
            "feeling": (
                "müde", "glücklich", "überrascht", "nervös", "hungrig", "froh", "ruhig", "wütend",
            ),
            "adj": ("schöner", "langer", "seltsamer", "ruhiger", "heißer", "kalter"),
            "weather": ("regnet", "schneit", "stürmt", "kalt ist", "warm bleibt", "hagelt"),
            "job": (
                "der Lehrer", "die Ärztin", "der Bäcker", "die Pilotin", "der Bauer",
                "die Malerin", "der Fahrer", "die Gärtnerin", "der Kapitän",
                "die Bürgermeisterin",
            ),
        },
        numbers={**_COMMON_NUMBERS, "hour": (2, 23), "minute": (10, 59)},
    ),
    "fr": PoolSpec(
        templates=(
            "{name} a {part} {obj} {place} {time}.",
            "Est-ce que {name} a vraiment {part} {obj} {place}?",
            "S'il vous plaît, {imp} {obj} avant le retour de {name}.",
            "Nous avons compté {number} {plural} {place}.",
            "Y avait-il des {plural} {place}?",
            "{name} a habité à {city} jusqu'en {year}, puis a déménagé.",
            "Le train pour {city} part à {hour} heures {minute}.",
            "{name} avait {need} quand {job} est arrivé {time}.",
            "Quelle journée {adj}!",
            "S'il {weather} demain, {name} restera à la maison.",
            "En {year}, {job} de {city} a {part} {obj}.",
            "Où est-ce que {name} a mis {obj}?",
            "Après {number} minutes, {name} a enfin {part} {obj}.",
            "{name} et {name2} ont acheté {number} {plural} {time}.",
            "Oui, {name}, cela coûte {big} euros.",
        ),
        words={
            # No name or city starts with a vowel or a mute h: "de {name}" would need "d'".
            "name": (
                "Marie", "Louis", "Camille", "Chloé", "Jules", "Léa", "Paul", "Manon", "Lucas",
                "Claire", "Théo", "Julie", "Nicolas", "Sophie", "Mathieu", "Pauline",
            ),
            "city": (
                "Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Bordeaux", "Lille", "Rennes",
                "Genève", "Bruxelles", "Québec", "Montréal",
            ),
            "obj": (
                "la vieille lampe", "le vélo rouge", "la petite boîte", "la valise lourde",
                "la nouvelle fenêtre", "l'échelle en bois", "le manteau vert", "la radio cassée",
                "la montre dorée", "le panier vide", "le grand tableau", "le tapis bleu",
                "le vieux bateau", "le sac jaune", "la longue lettre", "le petit paquet",
                "la couverture chaude", "le miroir brillant", "l'appareil photo",
            ),
            "part": (
                "réparé", "trouvé", "vendu", "acheté", "nettoyé", "rangé", "porté", "ouvert",
                "peint", "caché", "cherché", "commandé",
            ),
            "imp": (
                "réparez", "trouvez", "vendez", "achetez", "nettoyez", "rangez", "portez",
                "ouvrez", "peignez", "cachez", "cherchez", "commandez",
            ),
            "plural": (
                "pommes", "oiseaux", "bateaux", "bougies", "chevaux", "chaises", "bouteilles",
                "pièces", "arbres", "lettres",
            ),
            "place": (
                "dans la cuisine", "près de la gare", "derrière la grange",
                "sur l'étagère du haut", "sous le pont", "au bord de la rivière", "au marché",
                "à la bibliothèque", "à côté de l'église", "dans le jardin", "à la cave",
                "au grenier", "au port", "devant la boulangerie",
            ),
            "time": (
                "hier", "ce matin", "la semaine dernière", "lundi", "avant le déjeuner",
                "après le dîner", "dimanche", "au printemps", "pendant l'orage",
                "il y a deux jours", "l'été dernier", "en octobre",
            ),
            "need": ("faim", "sommeil", "peur", "froid", "chaud", "raison"),
            "adj": ("magnifique", "étrange", "longue", "calme", "chaude", "froide"),
            "weather": ("pleut", "neige", "fait froid", "fait chaud", "fait beau", "grêle"),
            # Masculine only: "est arrivé" agrees with its subject.
            "job": (
                "le professeur", "le médecin", "le boulanger", "le pilote", "le facteur",
                "le jardinier", "le peintre", "le capitaine", "le maire",
            ),
        },
        numbers={**_COMMON_NUMBERS, "hour": (2, 23), "minute": (10, 59)},
    ),
    "es": PoolSpec(
        templates=(
            "{name} {past} {obj} {place} {time}.",
            "¿De verdad {past} {name} {obj} {place}?",
            "Por favor, {imp} {obj} antes de que llegue {name}.",
            "Contamos {number} {plural} {place}.",
            "¿Había {plural} {place}?",
            "{name} vivió en {city} hasta {year} y después se mudó.",
            "El tren a {city} sale a las {hour} y {minute}.",
            "{name} tenía {need} cuando llegó {job} {time}.",
            "¡Qué día tan {adj}!",
            "Si mañana {weather}, {name} se quedará en casa.",
            "En {year}, {job} de {city} {past} {obj}.",
            "¿Dónde puso {name} {obj}?",
            "Después de {number} minutos, {name} por fin {past} {obj}.",
            "{name} y {name2} compraron {number} {plural} {time}.",
            "Sí, {name}, cuesta {big} euros.",
        ),
        words={
            "name": (
                "María", "Carlos", "Lucía", "Javier", "Elena", "Pablo", "Carmen", "Diego",
                "Sofía", "Miguel", "Laura", "Andrés", "Isabel", "Tomás", "Marta", "Raúl",
            ),
            "city": (
                "Madrid", "Sevilla", "Valencia", "Bilbao", "Granada", "Málaga", "Toledo",
                "Córdoba", "Lima", "Bogotá", "Quito", "Caracas",
            ),
            "obj": (
                "la lámpara vieja", "la bicicleta roja", "la caja pequeña", "la maleta pesada",
                "la ventana nueva", "la escalera de madera", "el abrigo verde", "la radio rota",
                "el reloj dorado", "la cesta vacía", "el cuadro grande", "la alfombra azul",
                "el barco viejo", "la bolsa amarilla", "la carta larga", "el paquete pequeño",
                "la manta caliente", "el espejo brillante", "la cámara cara",
            ),
            "past": (
                "reparó", "encontró", "vendió", "compró", "limpió", "guardó", "llevó", "abrió",
                "pintó", "escondió", "buscó", "pidió",
            ),
            "imp": (
                "repare", "encuentre", "venda", "compre", "limpie", "guarde", "lleve", "abra",
                "pinte", "esconda", "busque", "pida",
            ),
            "plural": (
                "manzanas", "pájaros", "barcos", "velas", "caballos", "sillas", "botellas",
                "monedas", "árboles", "cartas",
            ),
            "place": (
                "en la cocina", "cerca de la estación", "detrás del granero",
                "en el estante de arriba", "debajo del puente", "junto al río", "en el mercado",
                "en la biblioteca", "al lado de la iglesia", "en el jardín", "en el sótano",
                "en el desván", "en el puerto", "delante de la panadería",
            ),
            "time": (
                "ayer", "esta mañana", "la semana pasada", "el lunes", "antes del almuerzo",
                "después de la cena", "el domingo", "en primavera", "durante la tormenta",
                "hace dos días", "el verano pasado", "en octubre",
            ),
            "need": ("hambre", "sueño", "miedo", "frío", "calor", "prisa"),
            "adj": ("bonito", "extraño", "largo", "tranquilo", "caluroso", "frío"),
            "weather": ("llueve", "nieva", "hace frío", "hace calor", "hace viento", "graniza"),
            "job": (
                "el profesor", "la doctora", "el panadero", "la piloto", "el cartero",
                "la jardinera", "el pintor", "el capitán", "la alcaldesa",
            ),
        },
        numbers={**_COMMON_NUMBERS, "hour": (2, 12), "minute": (10, 59)},
    ),
    "it": PoolSpec(
        templates=(
            "{name} ha {part} {obj} {place} {time}.",
            "{name} ha davvero {part} {obj} {place}?",
            "Per favore, {imp} {obj} prima che arrivi {name}.",
            "Abbiamo contato {number} {plural} {place}.",
            "C'erano {plural} {place}?",
            "{name} ha vissuto a {city} fino al {year}, poi ha cambiato città.",
            "Il treno per {city} parte alle {hour} e {minute}.",
            "{name} aveva {need} quando è arrivato {job} {time}.",
            "Che giornata {adj}!",
            "Se domani {weather}, {name} resterà a casa.",
            "Nel {year} {job} di {city} ha {part} {obj}.",
            "Dove ha messo {obj}, {name}?",
            "Dopo {number} minuti, {name} ha finalmente {part} {obj}.",
            "{name} e {name2} hanno comprato {number} {plural} {time}.",
            "Sì, {name}, costa {big} euro.",
        ),
        words={
            "name": (
                "Maria", "Marco", "Giulia", "Luca", "Chiara", "Paolo", "Francesca", "Matteo",
                "Sara", "Giorgio", "Elena", "Davide", "Anna", "Stefano", "Laura", "Pietro",
            ),
            "city": (
                "Roma", "Milano", "Napoli", "Torino", "Firenze", "Bologna", "Venezia", "Genova",
                "Palermo", "Bari", "Verona", "Trieste",
            ),
            "obj": (
                "la vecchia lampada", "la bicicletta rossa", "la piccola scatola",
                "la valigia pesante", "la finestra nuova", "la scala di legno",
                "il cappotto verde", "la radio rotta", "l'orologio d'oro", "il cestino vuoto",
                "il quadro grande", "il tappeto blu", "la vecchia barca", "la borsa gialla",
                "la lunga lettera", "il piccolo pacco", "la coperta calda", "lo specchio lucido",
                "la macchina fotografica",
            ),
            "part": (
                "riparato", "trovato", "venduto", "comprato", "pulito", "portato", "aperto",
                "dipinto", "nascosto", "cercato", "ordinato", "spostato",
            ),
            "imp": (
                "ripari", "trovi", "venda", "compri", "pulisca", "porti", "apra", "dipinga",
                "nasconda", "cerchi", "ordini", "sposti",
            ),
            "plural": (
                "mele", "uccelli", "barche", "candele", "cavalli", "sedie", "bottiglie", "monete",
                "alberi", "lettere",
            ),
            "place": (
                "in cucina", "vicino alla stazione", "dietro il fienile",
                "sullo scaffale più alto", "sotto il ponte", "lungo il fiume", "al mercato",
                "in biblioteca", "accanto alla chiesa", "in giardino", "in cantina", "in soffitta",
                "al porto", "davanti al forno",
            ),
            "time": (
                "ieri", "stamattina", "la settimana scorsa", "lunedì", "prima di pranzo",
                "dopo cena", "domenica", "in primavera", "durante il temporale", "due giorni fa",
                "l'estate scorsa", "in ottobre",
            ),
            "need": ("fame", "sonno", "paura", "freddo", "caldo", "fretta"),
            "adj": ("bellissima", "strana", "lunga", "tranquilla", "calda", "fredda"),
            "weather": ("piove", "nevica", "fa freddo", "fa caldo", "c'è vento", "grandina"),
            # Masculine only: "è arrivato" agrees with its subject.
            "job": (
                "il maestro", "il medico", "il fornaio", "il pilota", "il postino",
                "il giardiniere", "il pittore", "il capitano", "il sindaco",
            ),
        },
        numbers={**_COMMON_NUMBERS, "hour": (2, 12), "minute": (10, 59)},
    ),
    "nl": PoolSpec(
        templates=(
            "{name} heeft {time} {obj} {place} {part}.",
            "Heeft {name} echt {obj} {place} {part}?",
            "{imp} alsjeblieft {obj} voordat {name} thuiskomt.",
            "We hebben {number} {plural} {place} geteld.",
            "Hoeveel {plural} heb je {place} gezien?",
            "{name} woonde tot {year} in {city} en verhuisde toen.",
            "De trein naar {city} vertrekt om {hour} uur.",
            "{name} was {feeling} toen {name2} {time} aankwam.",
            "Wat een {adj} dag!",
            "Als het morgen {weather}, blijft {name} thuis.",
            "In {year} heeft {job} in {city} {obj} {part}.",
            "Waar heeft {name} {obj} gelaten?",
            "Na {number} minuten heeft {name} eindelijk {obj} {part}.",
            "{name} en {name2} hebben {time} {number} {plural} gekocht.",
            "Ja, {name}, dat kost {big} euro.",
        ),
        words={
            "name": (
                "Anna", "Daan", "Emma", "Lucas", "Sanne", "Bram", "Lotte", "Thijs", "Fleur",
                "Ruben", "Eva", "Sem", "Julia", "Milan", "Noor", "Jesse",
            ),
            "city": (
                "Amsterdam", "Rotterdam", "Utrecht", "Leiden", "Groningen", "Delft", "Haarlem",
                "Gent", "Antwerpen", "Brugge", "Maastricht", "Zwolle",
            ),
            "obj": (
                "de oude lamp", "de rode fiets", "de kleine doos", "de zware koffer",
                "het nieuwe raam", "de houten ladder", "de groene jas", "de kapotte radio",
                "de gouden klok", "de lege mand", "het grote schilderij", "het blauwe tapijt",
                "de oude boot", "de gele tas", "de lange brief", "het kleine pakje",
                "de warme deken", "de glimmende spiegel", "de dure camera",
            ),
            "part": (
                "gerepareerd", "gevonden", "verkocht", "gekocht", "gedragen", "geopend",
                "geschilderd", "verstopt", "gezocht", "besteld", "gehaald", "verplaatst",
            ),
            "imp": (
                "Repareer", "Vind", "Verkoop", "Koop", "Draag", "Open", "Schilder", "Verstop",
                "Zoek", "Bestel", "Haal", "Verplaats",
            ),
            "plural": (
                "appels", "vogels", "boten", "kaarsen", "paarden", "stoelen", "flessen", "munten",
                "bomen", "brieven",
            ),
            "place": (
                "in de keuken", "bij het station", "achter de schuur", "op de bovenste plank",
                "onder de brug", "bij de rivier", "op de markt", "in de bibliotheek",
                "naast de kerk", "in de tuin", "in de kelder", "op zolder", "in de haven",
                "voor de bakkerij",
            ),
            "time": (
                "gisteren", "vanochtend", "vorige week", "op maandag", "voor de lunch",
                "na het eten", "op zondag", "in de lente", "tijdens de storm",
                "twee dagen geleden", "vorige zomer", "in oktober",
            ),
            "feeling": ("moe", "blij", "verrast", "nerveus", "hongerig", "rustig", "boos"),
            "adj": ("mooie", "vreemde", "lange", "rustige", "warme", "koude"),
            "weather": ("regent", "sneeuwt", "stormt", "koud is", "warm blijft", "hagelt"),
            "job": (
                "de leraar", "de dokter", "de bakker", "de piloot", "de boer", "de schilder",
                "de chauffeur", "de tuinman",
            ),
        },
        numbers={**_COMMON_NUMBERS, "hour": (2, 12)},
    ),
    "pt": PoolSpec(
        templates=(
            "{name} {past} {obj} {place} {time}.",
            "{name} {past} mesmo {obj} {place}?",
            "Por favor, {imp} {obj} antes que {name} chegue.",
            "Contamos {number} {plural} {place}.",
            "Havia {plural} {place}?",
            "{name} morou em {city} até {year} e depois se mudou.",
            "O trem para {city} sai às {hour} e {minute}.",
            "{name} estava com {need} quando {job} chegou {time}.",
            "Que dia {adj}!",
            "Se amanhã {weather}, {name} vai ficar em casa.",
            "Em {year}, {job} de {city} {past} {obj}.",
            "Onde {name} pôs {obj}?",
            "Depois de {number} minutos, {name} finalmente {past} {obj}.",
            "{name} e {name2} compraram {number} {plural} {time}.",
            "Sim, {name}, custa {big} euros.",
        ),
        words={
            "name": (
                "Maria", "João", "Ana", "Pedro", "Beatriz", "Lucas", "Mariana", "Rafael",
                "Juliana", "Tiago", "Carolina", "Gabriel", "Sofia", "Miguel", "Luísa", "Bruno",
            ),
            "city": (
                "Lisboa", "Porto", "Coimbra", "Braga", "Faro", "Recife", "Salvador", "Curitiba",
                "Manaus", "Fortaleza", "Belém", "Natal",
            ),
            "obj": (
                "a lâmpada velha", "a bicicleta vermelha", "a caixa pequena", "a mala pesada",
                "a janela nova", "a escada de madeira", "o casaco verde", "o rádio quebrado",
                "o relógio dourado", "o cesto vazio", "o quadro grande", "o tapete azul",
                "o barco velho", "a bolsa amarela", "a carta comprida", "o pacote pequeno",
                "o cobertor quente", "o espelho brilhante", "a câmera cara",
            ),
            "past": (
                "consertou", "encontrou", "vendeu", "comprou", "limpou", "guardou", "levou",
                "abriu", "pintou", "escondeu", "procurou", "pediu",
            ),
            "imp": (
                "conserte", "encontre", "venda", "compre", "limpe", "guarde", "leve", "abra",
                "pinte", "esconda", "procure", "peça",
            ),
            "plural": (
                "maçãs", "pássaros", "barcos", "velas", "cavalos", "cadeiras", "garrafas",
                "moedas", "árvores", "cartas",
            ),
            "place": (
                "na cozinha", "perto da estação", "atrás do celeiro", "na prateleira de cima",
                "debaixo da ponte", "ao lado do rio", "no mercado", "na biblioteca",
                "ao lado da igreja", "no jardim", "no porão", "no sótão", "no porto",
                "em frente à padaria",
            ),
            "time": (
                "ontem", "hoje de manhã", "na semana passada", "na segunda-feira",
                "antes do almoço", "depois do jantar", "no domingo", "na primavera",
                "durante a tempestade", "há dois dias", "no verão passado", "em outubro",
            ),
            "need": ("fome", "sono", "medo", "frio", "calor", "pressa"),
            "adj": ("bonito", "estranho", "longo", "tranquilo", "quente", "frio"),
            "weather": ("chover", "nevar", "fizer frio", "fizer calor", "ventar", "fizer sol"),
            "job": (
                "o professor", "a médica", "o padeiro", "o piloto", "o carteiro",
                "a jardineira", "o pintor", "o capitão", "a prefeita",
            ),
        },
        numbers={**_COMMON_NUMBERS, "hour": (2, 12), "minute": (10, 59)},
    ),
    # Kana only (espeak-ng does not read kanji). The particles wa and e are written as they are
    # pronounced (わ, え), because espeak-ng reads は and へ as ha and he.
    "ja": PoolSpec(
        templates=(
            "{name}わ {time} {place} {obj}を {past}。",
            "{name}わ ほんとうに {obj}を {past}か？",
            "{name}が かえる まえに {obj}を {te} ください。",
            "{name}わ {city}に すんで いました。",
            "{city}いきの でんしゃわ もう でましたか？",
            "{time} {place} {name2}に あいました。",
            "{obj}わ どこに ありますか？",
            "{name}と {name2}わ {place} {obj}を {past}。",
            "あしたわ {weather}でしょう。",
            "{name}わ {feeling}。",
            "{city}わ とても {cadj} まちです。",
            "{time} {name}わ {city}え いきました。",
        ),
        words={
            "name": (
                "たなかさん", "すずきさん", "さとうさん", "やまださん", "こばやしさん",
                "わたなべさん", "いとうさん", "なかむらさん", "きむらさん", "はやしさん",
            ),
            "city": (
                "とうきょう", "おおさか", "きょうと", "さっぽろ", "なごや", "ふくおか", "こうべ",
                "せんだい", "ひろしま", "ながさき",
            ),
            "time": (
                "きのう", "けさ", "せんしゅう", "げつようびに", "ひるごはんの まえに",
                "ばんごはんの あとで", "にちようびに", "はるに", "ふつかまえに",
                "きょねんの なつに",
            ),
            "place": (
                "だいどころで", "えきの まえで", "こうえんで", "としょかんで", "みせで", "にわで",
                "がっこうで", "かわの そばで", "みなとで", "はしの したで",
            ),
            "obj": (
                "ふるい かばん", "あかい じてんしゃ", "ちいさい はこ", "おもい にもつ",
                "あたらしい まど", "みどりの うわぎ", "きんいろの とけい", "からの かご",
                "おおきい え", "あおい ふとん", "きいろい ぼうし", "ながい てがみ",
                "あたたかい もうふ", "しろい さら",
            ),
            "past": (
                "なおしました", "みつけました", "うりました", "かいました", "そうじしました",
                "はこびました", "あけました", "かくしました", "さがしました", "たのみました",
            ),
            "te": (
                "なおして", "みつけて", "うって", "かって", "そうじして", "はこんで", "あけて",
                "かくして", "さがして", "たのんで",
            ),
            "weather": ("あめ", "ゆき", "はれ", "くもり"),
            "feeling": (
                "とても つかれて います", "すこし おこって います", "とても うれしそうです",
                "おなかが すいて います", "ねむそうです", "げんきです",
            ),
            "cadj": ("きれいな", "しずかな", "にぎやかな", "ふるい", "おおきい", "ちいさい"),
        },
        numbers={},
    ),
    # Numbers only: digits and punctuation, read by espeak-ng's number rules of the voice's own
    # language (years, three- and four-digit numbers, single digits like a phone number).
    "num": PoolSpec(
        templates=(
            "{big}, {number}, {year}.",
            "{number}, {number2}, {number3}, {number4}.",
            "{year}? {number}!",
            "{d1} {d2} {d3}, {d4} {d5} {d6}.",
            "{number}. {big}. {year}.",
            "{year}, {big}?",
            "{number2} {number}, {big}!",
            "{d1} {d2}, {number}, {year}.",
        ),
        words={},
        numbers={
            "number": (2, 99), "number2": (2, 99), "number3": (2, 99), "number4": (2, 99),
            "big": (100, 9999), "year": (1890, 2023),
            **{f"d{i}": (0, 9) for i in range(1, 7)},
        },
    ),
}
# fmt: on


def _fill(spec: PoolSpec, rng: random.Random) -> dict[str, str]:
    # Every slot is drawn for every sentence (in a fixed order), so a pool depends only on the
    # seed and the spec, not on which slots a template happens to use.
    values = {slot: rng.choice(spec.words[slot]) for slot in sorted(spec.words)}
    values.update({slot: str(rng.randint(*spec.numbers[slot])) for slot in sorted(spec.numbers)})
    if "name" in spec.words:
        values["name"], values["name2"] = rng.sample(spec.words["name"], 2)
    return values


def _capitalise(text: str) -> str:
    """Upper-case the first letter ('¿de' -> '¿De'); scripts without case are unchanged."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
    return text


def sentence_pool(seed: int, size: int = SENTENCE_POOL_SIZE, language: str = "en") -> list[str]:
    """`size` distinct sentences of text source `language` (a key of POOLS), a deterministic
    function of (seed, language); nothing is downloaded."""
    if size < 1:
        raise ValueError(f"sentence pool size must be >= 1, got {size}")
    if language not in POOLS:
        raise ValueError(f"unknown text source {language!r}; known: {', '.join(POOLS)}")
    spec = POOLS[language]
    rng = random.Random(f"csc-tts-sentences:{language}:{seed}")
    pool: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(pool) < size:
        attempts += 1
        if attempts > 100 * size:
            raise RuntimeError(f"could not generate {size} distinct {language} sentences")
        text = rng.choice(spec.templates).format(**_fill(spec, rng))
        text = _capitalise(spec.fix(text) if spec.fix else text)
        if text not in seen:
            seen.add(text)
            pool.append(text)
    return pool


class CorpusError(RuntimeError):
    """A problem the user has to fix (missing dependency, conflicting settings, bad argument)."""


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
        skipped = [f"{n} ({SKIPPED_VOICES[n]})" for n in unknown if n in SKIPPED_VOICES]
        raise CorpusError(
            f"unknown voice(s) {', '.join(unknown)}; known voices: {', '.join(VOICES)}"
            + (f"; not used: {'; '.join(skipped)}" if skipped else "")
        )
    return voices


def _split_order_key(voice: Voice) -> tuple[str, str, str, str]:
    # The hash orders voices within a language without favouring low database numbers.
    digest = hashlib.sha256(f"csc-tts-split:{voice.db}".encode()).hexdigest()
    return (voice.family, voice.gender, voice.language, digest)


def default_val_voices(voices: Iterable[Voice] | None = None) -> tuple[str, ...]:
    """The held-out voices: every third voice (the 2nd, 5th, ...) of all voices sorted by
    language family, gender, language and a hash of the database name.

    Systematic sampling over that order holds out a third (rounded down or up) of every family,
    of each gender within a family and of each language, so train and held-out sets have the same
    mix. It depends on the voice table only, not on --seed or --voices, so every corpus built from
    this table holds out the same voices."""
    ordered = sorted(VOICES.values() if voices is None else voices, key=_split_order_key)
    return tuple(sorted(v.db for v in ordered[1::3]))


DEFAULT_VAL_VOICES = default_val_voices()


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
    pools: dict[str, list[str]] = {}
    plan: list[Utterance] = []
    for split, voices in (("train", train), ("val", val)):
        for voice in voices:
            if voice.text not in pools:
                pools[voice.text] = sentence_pool(seed, language=voice.text)
            plan.extend(plan_voice(voice, split, count, seed, pools[voice.text]))
    return plan


# --------------------------------------------------------------------------- trials


def make_trials(
    records: Sequence[tuple[str, str, str]],
    seed: int,
    per_utterance: int,
    nontarget_ratio: int = 1,
) -> list[tuple[int, str, str]]:
    """A VoxCeleb trial list from (key, speaker, session) records.

    Every utterance enrols in up to `per_utterance` target trials against utterances of the same
    speaker from a *different* session and in `nontarget_ratio` times as many non-target trials
    against other speakers' utterances. An unordered pair is used at most once. Deterministic in
    `seed`. Returns (label, enroll_key, test_key) with label 1 = same speaker.
    """
    if per_utterance < 1:
        raise ValueError(f"per_utterance must be >= 1, got {per_utterance}")
    if nontarget_ratio < 1:
        raise ValueError(f"nontarget_ratio must be >= 1, got {nontarget_ratio}")
    records = sorted(records)
    speakers = sorted({spk for _, spk, _ in records})
    if len(speakers) < 2:
        raise CorpusError("a trial list needs at least 2 speakers (non-targets need another one)")
    by_speaker: dict[str, list[tuple[str, str]]] = {spk: [] for spk in speakers}
    for key, spk, sess in records:
        by_speaker[spk].append((key, sess))
    rng = random.Random(f"csc-tts-trials:{seed}")
    used: set[frozenset[str]] = set()
    trials: list[tuple[int, str, str]] = []
    for key, spk, sess in records:
        targets = [k for k, se in by_speaker[spk] if se != sess and frozenset((key, k)) not in used]
        others = [k for k, s, _ in records if s != spk and frozenset((key, k)) not in used]
        n = min(per_utterance, len(targets))
        picks = (
            (1, rng.sample(targets, n)),
            (0, rng.sample(others, min(n * nontarget_ratio, len(others)))),
        )
        for label, pick in picks:
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


def mbrola_database(db: str) -> str | None:
    """Path of MBROLA database `db`, or None when it is not installed."""
    for d in MBROLA_DIRS:
        path = os.path.join(d, db, db)
        if os.path.isfile(path):
            return path
    return None


def _espeak_pho(espeak: str, voice: Voice, text: str, settings: Sequence[str] = ()) -> str:
    """espeak-ng's MBROLA phoneme file (.pho) for `text`; RuntimeError when it fails."""
    cmd = [espeak, "-q", "--pho", "-v", voice.espeak, *settings, "--stdin"]
    proc = subprocess.run(cmd, check=False, input=text, capture_output=True, text=True)
    if proc.returncode != 0 or not _phones(proc.stdout):
        raise RuntimeError(
            f"espeak-ng produced no phonemes (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stderr.strip()}"
        )
    return proc.stdout


def _phones(pho: str) -> list[str]:
    """The phonemes of a .pho file, pauses and comments left out."""
    names = (line.split(maxsplit=1)[0] for line in pho.splitlines() if line.strip())
    return [p for p in names if p != "_" and not p.startswith(";")]


def _mbrola(voice: Voice, database: str, pho: str, volume: float) -> tuple[np.ndarray, int, str]:
    """Synthesise `pho` with MBROLA at volume ratio `volume`: (int16 samples, sample rate,
    MBROLA's stderr). MBROLA writes Sun .au to stdout: its header allows an unknown length, so
    no temporary file is needed (a .wav header written to a pipe would claim 0 samples)."""
    import soundfile as sf

    cmd = ["mbrola", "-e", "-v", f"{volume:.6g}"]
    if voice.clones:
        cmd += ["-C", voice.clones]
    cmd += [database, "-", "-.au"]
    proc = subprocess.run(cmd, check=False, input=pho.encode(), capture_output=True)
    stderr = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"mbrola failed (exit {proc.returncode}): {' '.join(cmd)}\n{stderr}")
    x, sr = sf.read(io.BytesIO(proc.stdout), dtype="int16", always_2d=True)
    return x[:, 0], int(sr), stderr


def _synth_probe(espeak: str, voice: Voice) -> str | None:
    """None when `voice` synthesises a short text, else the reason it does not."""
    database = mbrola_database(voice.db)
    if database is None:
        return f"MBROLA database {voice.db} not found in {', '.join(MBROLA_DIRS)}"
    try:
        # Digits: every espeak-ng language used here reads them, whatever its script.
        pcm, _, _ = _mbrola(voice, database, _espeak_pho(espeak, voice, "12"), 1.0)
    except RuntimeError as e:
        return str(e).strip()
    return None if pcm.size else "mbrola wrote no audio"


def check_dependencies(voices: Sequence[Voice]) -> str:
    """Path of espeak-ng once it, mbrola and every voice in `voices` work; else CorpusError
    saying what to install."""
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
    for v in voices:
        err = _synth_probe(espeak, v)
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


def _levels(x: np.ndarray) -> tuple[float, float]:
    """(RMS, peak) of float audio in [-1, 1]."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0, float(np.max(np.abs(x), initial=0.0))


def _to_16k(pcm: np.ndarray, sr: int) -> np.ndarray:
    """int16 audio at `sr` -> float64 at SAMPLE_RATE (soxr HQ), full scale = 1."""
    import soxr

    x = pcm.astype(np.float64) / 32768.0
    if sr == SAMPLE_RATE:
        return x
    return soxr.resample(x, sr, SAMPLE_RATE, quality="HQ").astype(np.float64)


def _scale(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(int16 audio, gain): `x` scaled to TARGET_RMS_DBFS, or less where the peak would exceed
    PEAK_LIMIT_DBFS."""
    rms, peak = _levels(x)
    gain = min(10 ** (TARGET_RMS_DBFS / 20) / rms, 10 ** (PEAK_LIMIT_DBFS / 20) / peak)
    y = np.clip(np.round(x * gain * 32768.0), -32768, 32767).astype(np.int16)
    return y, gain


def synthesise(espeak: str, utt: Utterance, out_root: str) -> dict:
    """Synthesise one utterance to <out_root>/<split>/<key> (atomically, through a temporary
    file and os.replace); returns its manifest record.

    espeak-ng writes the .pho file and MBROLA is run on it directly: espeak-ng's own MBROLA
    pipe (espeak-ng -w) loses audio at random when MBROLA prints many warnings at once
    (missing diphones), so the same text came out different from run to run."""
    import soundfile as sf

    database = mbrola_database(utt.voice.db)
    if database is None:
        raise RuntimeError(f"MBROLA database {utt.voice.db} not found")
    final = Path(out_root) / utt.split / utt.key
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{threading.get_ident()}"
    tmp_out = final.with_name(f"{final.stem}.{tag}.wav.tmp")
    settings = ["-p", str(utt.pitch), "-s", str(utt.rate), "-g", str(utt.word_gap)]
    pho = _espeak_pho(espeak, utt.voice, utt.text, settings)
    volume = 1.0
    try:
        for _ in range(MAX_VOLUME_RETRIES + 1):
            raw, source_rate, stderr = _mbrola(utt.voice, database, pho, volume)
            # MBROLA saturates (and says so) when the volume ratio drives a sample past int16.
            if "Saturation" not in stderr and not np.any(np.abs(raw.astype(np.int32)) >= 32767):
                break
            volume = round(volume * VOLUME_RETRY_FACTOR, 6)
        else:
            raise RuntimeError(f"still clips at mbrola -v {volume}")
        x = _to_16k(raw, source_rate)
        source_rms, _ = _levels(x)
        if source_rms < MIN_RMS:
            raise RuntimeError(f"silent (RMS {source_rms:.2e} before scaling)")
        pcm, gain = _scale(x)
        sf.write(tmp_out, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp_out, final)
    finally:
        tmp_out.unlink(missing_ok=True)
    rms, peak = _levels(pcm.astype(np.float64) / 32768.0)
    return {
        "key": utt.key,
        "path": f"{utt.split}/{utt.key}",
        "speaker": utt.voice.speaker,
        "session": utt.session,
        "split": utt.split,
        "voice": utt.voice.espeak,
        "gender": utt.voice.gender,
        "voice_language": utt.voice.language,
        "text_source": utt.voice.text,
        "text": utt.text,
        "pitch": utt.pitch,
        "rate": utt.rate,
        "word_gap": utt.word_gap,
        "volume": volume,
        "gain": round(gain, 6),
        "source_rate": source_rate,
        # Diphones the database lacks are replaced by silence; count them (and the phonemes)
        # so they can be inspected or filtered.
        "missing_diphones": stderr.count("unknown, replaced"),
        "phonemes": len(_phones(pho)),
        "seconds": round(len(pcm) / SAMPLE_RATE, 4),
        "source_rms": round(source_rms, 6),
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


def _missing_share(records: Sequence[dict]) -> float:
    """Share of the phonemes whose diphone MBROLA replaced by silence."""
    phonemes = sum(r["phonemes"] for r in records)
    return round(sum(r["missing_diphones"] for r in records) / max(1, phonemes), 4)


def summarise(records: Sequence[dict], run_seconds: float, run_synthesised: int) -> dict:
    """Voices, counts, hours and level ranges per split; run_* describe this invocation only (a
    rerun that finds every file finished synthesises 0 utterances)."""
    summary: dict = {
        "run_seconds": round(run_seconds, 1),
        "run_synthesised": run_synthesised,
        "splits": {},
        "voices": {},
        "skipped_voices": dict(SKIPPED_VOICES),
    }
    for split in ("train", "val"):
        rs = [r for r in records if r["split"] == split]
        if not rs:
            continue
        secs = np.array([r["seconds"] for r in rs])
        source_rms = np.array([r["source_rms"] for r in rs])
        peak = np.array([r["peak"] for r in rs])
        first = {r["speaker"]: r for r in reversed(rs)}  # one record per speaker
        summary["splits"][split] = {
            "speakers": len(first),
            "female": sum(r["gender"] == "F" for r in first.values()),
            "male": sum(r["gender"] == "M" for r in first.values()),
            "languages": dict(sorted(Counter(r["voice_language"] for r in first.values()).items())),
            "text_sources": dict(sorted(Counter(r["text_source"] for r in first.values()).items())),
            "utterances": len(rs),
            "hours": round(float(secs.sum()) / 3600, 4),
            "seconds_min": float(secs.min()),
            "seconds_max": float(secs.max()),
            "source_rms_min": float(source_rms.min()),
            "source_rms_max": float(source_rms.max()),
            "peak_min": float(peak.min()),
            "peak_max": float(peak.max()),
            "utterances_with_missing_diphones": sum(1 for r in rs if r["missing_diphones"]),
            "missing_diphones_per_phoneme": _missing_share(rs),
        }
    for spk in sorted({r["speaker"] for r in records}):
        rs = [r for r in records if r["speaker"] == spk]
        voice = VOICES[spk.removeprefix("mb-")]
        summary["voices"][spk] = {
            "split": rs[0]["split"],
            "espeak_voice": voice.espeak,
            "gender": voice.gender,
            "language": voice.language,
            "family": voice.family,
            "reads": voice.reads,
            "source_rate": rs[0]["source_rate"],
            "utterances": len(rs),
            "missing_diphones_per_phoneme": _missing_share(rs),
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
    if args.nontarget_ratio < 1:
        raise CorpusError("--nontarget-ratio must be >= 1")
    train, val = split_voices(voices, val_voices)
    espeak = check_dependencies(voices)
    settings = {
        "format_version": FORMAT_VERSION,
        "seed": args.seed,
        "utterances_per_voice": args.utterances_per_voice,
        "trials_per_utterance": args.trials_per_utterance,
        "nontarget_ratio": args.nontarget_ratio,
        # The whole voice entry, so that a change to a voice's text or clones is a new corpus.
        "train_voices": [dataclasses.asdict(v) for v in train],
        "val_voices": [dataclasses.asdict(v) for v in val],
        "sample_rate": SAMPLE_RATE,
        "sessions": NUM_SESSIONS,
        "pitch_bands": [list(b) for b in PITCH_BANDS],
        "rate_bands": [list(b) for b in RATE_BANDS],
        "word_gap_range": list(WORD_GAP_RANGE),
        "target_rms_dbfs": TARGET_RMS_DBFS,
        "peak_limit_dbfs": PEAK_LIMIT_DBFS,
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
        # Threads, not processes: the work is the espeak-ng/MBROLA subprocesses and soxr (both
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
        trials = make_trials(
            val_records, args.seed, args.trials_per_utterance, args.nontarget_ratio
        )
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
        "enrollment_speakers": len({t[1].split("/", 1)[0] for t in trials}),
    }
    _write_atomic(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    for spk, info in summary["voices"].items():
        if info["missing_diphones_per_phoneme"] > MAX_MISSING_DIPHONES:
            print(
                f"warning: {spk} misses {100 * info['missing_diphones_per_phoneme']:.1f} % of its "
                f"diphones (bar: {100 * MAX_MISSING_DIPHONES:.0f} %)",
                file=sys.stderr,
            )
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
    p.add_argument("--out", required=True, help="output directory (e.g. cache/tts_corpus_v2)")
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
        help="parallel synthesis threads (default %(default)s)",
    )
    p.add_argument(
        "--voices",
        default="",
        help=f"comma-separated subset of voices (default: all {len(VOICES)})",
    )
    p.add_argument(
        "--val-voices",
        default="",
        help=(
            "comma-separated validation voices (default: every third voice by language family "
            f"and gender, {len(DEFAULT_VAL_VOICES)} voices: {','.join(DEFAULT_VAL_VOICES)})"
        ),
    )
    p.add_argument(
        "--trials-per-utterance",
        type=int,
        default=DEFAULT_TRIALS_PER_UTTERANCE,
        help="target trials per enrolment utterance (default %(default)s)",
    )
    p.add_argument(
        "--nontarget-ratio",
        type=int,
        default=DEFAULT_NONTARGET_RATIO,
        help="non-target trials per target trial (default %(default)s)",
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
