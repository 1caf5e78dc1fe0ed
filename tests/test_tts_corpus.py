"""Tests of scripts/make_tts_corpus.py (espeak-ng + MBROLA corpus builder).

All tests but the last run without espeak-ng; the end-to-end test synthesises 2 utterances for 3
voices and is skipped when espeak-ng, mbrola or those MBROLA voices are not installed.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_tts_corpus.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_tts_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


tts = _load_script()


# --------------------------------------------------------------------------- sentence pool


def test_sentence_pool_is_deterministic_and_varied():
    a = tts.sentence_pool(seed=0)
    assert a == tts.sentence_pool(seed=0)
    assert a != tts.sentence_pool(seed=1)
    assert len(a) == tts.SENTENCE_POOL_SIZE == len(set(a))
    assert all(s[0].isupper() and s[-1] in ".?!" for s in a)
    # Questions, exclamations and statements, short and long.
    assert {s[-1] for s in a} == {".", "?", "!"}
    lengths = [len(s.split()) for s in a]
    assert min(lengths) <= 5 and max(lengths) >= 14
    assert not any(" a a" in s or " a o" in s or " a e" in s for s in a)
    assert tts.sentence_pool(seed=3, size=7) == tts.sentence_pool(seed=3)[:7]


@pytest.mark.parametrize("language", sorted(tts.POOLS))
def test_every_pool_is_deterministic_distinct_and_filled(language):
    a = tts.sentence_pool(seed=0, language=language)
    assert a == tts.sentence_pool(seed=0, language=language)
    assert a != tts.sentence_pool(seed=1, language=language)
    assert len(a) == len(set(a)) == tts.SENTENCE_POOL_SIZE
    assert not any("{" in s or "}" in s for s in a)  # every slot filled
    assert all(s[-1] in ".?!。？" for s in a)
    letters = [next((c for c in s if c.isalpha()), "") for s in a]
    if language not in ("ja", "num"):
        assert all(c.isupper() for c in letters)  # also after "¿" and "¡"
    if language == "num":
        assert all(not c for c in letters)  # digits and punctuation only
    # The pools differ between languages (their own seeds and words).
    if language != "en":
        assert not set(a) & set(tts.sentence_pool(seed=0))


def test_sentence_pool_rejects_bad_size_and_language():
    with pytest.raises(ValueError, match="pool size"):
        tts.sentence_pool(seed=0, size=0)
    with pytest.raises(ValueError, match="unknown text source"):
        tts.sentence_pool(seed=0, language="xx")


# --------------------------------------------------------------------------- voices and plan


def test_voice_table_is_complete():
    # Every MBROLA database Debian 12 ships is either used or skipped with a reason.
    assert len(tts.VOICES) == 62 and len(tts.SKIPPED_VOICES) == 13
    assert not set(tts.VOICES) & set(tts.SKIPPED_VOICES)
    assert all(reason for reason in tts.SKIPPED_VOICES.values())
    for v in tts.VOICES.values():
        assert v.gender in ("F", "M")
        assert v.language in tts.LANGUAGES and v.family
        assert v.text in tts.POOLS and v.text in tts.TEXT_SOURCES and v.reads
        assert v.speaker == f"mb-{v.db}" and v.package == f"mbrola-{v.db}"
        # English text for the native English voices and every "-en" variant.
        if v.language.startswith("en-") or v.espeak.endswith("-en"):
            assert v.text == "en"
        # A pool in the voice's own language is used where there is one.
        base = v.language.split("-")[0]
        if base in tts.POOLS and not v.espeak.endswith("-en"):
            assert v.text == base
        # MBROLA -C takes pairs: database phoneme, espeak-ng phoneme.
        assert len(v.clones.split()) % 2 == 0
    assert tts.VOICES["cz2"].reads == "English sentences through Czech letter-to-sound rules"
    assert tts.VOICES["tl1"].reads == "numbers, read in Telugu"
    genders = [v.gender for v in tts.VOICES.values()]
    assert (genders.count("F"), genders.count("M")) == (22, 40)


def test_default_voice_split_is_deterministic_and_balanced():
    voices = list(tts.VOICES.values())
    train, val = tts.split_voices(voices)
    assert (len(train), len(val)) == (41, 21)
    assert {v.db for v in val} == set(tts.DEFAULT_VAL_VOICES)
    assert not {v.db for v in train} & {v.db for v in val}
    assert [v.db for v in train] == sorted(v.db for v in train)
    # A function of the voice table only: input order and the seed do not matter.
    assert tts.default_val_voices(reversed(voices)) == tts.DEFAULT_VAL_VOICES
    # A third of every family (rounded either way), and of each gender.
    for family in {v.family for v in voices}:
        n = sum(v.family == family for v in voices)
        held = sum(v.family == family for v in val)
        assert n // 3 <= held <= -(-n // 3), family
    for gender in ("F", "M"):
        n = sum(v.gender == gender for v in voices)
        assert abs(sum(v.gender == gender for v in val) - n / 3) <= 2, gender
    assert len({v.language.split("-")[0] for v in val}) >= 9
    assert {v.text for v in val} >= {"en", "num", "de", "fr", "es"}
    # A subset keeps each voice's split.
    sub_train, sub_val = tts.split_voices([tts.VOICES["us1"], tts.VOICES["us3"]])
    assert [v.db for v in sub_train] == ["us1"] and [v.db for v in sub_val] == ["us3"]


def test_resolve_voices_accepts_aliases_and_rejects_unknown():
    got = tts.resolve_voices(["us1", "mb-de1-en", "mb-fr4", " us1 ", ""])
    assert [v.db for v in got] == ["us1", "de1", "fr4"]
    with pytest.raises(tts.CorpusError, match="unknown voice.*xx9"):
        tts.resolve_voices(["us1", "xx9"])
    with pytest.raises(tts.CorpusError, match=r"not used: nl1 \(the database holds only 145"):
        tts.resolve_voices(["nl1"])
    train, val = tts.split_voices(got, val_voices=tts.resolve_voices(["fr4"]))
    assert [v.db for v in train] == ["de1", "us1"] and [v.db for v in val] == ["fr4"]


def test_plan_is_deterministic_per_voice_and_within_bands():
    pool = tts.sentence_pool(0)
    us1 = tts.VOICES["us1"]
    plan = tts.plan_voice(us1, "train", 30, seed=0, pool=pool)
    assert plan == tts.plan_voice(us1, "train", 30, seed=0, pool=pool)
    assert plan != tts.plan_voice(us1, "train", 30, seed=1, pool=pool)
    # A voice's utterances do not depend on which other voices are built.
    full = tts.plan_corpus([us1, tts.VOICES["de1"]], [tts.VOICES["us3"]], 30, seed=0)
    assert [u for u in full if u.voice == us1] == plan
    assert len({u.text for u in plan}) == 30  # distinct sentences within a voice
    assert [u.session for u in plan[:6]] == ["s0", "s1", "s2", "s0", "s1", "s2"]
    rate_band_of = {}
    for u in plan:
        s = int(u.session[1:])
        lo, hi = tts.PITCH_BANDS[s]
        assert lo <= u.pitch <= hi
        band = [i for i, (a, b) in enumerate(tts.RATE_BANDS) if a <= u.rate <= b]
        assert len(band) == 1
        rate_band_of.setdefault(u.session, set()).add(band[0])
        assert tts.WORD_GAP_RANGE[0] <= u.word_gap <= tts.WORD_GAP_RANGE[1]
        assert u.key == f"mb-us1/{u.session}/u{u.index:04d}.wav"
    # One rate band per session, a different one for each session.
    assert all(len(b) == 1 for b in rate_band_of.values())
    assert len({next(iter(b)) for b in rate_band_of.values()}) == 3


# --------------------------------------------------------------------------- trials


def _fake_records(speakers=4, per_speaker=9):
    return [
        (f"spk{s}/s{i % 3}/u{i:04d}.wav", f"spk{s}", f"s{i % 3}")
        for s in range(speakers)
        for i in range(per_speaker)
    ]


@pytest.mark.parametrize("ratio", [1, 2])
def test_trials_cross_session_and_deterministic(ratio):
    records = _fake_records()
    trials = tts.make_trials(records, seed=0, per_utterance=2, nontarget_ratio=ratio)
    again = tts.make_trials(list(reversed(records)), seed=0, per_utterance=2, nontarget_ratio=ratio)
    assert trials == again
    assert trials != tts.make_trials(records, seed=1, per_utterance=2, nontarget_ratio=ratio)
    info = {k: (spk, sess) for k, spk, sess in records}
    targets = [t for t in trials if t[0] == 1]
    nontargets = [t for t in trials if t[0] == 0]
    assert len(nontargets) == ratio * len(targets) > 0
    for _, e, t in targets:
        assert info[e][0] == info[t][0] and info[e][1] != info[t][1]
    for _, e, t in nontargets:
        assert info[e][0] != info[t][0]
    pairs = [frozenset((e, t)) for _, e, t in trials]
    assert len(pairs) == len(set(pairs))
    assert all(e != t for _, e, t in trials)
    # Every utterance enrols, with `ratio` non-targets per target each.
    for key in info:
        labels = [lab for lab, e, _ in trials if e == key]
        assert labels.count(0) == ratio * labels.count(1)
    assert {e for _, e, _ in trials} == set(info)


def test_default_trial_list_size():
    # The default corpus: 21 held-out voices x 60 utterances, 2 targets and 4 non-targets each.
    n_val = len(tts.DEFAULT_VAL_VOICES)
    records = _fake_records(speakers=n_val, per_speaker=tts.DEFAULT_UTTERANCES_PER_VOICE)
    trials = tts.make_trials(
        records, seed=0, per_utterance=tts.DEFAULT_TRIALS_PER_UTTERANCE,
        nontarget_ratio=tts.DEFAULT_NONTARGET_RATIO,
    )  # fmt: skip
    n_utts = n_val * tts.DEFAULT_UTTERANCES_PER_VOICE
    assert sum(t[0] for t in trials) == 2 * n_utts == 2520
    assert len(trials) == 6 * n_utts == 7560
    # Every speaker enrols and is tested against every other one.
    enrolled = {e.split("/")[0] for _, e, _ in trials}
    assert len(enrolled) == n_val
    for spk in enrolled:
        against = {t.split("/")[0] for lab, e, t in trials if lab == 0 and e.startswith(spk + "/")}
        assert len(against) >= n_val - 1 - 2  # nearly all others, at 240 non-targets over 20


def test_trials_need_two_speakers_and_two_sessions():
    with pytest.raises(tts.CorpusError, match="at least 2 speakers"):
        tts.make_trials(_fake_records(speakers=1), seed=0, per_utterance=2)
    one_session = [(k, spk, "s0") for k, spk, _ in _fake_records()]
    with pytest.raises(tts.CorpusError, match="2 sessions"):
        tts.make_trials(one_session, seed=0, per_utterance=2)
    with pytest.raises(ValueError):
        tts.make_trials(_fake_records(), seed=0, per_utterance=0)
    with pytest.raises(ValueError):
        tts.make_trials(_fake_records(), seed=0, per_utterance=1, nontarget_ratio=0)


# --------------------------------------------------------------------------- output handling


def test_prepare_output_refuses_other_settings_and_foreign_dirs(tmp_path):
    out = tmp_path / "corpus"
    tts.prepare_output(out, {"seed": 0}, overwrite=False)
    (out / "train" / "mb-us1" / "s0").mkdir(parents=True)
    tts.prepare_output(out, {"seed": 0}, overwrite=False)  # same settings: resume
    assert (out / "train").exists()
    with pytest.raises(tts.CorpusError, match=r"different settings \(seed\).*--overwrite"):
        tts.prepare_output(out, {"seed": 1}, overwrite=False)
    tts.prepare_output(out, {"seed": 1}, overwrite=True)
    assert not (out / "train").exists()
    assert json.loads((out / "settings.json").read_text()) == {"seed": 1}
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(tts.CorpusError, match="no settings.json"):
        tts.prepare_output(foreign, {"seed": 0}, overwrite=True)
    assert (foreign / "notes.txt").exists()


def test_missing_programs_error_says_what_to_install(tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(tts.CorpusError) as err:
        tts.check_dependencies([tts.VOICES["us1"], tts.VOICES["de5"]])
    msg = str(err.value)
    assert "espeak-ng" in msg and "mbrola" in msg
    assert "scripts/install_tts_voices.sh" in msg
    assert "apt-get install --no-install-recommends espeak-ng mbrola mbrola-us1 mbrola-de5" in msg


def test_missing_programs_cli_exits_with_message(tmp_path):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    out = tmp_path / "corpus"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--voices", "us1,de5"],
        env={**os.environ, "PATH": str(empty)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "error: program(s) not found on PATH: espeak-ng, mbrola" in proc.stderr
    assert "sudo scripts/install_tts_voices.sh" in proc.stderr
    assert "mbrola-us1 mbrola-de5" in proc.stderr
    assert not out.exists()  # nothing written before the dependency check


def test_install_script_help_mentions_licence_and_installs_exactly_the_voices():
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "install_tts_voices.sh"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "NON-COMMERCIAL, NON-MILITARY" in proc.stdout
    listed = set(re.findall(r"\bmbrola-[a-z]{2}[0-9]\b", proc.stdout))
    assert listed == {v.package for v in tts.VOICES.values()}


def test_scale_to_target_level_or_peak_limit():
    t = np.linspace(0, 1, 16000, endpoint=False)
    quiet = 0.01 * np.sin(2 * np.pi * 200 * t)  # crest factor 3 dB: the RMS target decides
    y, gain = tts._scale(quiet)
    rms = float(np.sqrt(np.mean((y / 32768.0) ** 2)))
    assert abs(20 * np.log10(rms) - tts.TARGET_RMS_DBFS) < 0.01 and gain > 1
    spiky = np.zeros(16000)
    spiky[::1000] = 0.5  # crest factor 26 dB: the peak limit decides
    y, _ = tts._scale(spiky)
    peak = float(np.max(np.abs(y))) / 32768.0
    assert abs(20 * np.log10(peak) - tts.PEAK_LIMIT_DBFS) < 0.01


def test_phones_skip_pauses_and_comments():
    pho = "; comment\n_\t20\nh\t60\n@\t50 0 120\n\n_\t100\nl\t70\n"
    assert tts._phones(pho) == ["h", "@", "l"]


# --------------------------------------------------------------------------- end to end

# 16 kHz and 22.05 kHz databases (de5 exercises the resampler); es1 reads Spanish through
# phoneme clones (without them a quarter of its diphones would be missing).
E2E_VOICES = ("us1", "de5", "es1")


def _e2e_skip_reason() -> str | None:
    missing = [p for p in ("espeak-ng", "mbrola") if shutil.which(p) is None]
    if missing:
        return f"{', '.join(missing)} not installed (run: sudo scripts/install_tts_voices.sh)"
    espeak = shutil.which("espeak-ng")
    bad = [db for db in E2E_VOICES if tts._synth_probe(espeak, tts.VOICES[db]) is not None]
    if bad:
        pkgs = " ".join(f"mbrola-{db}" for db in bad)
        return f"MBROLA voice(s) {pkgs} not installed (run: sudo scripts/install_tts_voices.sh)"
    return None


_SKIP_REASON = _e2e_skip_reason()


@pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")
def test_end_to_end_synthesis_is_deterministic(tmp_path, capsys):
    import soundfile as sf

    def build(out):
        argv = ["--out", str(out), "--utterances-per-voice", "2", "--voices", ",".join(E2E_VOICES)]
        argv += ["--val-voices", "de5", "--jobs", "1", "--quiet"]
        assert tts.main(argv) == 0

    a, b = tmp_path / "a", tmp_path / "b"
    build(a)
    build(b)
    records = [json.loads(line) for line in (a / "manifest.jsonl").read_text().splitlines()]
    assert [r["path"] for r in records] == [
        "train/mb-es1/s0/u0000.wav",
        "train/mb-es1/s1/u0001.wav",
        "train/mb-us1/s0/u0000.wav",
        "train/mb-us1/s1/u0001.wav",
        "val/mb-de5/s0/u0000.wav",
        "val/mb-de5/s1/u0001.wav",
    ]
    assert (a / "manifest.jsonl").read_bytes() == (b / "manifest.jsonl").read_bytes()
    for r in records:
        wav_a, wav_b = a / r["path"], b / r["path"]
        assert wav_a.read_bytes() == wav_b.read_bytes()  # synthesis is deterministic
        info = sf.info(wav_a)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        x, _ = sf.read(wav_a, dtype="float64")
        rms, peak = float(np.sqrt(np.mean(x**2))), float(np.max(np.abs(x)))
        # Scaled to the target RMS (-26 dBFS), or to the peak limit (-1 dBFS) where that is less.
        assert abs(20 * np.log10(rms) + 26) < 0.1 or abs(20 * np.log10(peak) + 1) < 0.1
        assert 20 * np.log10(rms) < -25.9 and peak < 0.9 and r["source_rms"] > 0.005
        assert abs(r["rms"] - rms) < 1e-5 and r["gain"] > 0 and r["volume"] > 0
        assert abs(r["seconds"] - len(x) / 16000) < 1e-3 and r["seconds"] > 0.5
        assert r["key"] == r["path"].split("/", 1)[1]
        for field in ("speaker", "split", "text", "pitch", "rate", "session", "text_source"):
            assert field in r
        assert r["phonemes"] > 5 and r["missing_diphones"] <= r["phonemes"]
    assert {r["source_rate"] for r in records} == {16000, 22050}
    es1 = [r for r in records if r["speaker"] == "mb-es1"]
    assert all(r["text_source"] == "es" and r["missing_diphones"] == 0 for r in es1)
    summary = json.loads((a / "summary.json").read_text())
    assert summary["voices"]["mb-es1"]["reads"] == "Spanish sentences"
    assert summary["skipped_voices"] == tts.SKIPPED_VOICES
    assert not (a / "trials_val.txt").exists()  # one validation voice: no non-targets
    assert "trials_val.txt not written" in capsys.readouterr().err
    assert not list(a.rglob("*.tmp"))
    # A rerun with the same settings skips finished files; other settings are refused.
    mtimes = {p: p.stat().st_mtime_ns for p in a.rglob("*.wav")}
    build(a)
    assert mtimes == {p: p.stat().st_mtime_ns for p in a.rglob("*.wav")}
    argv = ["--out", str(a), "--voices", ",".join(E2E_VOICES), "--seed", "5", "--quiet"]
    assert tts.main(argv) == 1
    assert "different settings" in capsys.readouterr().err
