"""Tests of scripts/make_tts_corpus.py (espeak-ng + MBROLA corpus builder).

All tests but the last run without espeak-ng; the end-to-end test synthesises 2 utterances for 2
voices and is skipped when espeak-ng or those MBROLA voices are not installed.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
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


def test_sentence_pool_rejects_bad_size():
    with pytest.raises(ValueError, match="pool size"):
        tts.sentence_pool(seed=0, size=0)


# --------------------------------------------------------------------------- voices and plan


def test_default_voice_split():
    train, val = tts.split_voices(list(tts.VOICES.values()))
    assert len(train) == 16 and len(val) == 4
    assert {v.db for v in val} == set(tts.DEFAULT_VAL_VOICES) == {"us3", "de5", "fr1", "pl1"}
    assert not {v.db for v in train} & {v.db for v in val}
    assert {v.gender for v in val} == {"F", "M"}
    assert {v.gender for v in train} == {"F", "M"}
    assert len({v.language for v in val}) == 4
    assert [v.db for v in train] == sorted(v.db for v in train)
    # Every voice uses the English text-to-phoneme rules: native English or an "-en" variant.
    for v in tts.VOICES.values():
        assert v.espeak in ("mb-us1", "mb-us2", "mb-us3", "mb-en1") or v.espeak.endswith("-en")
        assert v.speaker == f"mb-{v.db}" and v.package == f"mbrola-{v.db}"


def test_resolve_voices_accepts_aliases_and_rejects_unknown():
    got = tts.resolve_voices(["us1", "mb-de1-en", "mb-fr4", " us1 ", ""])
    assert [v.db for v in got] == ["us1", "de1", "fr4"]
    with pytest.raises(tts.CorpusError, match="unknown voice.*xx9"):
        tts.resolve_voices(["us1", "xx9"])
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


def test_trials_balanced_cross_session_and_deterministic():
    records = _fake_records()
    trials = tts.make_trials(records, seed=0, per_utterance=2)
    assert trials == tts.make_trials(list(reversed(records)), seed=0, per_utterance=2)
    assert trials != tts.make_trials(records, seed=1, per_utterance=2)
    info = {k: (spk, sess) for k, spk, sess in records}
    targets = [t for t in trials if t[0] == 1]
    nontargets = [t for t in trials if t[0] == 0]
    assert len(targets) == len(nontargets) > 0
    for _, e, t in targets:
        assert info[e][0] == info[t][0] and info[e][1] != info[t][1]
    for _, e, t in nontargets:
        assert info[e][0] != info[t][0]
    pairs = [frozenset((e, t)) for _, e, t in trials]
    assert len(pairs) == len(set(pairs))
    assert all(e != t for _, e, t in trials)
    # Every utterance enrols, with equal numbers of targets and non-targets each.
    for key in info:
        labels = [lab for lab, e, _ in trials if e == key]
        assert labels.count(1) == labels.count(0)
    assert {e for _, e, _ in trials} == set(info)


def test_trials_need_two_speakers_and_two_sessions():
    with pytest.raises(tts.CorpusError, match="at least 2 speakers"):
        tts.make_trials(_fake_records(speakers=1), seed=0, per_utterance=2)
    one_session = [(k, spk, "s0") for k, spk, _ in _fake_records()]
    with pytest.raises(tts.CorpusError, match="2 sessions"):
        tts.make_trials(one_session, seed=0, per_utterance=2)
    with pytest.raises(ValueError):
        tts.make_trials(_fake_records(), seed=0, per_utterance=0)


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


def test_install_script_help_mentions_licence():
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "install_tts_voices.sh"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "NON-COMMERCIAL, NON-MILITARY" in proc.stdout
    assert "mbrola-sw2" in proc.stdout


# --------------------------------------------------------------------------- end to end

E2E_VOICES = ("us1", "de5")  # 16 kHz and 22.05 kHz databases (de5 exercises the resampler)


def _e2e_skip_reason() -> str | None:
    missing = [p for p in ("espeak-ng", "mbrola") if shutil.which(p) is None]
    if missing:
        return f"{', '.join(missing)} not installed (run: sudo scripts/install_tts_voices.sh)"
    with tempfile.TemporaryDirectory() as tmp:
        bad = [
            db
            for db in E2E_VOICES
            if tts._synth_probe(shutil.which("espeak-ng"), tts.VOICES[db], tmp) is not None
        ]
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
        assert rms > 0.005 and peak < 0.99  # speech, not silence, not clipped
        assert abs(r["seconds"] - len(x) / 16000) < 1e-3 and r["seconds"] > 0.5
        assert r["key"] == r["path"].split("/", 1)[1]
        for field in ("speaker", "split", "text", "pitch", "rate", "session", "missing_diphones"):
            assert field in r
    assert {r["source_rate"] for r in records} == {16000, 22050}
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
