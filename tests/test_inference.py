"""Inference API (csc_jax.load / SpeakerModel) and audio I/O on a tiny model trained here."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile
import soxr
from conftest import make_tiny_config

import csc_jax
from csc_jax import audio_io, errors, inference, losses, metrics
from csc_jax.data import synthetic
from csc_jax.data import trials as trials_lib
from csc_jax.errors import CheckpointError, CheckpointMismatchError, ConfigError
from csc_jax.inference.batched import BatchedModel

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = 8000
STEPS = 6


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_cache):
    """A workdir with a tiny model trained for a few steps (checkpoints every 2 steps)."""
    from csc_jax.training.loop import train

    workdir = str(tmp_path_factory.mktemp("inference_run"))
    config = make_tiny_config(shared_cache, **{"train.steps": STEPS})
    train(config, workdir)
    return workdir, config


@pytest.fixture(scope="module")
def model(trained):
    return csc_jax.load(trained[0])


@pytest.fixture(scope="module")
def corpus(trained):
    c = trained[1]
    return synthetic.load_or_generate(c.data.synthetic, "test", SR, c.data.cache_dir)


def _si_snr(est, ref) -> float:
    return float(losses.si_snr(np.asarray(est, np.float32), np.asarray(ref, np.float32)))


# ----------------------------------------------------------------------------- loading


def test_load_from_workdir_checkpoints_dir_and_step_dir(trained, model):
    workdir, config = trained
    assert model.step == STEPS and model.sample_rate == SR
    assert model.embedding_dim == config.model.speaker_dim
    assert model.config.model.to_dict() == config.model.to_dict()
    same = inference.load(os.path.join(workdir, "checkpoints"))
    assert same.step == STEPS
    older = inference.load(os.path.join(workdir, "checkpoints", str(STEPS - 2)))
    assert older.step == STEPS - 2
    assert inference.load(workdir, step=STEPS - 2).step == STEPS - 2

    def leaves(m):
        return [np.asarray(x) for x in jax.tree.leaves(m.params)]

    assert all(np.array_equal(a, b) for a, b in zip(leaves(model), leaves(same), strict=True))
    # Training moved the weights between the two checkpoints.
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(model), leaves(older), strict=True))


def test_load_errors_name_the_problem(trained, tmp_path):
    workdir, _ = trained
    with pytest.raises(CheckpointError, match="available"):
        inference.load(workdir, step=999)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        inference.load(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inference.load(str(tmp_path / "missing"))

    # A config.json whose model no longer matches the checkpoint's parameters.
    copy = tmp_path / "edited"
    shutil.copytree(workdir, copy)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["model"]["enc_filters"] = 24
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatchError, match=r"config\.json.*checkpoint"):
        inference.load(str(copy))

    cfg["model"]["enc_filters"] = 16
    cfg["model"]["not_a_key"] = 1
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"config\.json.*model\.not_a_key"):
        inference.load(str(copy))


def test_load_logs_no_warnings(trained, caplog):
    """A reader's checkpoint options are orbax's read-only ones: loading logs no absl WARNING
    (orbax logged two on every csc_jax.load when a reader kept a writer's options)."""
    with caplog.at_level(logging.WARNING):
        csc_jax.load(trained[0])
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def _damage_newest_checkpoint(workdir, tmp_path):
    """A copy of ``workdir`` whose newest checkpoint has every file cut to half its size;
    returns (copy, newest step, previous step)."""
    copy = tmp_path / "damaged_run"
    shutil.copytree(workdir, copy)
    steps = sorted(int(n) for n in os.listdir(copy / "checkpoints") if n.isdigit())
    newest = copy / "checkpoints" / str(steps[-1])
    for root, _, names in os.walk(newest):
        for name in names:
            with open(os.path.join(root, name), "r+b") as f:
                f.truncate(os.fstat(f.fileno()).st_size // 2)
    return copy, steps[-1], steps[-2]


def test_load_skips_a_damaged_newest_checkpoint_with_a_warning(trained, tmp_path):
    copy, newest, previous = _damage_newest_checkpoint(trained[0], tmp_path)
    with pytest.warns(RuntimeWarning, match=rf"checkpoint step {newest} .*damaged") as record:
        loaded = csc_jax.load(str(copy))
    assert loaded.step == previous
    # The damaged step directory is moved aside (kept, for inspection), not deleted.
    assert not (copy / "checkpoints" / str(newest)).exists()
    moved = list((copy / "damaged_checkpoints").iterdir())
    assert [p.name.split("-")[0] for p in moved] == [str(newest)]
    assert any(moved[0].rglob("*")), "the damaged checkpoint's files were not kept"
    message = next(str(w.message) for w in record if "damaged" in str(w.message))
    assert str(moved[0]) in message
    reference = csc_jax.load(trained[0], step=previous)
    for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(reference.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_of_an_explicit_damaged_step_is_an_error(trained, tmp_path):
    copy, newest, _ = _damage_newest_checkpoint(trained[0], tmp_path)
    with pytest.raises(CheckpointError, match=rf"step {newest} .*damaged.*explicitly"):
        csc_jax.load(str(copy), step=newest)
    with pytest.raises(CheckpointError, match=rf"step {newest} .*damaged"):
        csc_jax.load(str(copy / "checkpoints" / str(newest)))
    assert (copy / "checkpoints" / str(newest)).is_dir()  # an explicit step is not moved


def test_package_import_does_not_load_jax():
    code = (
        "import sys, csc_jax, csc_jax.inference, csc_jax.inference.cli; "
        "print(callable(csc_jax.load), 'jax' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


# ----------------------------------------------------------------------------- embeddings


def test_embed_deterministic_unit_norm_and_file_equals_array(model, corpus, tmp_path):
    waves = corpus.waveforms[:5]
    a = model.embed(waves)
    b = model.embed(list(reversed(waves)))[::-1]
    assert a.shape == (5, model.embedding_dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # Same inputs in another order and batch composition: same embeddings.
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(a, model.embed(waves))
    # The corpus is 16-bit exact, so its wav files decode to the same samples.
    paths = []
    for i, w in enumerate(waves):
        p = tmp_path / f"u{i}.wav"
        soundfile.write(p, np.round(w * 32768).astype(np.int16), SR, subtype="PCM_16")
        paths.append(str(p))
    np.testing.assert_allclose(model.embed(paths), a, atol=1e-5)


def test_embed_matches_direct_model_call_on_wrap_padded_input(model, corpus):
    """Bucketing = wrap-pad to the bucket length; the result is the model's own embedding."""
    x = corpus.waveforms[0]
    length = -(-len(x) // model.bucket) * model.bucket
    assert length != len(x)
    padded = np.pad(x, (0, length - len(x)), mode="wrap")[None]
    direct = jax.jit(lambda p, x: model.model.apply({"params": p}, x, method=model.model.embed))(
        model.params, padded
    )
    np.testing.assert_allclose(model.embed([x])[0], np.asarray(direct)[0], atol=1e-5)


def test_batched_model_runs_fixed_shape_batches_and_matches_speaker_model(model, corpus):
    """The evaluation protocol's path: batch_size rows per call, last batch zero-padded."""
    length = model.bucket * 2
    x = np.stack(
        [
            np.pad(w, (0, max(0, length - len(w))), mode="wrap")[:length]
            for w in corpus.waveforms[:7]
        ]
    )
    batched = BatchedModel(model.model, model.params, batch_size=4)
    emb = batched.embed(x)
    assert emb.shape == (7, model.embedding_dim) and emb.dtype == np.float32
    assert batched.compiled_shapes == {("embed", 4, length)}  # 4 + 3 rows: one shape
    direct = jax.jit(lambda p, x: model.model.apply({"params": p}, x, method=model.model.embed))
    np.testing.assert_allclose(emb[4:], np.asarray(direct(model.params, x[4:]))[:3], atol=1e-6)
    np.testing.assert_allclose(model.embed(x), emb, atol=1e-5)
    vectors = batched.global_vectors(x)
    out = batched.extract(x, vectors)
    assert vectors.shape == (7, model.embedding_dim) and out.shape == x.shape
    np.testing.assert_allclose(vectors[0], model.global_vector(x[0]), atol=1e-5)
    with pytest.raises(ValueError, match="unknown method"):
        batched("encode", x)


def test_same_audio_at_other_rates_and_channels_gives_the_same_embedding(model, trained, tmp_path):
    """16 kHz / 8 kHz, mono / stereo, wav / flac files of one utterance -> one embedding."""
    params = trained[1].data.synthetic
    x16 = synthetic.synthesize_utterance(
        params.seed, "test", 0, 0, 16000, min_seconds=1.0, max_seconds=1.2
    )
    other = synthetic.synthesize_utterance(
        params.seed, "test", 1, 0, 16000, min_seconds=1.0, max_seconds=1.2
    )
    n = min(len(x16), len(other))
    x16, d16 = x16[:n], 0.1 * other[:n]
    x8 = soxr.resample(x16, 16000, SR).astype(np.float32)
    d8 = soxr.resample(d16, 16000, SR).astype(np.float32)
    # Stereo channels x+d and x-d average to x; a reader that kept channel 0 would add d.
    files = {
        "16k_mono.wav": (x16, 16000),
        "16k_stereo.wav": (np.stack([x16 + d16, x16 - d16], 1), 16000),
        "8k_mono.wav": (x8, SR),
        "8k_stereo.flac": (np.stack([x8 + d8, x8 - d8], 1), SR),
        "22k_mono.flac": (soxr.resample(x16, 16000, 22050), 22050),
    }
    paths = []
    for name, (data, rate) in files.items():
        path = tmp_path / name
        soundfile.write(path, data, rate, subtype="PCM_16")
        paths.append(str(path))
        got = audio_io.read_audio(path, SR)
        assert got.dtype == np.float32 and got.ndim == 1
        assert abs(len(got) - len(x8)) <= 1
        m = min(len(got), len(x8))
        # Waveform level: 16-bit quantisation and resampling only (>= 35 dB).
        assert _si_snr(got[:m], x8[:m]) > 35.0, name
    emb = model.embed(paths)
    ref = model.embed([x8])[0]
    cos = emb @ ref
    assert (cos > 0.95).all(), dict(zip(files, cos, strict=True))
    # The undertrained model is not very discriminative, but the inputs are nearly identical.
    assert (cos > 0.999).all(), dict(zip(files, cos, strict=True))


def test_embed_of_varied_lengths_compiles_a_bounded_number_of_shapes(trained):
    model = inference.load(trained[0], max_seconds=2.0)  # buckets 0.5, 1.0, 1.5, 2.0 s
    rng = np.random.default_rng(0)
    batch = 8

    def waves(count):
        lengths = rng.integers(int(0.1 * SR), int(4.5 * SR), size=count)
        return [rng.standard_normal(n).astype(np.float32) * 0.1 for n in lengths]

    first = waves(50)
    out = model.embed(first, batch_size=batch)
    assert out.shape == (50, model.embedding_dim)
    shapes = set(model.compiled_shapes)
    rows_allowed = {1, 2, 4, 8}
    lengths_allowed = {model.bucket * k for k in range(1, model.cap // model.bucket + 1)}
    assert len(lengths_allowed) == 4
    for name, rows, length in shapes:
        assert name == "embed" and rows in rows_allowed and length in lengths_allowed
    assert len(shapes) <= len(rows_allowed) * len(lengths_allowed)  # <= 16 for 50 lengths
    # Another 50 lengths: nothing new to compile beyond that bound.
    model.embed(waves(50), batch_size=batch)
    assert len(model.compiled_shapes) <= len(rows_allowed) * len(lengths_allowed)
    full = {s for s in model.compiled_shapes if s[1] == batch}
    assert {s[2] for s in full} == lengths_allowed


def test_long_input_is_the_mean_of_its_pieces(trained):
    model = inference.load(trained[0], max_seconds=1.0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(int(2.3 * SR)).astype(np.float32) * 0.1  # 3 pieces of ~0.77 s
    thirds = [x[k * len(x) // 3 : (k + 1) * len(x) // 3] for k in range(3)]
    parts = model.embed(thirds)
    expected = parts.mean(0) / np.linalg.norm(parts.mean(0))
    np.testing.assert_allclose(model.embed([x])[0], expected, atol=1e-5)


def test_short_or_bad_inputs_raise_errors_naming_them(model, tmp_path):
    with pytest.raises(ValueError, match=r"waveform #1.*too short"):
        model.embed([np.zeros(SR, np.float32), np.zeros(int(0.05 * SR), np.float32)])
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(int(0.05 * 16000), np.int16), 16000)
    with pytest.raises(ValueError, match=r"short\.wav.*too short"):
        model.embed([str(short)])
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        model.embed([str(tmp_path / "nope.wav")])
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio" * 10)
    with pytest.raises(errors.BadAudioFileError, match=r"garbage\.wav"):
        model.embed([str(garbage)])
    with pytest.raises(ValueError, match="NaN"):
        model.embed([np.full(SR, np.nan, np.float32)])
    with pytest.raises(ValueError, match=r"waveform #0.*int16"):
        model.embed([np.ones(SR, np.int16)])
    # Silence has no speaker: an error naming the input, for embedding and extraction alike.
    with pytest.raises(errors.DataError, match=r"waveform #1: silent .*all zeros"):
        model.embed([np.full(SR, 0.1, np.float32), np.zeros(SR, np.float32)])
    with pytest.raises(errors.DataError, match=r"waveform #0: silent .*RMS -80.0 dBFS"):
        model.extract(np.full(SR, 1e-4, np.float32), np.full(SR, 0.1, np.float32))


# ----------------------------------------------------------------------------- scoring


def test_score_and_verify_against_direct_cosines(model, corpus, tmp_path):
    root = synthetic.save_wav_tree(corpus, tmp_path / "wav")
    trials = trials_lib.generate_trials(corpus.keys, corpus.speakers, seed=0)
    trials_path = tmp_path / "trials.txt"
    trials_lib.write_trials(trials, trials_path)
    out = tmp_path / "scores.txt"

    result = model.verify(trials_path, root, scores_out=out)
    emb = dict(zip(corpus.keys, model.embed(corpus.waveforms), strict=True))
    direct = np.array([emb[t.enroll] @ emb[t.test] for t in trials])
    labels = np.array([t.label for t in trials])
    np.testing.assert_allclose(result["scores"], direct, atol=1e-5)
    assert result["num_trials"] == len(trials) and result["num_target"] == labels.sum()
    assert result["eer"] == pytest.approx(100 * metrics.eer(result["scores"], labels)[0])
    assert result["min_dcf"] == pytest.approx(
        metrics.min_dcf(result["scores"], labels, p_target=model.config.eval.p_target)[0]
    )
    lines = [ln.split() for ln in out.read_text().splitlines()]
    assert [(a, b) for a, b, _ in lines] == [(t.enroll, t.test) for t in trials]
    np.testing.assert_allclose([float(s) for *_, s in lines], direct, atol=1e-5)

    a, b = trials[0].enroll, trials[0].test
    s = model.score(os.path.join(root, a), os.path.join(root, b))
    assert s == pytest.approx(float(emb[a] @ emb[b]), abs=1e-5)
    assert model.score(os.path.join(root, b), os.path.join(root, a)) == pytest.approx(s)

    with pytest.raises(FileExistsError, match=r"scores\.txt"):
        model.verify(trials_path, root, scores_out=out)
    assert model.verify(trials_path, root, scores_out=out, overwrite=True)["num_trials"]
    # Only target trials: scores but no EER / minDCF.
    targets_path = tmp_path / "targets.txt"
    trials_lib.write_trials([t for t in trials if t.label == 1], targets_path)
    only = model.verify(targets_path, root)
    assert only["eer"] is None and only["min_dcf"] is None and only["num_target"] > 0
    os.remove(os.path.join(root, trials[0].test))
    with pytest.raises(FileNotFoundError, match=trials[0].test):
        model.verify(trials_path, root)


# ----------------------------------------------------------------------------- extraction


def _mixture(corpus, target: int, interferer: int, sir_db: float = 0.0):
    s, i = corpus.waveforms[target], corpus.waveforms[interferer]
    n = min(len(s), len(i))
    s, i = s[:n], i[:n]
    i = i * np.sqrt(np.sum(s**2) / np.sum(i**2)) * 10 ** (-sir_db / 20)
    return s, (s + i).astype(np.float32)


def test_extract_is_the_model_output_cropped_to_the_mixture(model, corpus):
    s, mix = _mixture(corpus, 0, 4)
    enrollment = corpus.waveforms[1]  # same speaker as utterance 0, another utterance
    y = model.extract(mix, enrollment, rescale=False)
    assert y.shape == mix.shape and y.dtype == np.float32
    np.testing.assert_array_equal(y, model.extract(mix, enrollment, rescale=False))
    # Same as conditioning the model directly on the enrollment's global vector.
    length = -(-len(mix) // model.bucket) * model.bucket
    padded = np.pad(mix, (0, length - len(mix)), mode="wrap")[None]
    enr_len = -(-len(enrollment) // model.bucket) * model.bucket
    enr = np.pad(enrollment, (0, enr_len - len(enrollment)), mode="wrap")[None]
    m = model.model
    vec = jax.jit(lambda p, x: m.apply({"params": p}, x, method=m.global_vectors))(
        model.params, enr
    )
    direct = jax.jit(lambda p, x, c: m.apply({"params": p}, x, c, method=m.extract))(
        model.params, padded, vec
    )
    np.testing.assert_allclose(y, np.asarray(direct)[0, : len(mix)], atol=1e-5)
    # The enrollment conditions the output.
    other = model.extract(mix, corpus.waveforms[4], rescale=False)
    assert np.max(np.abs(other - y)) > 1e-4 * np.max(np.abs(y))
    # rescale only changes the level: least-squares gain onto the mixture, same SI-SNR.
    z = model.extract(mix, enrollment)
    assert abs(float(np.dot(mix - z, z))) < 1e-3 * float(np.dot(mix, mix))
    assert _si_snr(z, s) == pytest.approx(_si_snr(y, s), abs=0.01)


def test_extract_long_mixture_is_split_and_keeps_its_length(trained, corpus):
    model = inference.load(trained[0], max_seconds=0.5)
    mix = np.concatenate(corpus.waveforms[:3])  # ~2 s: split into pieces of <= 0.5 s
    y = model.extract(mix, corpus.waveforms[3])
    assert y.shape == mix.shape and np.isfinite(y).all()
    assert {s[2] for s in model.compiled_shapes if s[0] == "extract"} <= {model.bucket}


def test_write_wav_is_16_bit_and_refuses_to_overwrite(tmp_path):
    x = np.sin(np.linspace(0, 200, SR)).astype(np.float32) * 0.5
    path = tmp_path / "out.wav"
    audio_io.write_wav(path, x, SR)
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (SR, 1, "PCM_16", SR)
    np.testing.assert_allclose(audio_io.read_audio(path, SR), x, atol=1 / 32768)
    with pytest.raises(FileExistsError, match=r"out\.wav"):
        audio_io.write_wav(path, x * 0, SR)
    np.testing.assert_allclose(audio_io.read_audio(path, SR), x, atol=1 / 32768)
    with pytest.warns(RuntimeWarning, match="peak"):
        audio_io.write_wav(path, 4 * x, SR, overwrite=True)
    assert np.max(np.abs(audio_io.read_audio(path, SR))) == pytest.approx(0.99, abs=1e-3)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no temporary files left


def _load_script(name: str):
    """Import scripts/<name>.py as a module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, os.path.join(REPO_ROOT, "scripts", f"{name}.py")
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_eval_extraction_script_reports_each_pitch_group(trained, model, corpus, tmp_path):
    """scripts/eval_extraction.py: one row per SIR and pitch group, over every ordered pair of
    test speakers, with the figures of csc_jax.evaluation.extraction."""
    from csc_jax.evaluation import extraction

    workdir, config = trained
    script = _load_script("eval_extraction")
    out = tmp_path / "extraction.json"
    script.main(
        ["--workdir", workdir, "--sir_db", "5", "--min_f0_ratio", "1.05", "--json", str(out)]
    )
    report = json.loads(out.read_text())
    assert report["step"] == STEPS
    n = config.data.synthetic.num_test_speakers
    assert sum(r["mixtures"] for r in report["rows"]) == n * (n - 1)
    assert {r["sir_db"] for r in report["rows"]} == {5.0}
    row = report["rows"][0]
    pairs = extraction.pitch_pairs(corpus, config.data.synthetic, 1.05)[row["group"]]
    direct = extraction.two_talker_extraction(model, corpus, pairs, sir_db=5.0)
    assert row["si_snri_db"] == pytest.approx(float(np.mean(direct["si_snri"])), abs=1e-6)
    assert row["margin_db"] == pytest.approx(float(np.mean(direct["margin"])), abs=1e-6)
