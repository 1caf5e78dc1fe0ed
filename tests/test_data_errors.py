"""Bad training data ends in one ``error:`` line (exit status 2) before anything compiles.

Each case builds its bad input in a temporary folder and runs ``train.py`` on it with the tiny
config (tests/conftest.py, passed as ``--config.*`` flags). The child runs with
``JAX_LOG_COMPILES=1``, so any XLA compilation would add lines to stderr; training never
started if ``checkpoints/`` holds no step and there is no ``tensorboard/`` folder.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from _train_worker import REPO, subprocess_env, tiny_cli_flags
from conftest import make_tiny_config

from csc_jax import audio_io
from csc_jax.data import sources
from csc_jax.data.sources import FolderSource
from csc_jax.errors import BadAudioFileError, DataError

RATE = 16000
SECONDS = 2.0
SPEAKERS = ("spk0", "spk1", "spk2")


def _wav(root: Path, rel: str, x: np.ndarray, subtype: str = "PCM_16") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, x, RATE, subtype=subtype)
    return path


def _speech(seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(SECONDS * RATE))).astype(
        np.float32
    )


def _corpus(root: Path, speakers=SPEAKERS) -> Path:
    """Two utterances (two sessions) per speaker, 2 s of 16 kHz noise each."""
    for n, spk in enumerate(speakers):
        for u in range(2):
            _wav(root, f"{spk}/sess{u}/utt{u}.wav", _speech(10 * n + u))
    return root


def _train(tmp_path: Path, cache: Path, train_root, test_root=None, **overrides):
    workdir = tmp_path / "run"
    test_root = train_root if test_root is None else test_root
    flags = tiny_cli_flags(cache, **overrides)
    args = [
        *flags,
        "--config.data.source=folder",
        f"--config.data.folder.train_root={train_root}",
        f"--config.data.folder.test_root={test_root}",
        f"--workdir={workdir}",
    ]
    env = dict(subprocess_env(), JAX_LOG_COMPILES="1")
    proc = subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc, workdir


def _assert_one_error_line_before_compiling(proc, workdir: Path, *named: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]  # also: no 'Compiling ...' log line
    line = lines[0]
    assert line.startswith("error: ")
    for name in named:
        assert name in line, line
    checkpoints = workdir / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())
    assert not (workdir / "tensorboard").exists() and not (workdir / "metrics.jsonl").exists()
    assert "step" not in proc.stdout and "resumed" not in proc.stdout
    return line


# ------------------------------------------------------------------------ train.py


def test_unreadable_wav(shared_cache, tmp_path):
    root = _corpus(tmp_path / "data")
    bad = root / "spk1/sess0/garbage.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    proc, workdir = _train(tmp_path, shared_cache, root)
    line = _assert_one_error_line_before_compiling(proc, workdir, str(bad))
    assert "unreadable" in line and "--config.data.folder.on_bad_file=skip" in line


def test_zero_length_wav(shared_cache, tmp_path):
    root = _corpus(tmp_path / "data")
    bad = root / "spk2/sess1/empty.wav"
    bad.write_bytes(b"")
    proc, workdir = _train(tmp_path, shared_cache, root)
    line = _assert_one_error_line_before_compiling(proc, workdir, str(bad))
    assert "empty file (0 bytes)" in line


def test_wav_with_one_nan_sample(shared_cache, tmp_path):
    root = _corpus(tmp_path / "data")
    x = _speech(99)
    x[1234] = np.nan
    bad = _wav(root, "spk0/sess1/nan.wav", x, subtype="FLOAT")
    proc, workdir = _train(tmp_path, shared_cache, root)
    line = _assert_one_error_line_before_compiling(proc, workdir, str(bad))
    assert "1 NaN/Inf sample(s), the first at frame 1234" in line


def test_folder_with_one_speaker(shared_cache, tmp_path):
    root = _corpus(tmp_path / "solo", speakers=("only",))
    proc, workdir = _train(tmp_path, shared_cache, root)
    line = _assert_one_error_line_before_compiling(proc, workdir, str(root))
    assert "found 1 speaker(s) ('only')" in line and "at least 2" in line


def test_missing_train_root(shared_cache, tmp_path):
    missing = tmp_path / "no_such_corpus"
    test_root = _corpus(tmp_path / "test")
    proc, workdir = _train(tmp_path, shared_cache, missing, test_root)
    line = _assert_one_error_line_before_compiling(proc, workdir, str(missing))
    assert "does not exist" in line and "config.data.folder.train_root" in line


def test_trial_list_naming_a_missing_file(shared_cache, tmp_path):
    root = _corpus(tmp_path / "data")
    trials = tmp_path / "trials.txt"
    trials.write_text(
        "1 spk0/sess0/utt0.wav spk0/sess1/utt1.wav\n0 spk0/sess0/utt0.wav gone/x/y.wav\n"
    )
    proc, workdir = _train(
        tmp_path,
        shared_cache,
        root,
        **{"data.folder.trials": str(trials), "train.eval_at_end": True},
    )
    _assert_one_error_line_before_compiling(proc, workdir, "'gone/x/y.wav'", str(trials))


# ------------------------------------------------------------------------ in process


def _folder_config(cache, root: Path, **overrides):
    return make_tiny_config(
        cache,
        **{
            "data.source": "folder",
            "data.folder.train_root": str(root),
            "data.folder.test_root": str(root),
            "data.sample_rate": RATE,
            **overrides,
        },
    )


def test_nan_file_is_reported_when_the_source_is_built(shared_cache, tmp_path, caplog):
    """Before any step: make_source (what the training program builds before compiling)
    raises; with on_bad_file='skip' the file is dropped with one warning, never loaded."""
    root = _corpus(tmp_path / "data")
    x = _speech(7)
    x[5] = np.inf
    _wav(root, "spk1/sess1/inf.wav", x, subtype="FLOAT")
    with pytest.raises(BadAudioFileError, match=r"inf\.wav: contains 1 NaN/Inf") as info:
        sources.make_source(_folder_config(shared_cache, root), "train")
    assert info.value.path == str(root.resolve() / "spk1/sess1/inf.wav")
    assert "\n" not in str(info.value)

    config = _folder_config(shared_cache, root, **{"data.folder.on_bad_file": "skip"})
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        src = sources.make_source(config, "train")
    assert src.skipped == ["spk1/sess1/inf.wav"] and len(src) == 2 * len(SPEAKERS)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 bad audio file" in warnings[0].getMessage()
    assert "spk1/sess1/inf.wav (contains 1 NaN/Inf" in warnings[0].getMessage()


def test_skip_warning_counts_all_and_names_the_first_few(tmp_path, caplog):
    root = _corpus(tmp_path / "data")
    for i in range(7):
        (root / f"spk0/sess0/bad{i}.wav").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger=sources.__name__):
        src = FolderSource(root, RATE, on_bad_file="skip")
    assert len(src.skipped) == 7 and len(src) == 2 * len(SPEAKERS)
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "skipped 7 bad audio file(s)" in message
    assert "bad0.wav" in message and "bad4.wav" in message and "bad5.wav" not in message
    assert message.endswith(", ...")

    only_bad = tmp_path / "only_bad"
    (only_bad / "a/s").mkdir(parents=True)
    (only_bad / "a/s/x.wav").write_bytes(b"")
    with pytest.raises(DataError, match=r"all 1 were skipped as bad, e\.g\. a/s/x\.wav \(empty"):
        FolderSource(only_bad, RATE, on_bad_file="skip")


def test_index_cache_decodes_only_new_or_changed_files(tmp_path, monkeypatch):
    root = _corpus(tmp_path / "data")
    decoded: list[str] = []
    real = audio_io.check_audio_file

    def counting(path):
        decoded.append(os.path.relpath(path, root.resolve()))
        return real(path)

    monkeypatch.setattr(audio_io, "check_audio_file", counting)
    FolderSource(root, RATE)
    assert len(decoded) == 2 * len(SPEAKERS)

    decoded.clear()
    FolderSource(root, RATE)
    assert decoded == []  # unchanged files: nothing decoded

    # A file rewritten with a NaN (new size and mtime) is decoded again, and the NaN found.
    x = _speech(1)
    x[3] = np.nan
    changed = _wav(root, "spk0/sess1/utt1.wav", x, subtype="FLOAT")
    with pytest.raises(BadAudioFileError, match="utt1.wav: contains 1 NaN/Inf"):
        FolderSource(root, RATE)
    assert decoded == ["spk0/sess1/utt1.wav"]

    # The failure is remembered (same signature: not decoded again, still refused) ...
    decoded.clear()
    with pytest.raises(BadAudioFileError, match="utt1.wav"):
        FolderSource(root, RATE)
    assert decoded == []

    # ... until the file is fixed.
    x[3] = 0.0
    _wav(root, "spk0/sess1/utt1.wav", x, subtype="FLOAT")
    stamp = os.stat(changed).st_mtime + 5
    os.utime(changed, (stamp, stamp))
    assert len(FolderSource(root, RATE)) == 2 * len(SPEAKERS)
    assert decoded == ["spk0/sess1/utt1.wav"]


def test_data_errors_are_csc_errors_with_one_line(tmp_path):
    """Every folder problem is a DataError (exit status 2) whose message is one line."""
    cases = {
        "missing": tmp_path / "missing",
        "no audio": tmp_path / "no_audio",
        "one speaker": _corpus(tmp_path / "solo", speakers=("a",)),
    }
    (tmp_path / "no_audio" / "x").mkdir(parents=True)
    for what, root in cases.items():
        with pytest.raises(DataError) as info:
            FolderSource(root, RATE)
        assert info.value.exit_status == 2, what
        assert "\n" not in str(info.value) and str(root) in str(info.value), what
