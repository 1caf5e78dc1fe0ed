"""Command line: eval.py embed / score / extract (csc_jax.inference.cli) round trips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from conftest import make_tiny_config

from csc_jax import audio_io, errors, inference, metrics
from csc_jax.data import synthetic
from csc_jax.data import trials as trials_lib
from csc_jax.inference.cli import cli_main

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = 8000


@pytest.fixture(scope="module")
def setup(tmp_path_factory, shared_cache):
    """(workdir, wav root, corpus): a tiny model trained for 4 steps and its test split as wavs."""
    from csc_jax.training.loop import train

    workdir = str(tmp_path_factory.mktemp("cli_run"))
    config = make_tiny_config(shared_cache)
    train(config, workdir)
    corpus = synthetic.load_or_generate(config.data.synthetic, "test", SR, shared_cache)
    root = synthetic.save_wav_tree(corpus, tmp_path_factory.mktemp("cli_wav"))
    return workdir, str(root), corpus


@pytest.fixture(scope="module")
def model(setup):
    return inference.load(setup[0])


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli_main([str(a) for a in argv], prog="eval.py")
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_embed_writes_npz_keyed_by_path_and_respects_overwrite(setup, model, tmp_path, capsys):
    workdir, root, corpus = setup
    files = [os.path.join(root, k) for k in corpus.keys[:3]]
    out = tmp_path / "emb.npz"
    rc, stdout, err = run(capsys, "embed", "--workdir", workdir, "--out", out, *files)
    assert rc == 0, err
    assert "wrote 3 embeddings" in stdout
    with np.load(out) as npz:
        assert sorted(npz.files) == sorted(files)
        got = np.stack([npz[f] for f in files])
    assert got.dtype == np.float32 and got.shape == (3, model.embedding_dim)
    np.testing.assert_allclose(got, model.embed(files), atol=1e-5)

    before = out.read_bytes()
    rc, _, err = run(capsys, "embed", "--workdir", workdir, "--out", out, files[0])
    assert rc == 2 and str(out) in err and "--overwrite" in err
    assert out.read_bytes() == before  # untouched

    # --list (comments and blank lines skipped) plus --overwrite replaces the file.
    listing = tmp_path / "files.txt"
    listing.write_text(f"# two files\n{files[1]}\n\n{files[2]}\n")
    rc, _, err = run(
        capsys, "embed", "--workdir", workdir, "--out", out, "--overwrite", "--list", listing
    )
    assert rc == 0, err
    with np.load(out) as npz:
        assert sorted(npz.files) == sorted(files[1:])
        np.testing.assert_allclose(npz[files[2]], got[2], atol=1e-5)


def test_score_writes_lines_and_prints_eer(setup, model, tmp_path, capsys):
    workdir, root, corpus = setup
    trials = trials_lib.generate_trials(corpus.keys, corpus.speakers, seed=1)
    trials_path = tmp_path / "trials.txt"
    trials_lib.write_trials(trials, trials_path)
    out = tmp_path / "scores.txt"
    argv = ["score", "--workdir", workdir, "--trials", trials_path, "--audio_root", root]
    rc, stdout, err = run(capsys, *argv, "--out", out)
    assert rc == 0, err
    lines = [ln.split() for ln in out.read_text().splitlines()]
    assert [(a, b) for a, b, _ in lines] == [(t.enroll, t.test) for t in trials]
    scores = np.array([float(s) for *_, s in lines])
    labels = np.array([t.label for t in trials])
    assert f"EER {100 * metrics.eer(scores, labels)[0]:.2f} %" in stdout
    emb = dict(zip(corpus.keys, model.embed(corpus.waveforms), strict=True))
    np.testing.assert_allclose(scores, [emb[t.enroll] @ emb[t.test] for t in trials], atol=1e-5)
    rc, _, err = run(capsys, *argv, "--out", out)
    assert rc == 2 and "scores.txt" in err
    # A trial naming a file that does not exist under --audio_root.
    trials_lib.write_trials(
        [*trials, trials_lib.Trial(0, trials[0].enroll, "spkX/sess00/missing.wav")], trials_path
    )
    rc, _, err = run(capsys, *argv, "--out", tmp_path / "s2.txt")
    assert rc == 2 and "missing.wav" in err
    assert not (tmp_path / "s2.txt").exists()


def test_extract_writes_the_mixture_rate_in_the_format_of_the_extension(
    setup, model, tmp_path, capsys
):
    workdir, root, corpus = setup
    s, i = corpus.waveforms[0], corpus.waveforms[4]
    n = min(len(s), len(i))
    mix16 = soxr.resample(s[:n] + i[:n], SR, 16000)  # a 16 kHz stereo mixture file
    mixture = tmp_path / "mix.wav"
    soundfile.write(mixture, np.stack([mix16, mix16], 1), 16000, subtype="FLOAT")
    enrollment = os.path.join(root, corpus.keys[1])
    out = tmp_path / "target.wav"
    argv = ["extract", "--workdir", workdir, "--mixture", mixture, "--enrollment", enrollment]
    rc, stdout, err = run(capsys, *argv, "--out", out)
    assert rc == 0, err
    info = soundfile.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert info.frames == len(mix16)  # the mixture's rate and length
    y, _ = soundfile.read(out, dtype="float32")
    # The model's 8 kHz estimate resampled to 16 kHz (and rescaled: the 16-bit rounding).
    y8 = model.extract(str(mixture), enrollment)
    expected = audio_io.resample(y8, SR, 16000, length=len(mix16))
    np.testing.assert_allclose(y, expected, atol=2 / 32768)
    assert "16000 Hz, WAV PCM_16" in stdout
    rc, _, err = run(capsys, *argv, "--out", out)
    assert rc == 2 and "target.wav" in err and "--overwrite" in err
    rc, _, err = run(capsys, *argv, "--out", out, "--overwrite")
    assert rc == 0, err

    # --rate chooses the rate; the extension chooses the format.
    rc, _, err = run(capsys, *argv, "--out", tmp_path / "t8.flac", "--rate", SR)
    assert rc == 0, err
    info = soundfile.info(tmp_path / "t8.flac")
    assert (info.format, info.samplerate, info.frames) == ("FLAC", SR, round(len(mix16) / 2))
    rc, _, err = run(capsys, *argv, "--out", tmp_path / "t.ogg")
    assert rc == 0, err
    info = soundfile.info(tmp_path / "t.ogg")
    assert (info.format, info.subtype, info.samplerate) == ("OGG", "VORBIS", 16000)
    for bad in ("t.xyz", "t"):
        rc, _, err = run(capsys, *argv, "--out", tmp_path / bad)
        assert rc == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
        assert str(tmp_path / bad) in err and "unknown audio file extension" in err, err
        assert not (tmp_path / bad).exists()


def test_embed_writes_npy_rows_in_input_order_and_refuses_other_extensions(
    setup, model, tmp_path, capsys
):
    workdir, root, corpus = setup
    files = [os.path.join(root, k) for k in corpus.keys[:3]]
    out = tmp_path / "emb.npy"
    rc, stdout, err = run(capsys, "embed", "--workdir", workdir, "--out", out, *files)
    assert rc == 0, err
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == (3, model.embedding_dim)
    np.testing.assert_allclose(got, model.embed(files), atol=1e-5)
    assert "(N, D) array" in stdout
    rc, _, err = run(capsys, "embed", "--workdir", workdir, "--out", tmp_path / "e.txt", *files)
    assert rc == 2 and "'.txt'" in err and ".npy" in err and ".npz" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "e.txt").exists()


def test_silent_audio_is_an_error_naming_the_file(setup, tmp_path, capsys):
    workdir, root, corpus = setup
    good = os.path.join(root, corpus.keys[0])
    zeros, hush = tmp_path / "zeros.wav", tmp_path / "hush.wav"
    soundfile.write(zeros, np.zeros(SR, np.int16), SR)
    rng = np.random.default_rng(0)
    soundfile.write(hush, (10 ** (-70 / 20) * rng.standard_normal(SR)).astype(np.float32), SR)
    for silent, level in ((zeros, "all zeros"), (hush, "RMS -70")):
        rc, _, err = run(
            capsys, "embed", "--workdir", workdir, "--out", tmp_path / "e.npy", good, silent
        )
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert str(silent) in err and "silent" in err and level in err, err
    argv = ["extract", "--workdir", workdir, "--mixture", good, "--enrollment", zeros]
    rc, _, err = run(capsys, *argv, "--out", tmp_path / "t.wav")
    assert rc == 2 and str(zeros) in err and "silent" in err, err
    assert not (tmp_path / "e.npy").exists() and not (tmp_path / "t.wav").exists()


def test_bad_inputs_give_errors_naming_the_file(setup, tmp_path, capsys):
    workdir, root, corpus = setup
    good = os.path.join(root, corpus.keys[0])
    missing = tmp_path / "missing.wav"
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"\x00\x01not audio" * 50)
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(400, np.int16), SR)  # 0.05 s
    out = tmp_path / "o.npz"
    for bad, expect in ((missing, "not found"), (garbage, "cannot"), (short, "too short")):
        rc, _, err = run(capsys, "embed", "--workdir", workdir, "--out", out, good, bad)
        assert rc == 2, err
        assert str(bad) in err and expect in err, err
        assert not out.exists()
    rc, _, err = run(capsys, "embed", "--workdir", tmp_path / "nowhere", "--out", out, good)
    assert rc == 2 and "nowhere" in err
    rc, _, err = run(
        capsys,
        "extract",
        "--workdir",
        workdir,
        "--mixture",
        good,
        "--enrollment",
        short,
        "--out",
        tmp_path / "t.wav",
    )
    assert rc == 2 and "short.wav" in err
    with pytest.raises(SystemExit) as exc:  # argparse: --out is required
        cli_main(["embed", "--workdir", workdir, good])
    assert exc.value.code == 2
    capsys.readouterr()


def test_bad_trial_list_and_checkpoint_errors_are_one_line(setup, tmp_path, capsys):
    workdir, root, corpus = setup
    out = tmp_path / "scores.txt"
    bad = tmp_path / "bad_trials.txt"
    bad.write_text(f"1 {corpus.keys[0]} {corpus.keys[1]}\nmaybe a b\n")
    argv = ["score", "--workdir", workdir, "--audio_root", root, "--out", out]
    rc, _, err = run(capsys, *argv, "--trials", bad)
    assert rc == errors.EXIT_INVALID_INPUT and "bad_trials.txt" in err, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not out.exists()
    # --debug: the same error with its traceback.
    with pytest.raises(errors.DataError, match="bad_trials.txt"):
        cli_main(["score", *map(str, argv[1:]), "--trials", str(bad)], debug=True)

    good = os.path.join(root, corpus.keys[0])
    rc, _, err = run(
        capsys, "embed", "--workdir", workdir, "--step", 999, "--out", tmp_path / "e.npz", good
    )
    # A step that is not there is the user's input: exit 2 (MissingCheckpointError).
    assert rc == errors.EXIT_INVALID_INPUT and "step 999" in err and "available" in err, err
    assert len(err.strip().splitlines()) == 1
    # A workdir with its config.json but no checkpoint.
    empty = tmp_path / "untrained"
    empty.mkdir()
    (empty / "config.json").write_bytes((Path(workdir) / "config.json").read_bytes())
    rc, _, err = run(capsys, "embed", "--workdir", empty, "--out", tmp_path / "e.npz", good)
    assert rc == errors.EXIT_INVALID_INPUT and str(empty) in err and "checkpoint" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "e.npz").exists()


def test_eval_py_dispatches_subcommands_and_keeps_the_protocol_default(setup, tmp_path):
    workdir, root, corpus = setup
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO_ROOT)
    out = tmp_path / "e.npz"
    wav = os.path.join(root, corpus.keys[0])
    cmd = [sys.executable, "eval.py", "embed", "--workdir", workdir, "--out", str(out), wav]
    r = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with np.load(out) as npz:
        assert npz.files == [wav]
    # Without a subcommand eval.py is still the absl verification protocol.
    cmd = [
        sys.executable,
        "eval.py",
        "--config",
        "configs/default.py",
        "--workdir",
        str(tmp_path / "no_run"),
    ]
    r = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    # One line, with the status of its class (no checkpoint where the user pointed: 2).
    assert r.returncode == errors.MissingCheckpointError.exit_status == 2, r.stderr
    assert r.stderr.startswith("error: ") and "no checkpoint directory" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
