"""The verification protocol end to end on a tiny trained model, the MFCC reference against a
hand computation, trial-list counts, and the validation EER written during training."""

import json
import os

import numpy as np
import pytest
import scipy.fft
from conftest import make_tiny_config, save_folder_corpus

from csc_jax import metrics
from csc_jax.config import base_config, validate_config
from csc_jax.data import sources
from csc_jax.errors import ConfigError
from csc_jax.evaluation import validation, verification
from csc_jax.evaluation.reference_embedders import MfccStatsEmbedder, mel_filterbank
from csc_jax.evaluation.report import load_scores


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_cache):
    """A tiny model trained 4 steps with the validation EER every 2 steps, then evaluated."""
    from csc_jax.train_eval import train_and_evaluate

    config = make_tiny_config(
        shared_cache, **{"train.eval_at_end": True, "eval.query_scoring": True}
    )
    workdir = tmp_path_factory.mktemp("verification") / "run"
    results = train_and_evaluate(config, str(workdir))
    return config, workdir, results


def test_every_system_and_condition_has_an_interval_and_paired_differences(trained):
    config, workdir, results = trained
    with open(workdir / "eval" / "results.json") as f:
        report = json.load(f)
    assert report["results"] == results
    conditions = ["clean", "SNR 10 dB", "SNR 5 dB", "SNR 0 dB", "SIR 5 dB", "SIR 0 dB"]
    assert list(results) == ["csc", "csc+extract", "csc+query", "untrained", "log-mel", "mfcc"]
    meta = report["meta"]
    assert meta["bootstrap_unit"] == "enrollment speaker" and meta["bootstrap_replicates"] == 100
    for name, rows in results.items():
        assert list(rows) == conditions
        for row in rows.values():
            lo, hi = row["eer_ci"]
            assert lo <= row["eer"] <= hi and 0 <= lo and hi <= 100
            assert row["min_dcf_ci"][0] <= row["min_dcf"] <= row["min_dcf_ci"][1]
            expected = config.eval.extraction_max_trials if name == "csc+extract" else 40
            assert row["trials"] == min(expected, meta["num_trials"])
    # 'csc+query' is scored on every trial, so it is paired with 'csc' like the references.
    assert set(report["paired"]) == {
        "csc - csc+query",
        "csc - untrained",
        "csc - log-mel",
        "csc - mfcc",
    }
    for by_cond in report["paired"].values():
        for d in by_cond.values():
            assert d["ci"][0] <= d["diff"] <= d["ci"][1]
    # SI-SNRi of extraction in every corrupted condition.
    assert all("si_snri" in results["csc+extract"][c] for c in conditions[1:])
    # scores.npz reproduces every EER; DET plots and the markdown exist.
    labels, clusters, scored = load_scores(str(workdir / "eval" / "scores.npz"))
    assert labels.size == meta["num_trials"] and clusters.size == labels.size
    for name in results:
        for cond in conditions:
            scores, idx = scored[name][cond]
            eer = 100 * metrics.eer(scores, labels[idx])[0]
            assert eer == pytest.approx(results[name][cond]["eer"], abs=1e-9)
    md = (workdir / "eval" / "results.md").read_text()
    assert "EER % [95 % CI]" in md and "Paired EER difference" in md
    assert (workdir / "eval" / "det_SIR0dB.png").stat().st_size > 1000


def test_validation_eer_is_logged_during_training_and_plotted(trained):
    _, workdir, _ = trained
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    val = [r for r in rows if "val/eer_clean" in r]
    assert [r["step"] for r in val] == [0, 2, 4]
    for r in val:
        assert 0 <= r["val/eer_clean"] <= 100 and 0 <= r["val/eer_sir0"] <= 100
    assert os.path.getsize(workdir / "training_curves.png") > 1000
    assert any(name.startswith("events") for name in os.listdir(workdir / "tensorboard"))


def test_validation_speakers_are_disjoint_from_train_and_test(tiny_config):
    spk = {s: set(sources.make_source(tiny_config, s).speakers) for s in ("train", "test", "val")}
    assert spk["val"] and not spk["val"] & (spk["train"] | spk["test"])


def test_validation_needs_validation_speakers_or_an_explicit_opt_in(shared_cache, tmp_path, capsys):
    """A folder corpus without data.folder.val_root: no validation EER (one notice on stdout),
    unless eval.validation_on_test=True opts into the test trials (one warning on stderr);
    with val_root, the validation speakers and nothing printed."""
    from csc_jax.models import model_from_config

    roots = save_folder_corpus(shared_cache, tmp_path, ("test", "val"))
    folder = {"data.source": "folder", "data.folder.test_root": roots["test"]}
    config = make_tiny_config(shared_cache, **folder, **{"data.folder.train_root": roots["test"]})
    model = model_from_config(config)
    assert validation.validation_evaluators(config, model) == []
    out = capsys.readouterr()
    assert out.err == "" and len(out.out.splitlines()) == 1, out
    assert out.out.startswith("notice: no validation EER during training: data.folder.val_root")
    assert "eval.validation_on_test=True" in out.out
    with pytest.raises(ConfigError, match="data.folder.val_root is empty"):
        validation.ValidationEER(config, model)

    test_keys = set(sources.make_source(config, "test").keys)
    config.eval.validation_on_test = True
    (evaluator,) = validation.validation_evaluators(config, model)
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.splitlines()) == 1, out
    assert out.err.startswith("warning: the validation EER uses up to 40 of the test trials")
    assert set(evaluator.eval_set.enroll_keys) <= test_keys

    config.data.folder.val_root = roots["val"]  # a validation split wins over the opt-in
    (evaluator,) = validation.validation_evaluators(config, model)
    assert capsys.readouterr() == ("", "")
    val_keys = set(sources.make_source(config, "val").keys)
    assert set(evaluator.eval_set.enroll_keys) <= val_keys and not val_keys & test_keys

    # The embedded corpus keeps its own validation speakers: nothing printed.
    synthetic_config = make_tiny_config(shared_cache)
    assert len(validation.validation_evaluators(synthetic_config, model)) == 1
    assert capsys.readouterr() == ("", "")
    tfds = make_tiny_config(shared_cache, **{"data.source": "tfds"})
    assert validation.missing_split_key(tfds) == "data.tfds.val_split"
    assert validation.validation_evaluators(tfds, model) == []
    assert "data.tfds.val_split is empty" in capsys.readouterr().out

    bad = base_config().to_dict()
    bad["eval"]["validation_on_test"] = "yes"
    with pytest.raises(ConfigError, match="eval.validation_on_test='yes': must be True or False"):
        validate_config(bad)


def test_trial_list_counts_are_deterministic(tiny_config):
    """The default synthetic test split gives at least 10,000 trials (cross-session targets,
    two non-targets per target); the same config gives the same list."""
    from csc_jax.config import base_config

    c = base_config()
    c.data.cache_dir = tiny_config.data.cache_dir
    # The speaker and utterance counts of the demo, at the tiny model's utterance lengths
    # (trial counts do not depend on durations).
    c.data.synthetic.min_seconds, c.data.synthetic.max_seconds = 0.3, 0.3
    source = sources.make_source(c, "test")
    trials = verification.trial_list(c, source)
    labels = np.array([t.label for t in trials])
    n_spk, per = c.data.synthetic.num_test_speakers, c.data.synthetic.test_utterances_per_speaker
    cross_session_pairs = per * (per - 1) // 2 - sum(
        n * (n - 1) // 2 for n in np.bincount(np.arange(per) % 3)
    )
    assert labels.sum() == n_spk * min(cross_session_pairs, c.eval.max_target_per_speaker)
    assert (1 - labels).sum() == c.eval.nontarget_per_target * labels.sum()
    assert len(trials) >= 10_000
    assert trials == verification.trial_list(c, source)


def _mfcc_by_hand(x: np.ndarray, rate: int) -> np.ndarray:
    """The MFCC statistics of one signal, frame by frame with plain loops."""
    win, hop = int(round(0.025 * rate)), int(round(0.010 * rate))
    n_fft = int(2 ** np.ceil(np.log2(win)))
    fb = mel_filterbank(rate, n_fft, 40)
    logmel, energy = [], []
    for start in range(0, len(x) - win + 1, hop):
        frame = x[start : start + win] * np.hamming(win)
        power = np.abs(np.fft.rfft(frame, n_fft)) ** 2
        logmel.append(np.log(power @ fb + 1e-10))
        energy.append(10 * np.log10(power.sum() + 1e-10))
    logmel, energy = np.array(logmel), np.array(energy)
    keep = energy >= energy.max() - 30.0
    kept = logmel[keep]
    mfcc = np.array([scipy.fft.dct(f, type=2, norm="ortho")[1:20] for f in kept])
    mfcc = mfcc - mfcc.mean(axis=0)
    return np.concatenate([kept.mean(axis=0), mfcc.std(axis=0)])


@pytest.mark.parametrize("rate", [8000, 16000])
def test_mfcc_reference_matches_a_hand_computation(rate):
    rng = np.random.default_rng(0)
    t = np.arange(int(0.6 * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(t.size)
    x[: rate // 10] *= 1e-4  # a near-silent start: those frames must be dropped
    emb = MfccStatsEmbedder(rate)
    np.testing.assert_allclose(emb.stats(x[None])[0], _mfcc_by_hand(x, rate), rtol=1e-9, atol=1e-9)
    # z-scoring with reference statistics, then unit norm.
    refs = rng.standard_normal((5, x.size)) * 0.1
    z = MfccStatsEmbedder(rate, refs)
    stats = z.stats(refs)
    expected = (emb.stats(x[None])[0] - stats.mean(0)) / (stats.std(0) + 1e-8)
    np.testing.assert_allclose(z.embed(x[None])[0], expected / np.linalg.norm(expected), rtol=1e-5)


class _CountingEmbedder:
    """A deterministic numpy stand-in for BatchedModel that counts the rows it is given."""

    def __init__(self):
        self.rows = {"embed": 0, "global_vectors": 0, "extract": 0}
        self.proj = np.random.default_rng(0).standard_normal((64, 8))

    def _feat(self, x):
        return np.abs(np.fft.rfft(x, 126, axis=-1))[:, :64] @ self.proj

    def embed(self, x):
        self.rows["embed"] += len(x)
        return self._feat(x)

    def global_vectors(self, x):
        self.rows["global_vectors"] += len(x)
        return self._feat(x) * 2.0

    def extract(self, mixtures, vectors):
        self.rows["extract"] += len(mixtures)
        return mixtures * np.tanh(vectors[:, :1])


def test_clean_enrollment_is_embedded_once_per_model(tiny_config):
    """'csc' and 'csc+extract' share one model: its clean enrollment is embedded once, and
    the enrollment's global vectors are computed once, not once per condition."""
    from csc_jax.evaluation import conditions as cond_lib

    eval_set = verification.load_eval_set(tiny_config)
    conditions = cond_lib.conditions_from_config(tiny_config.eval)
    n_enroll, n_test = len(eval_set.enroll_keys), len(eval_set.test_keys)
    extraction_trials = np.arange(min(10, len(eval_set.trials)))
    model = _CountingEmbedder()
    systems = [verification.System("a", model), verification.System("a+x", model, "extract")]
    scored = verification.score_systems(
        systems, eval_set, conditions, extraction_trials=extraction_trials
    )
    assert model.rows["global_vectors"] == n_enroll
    extracted = len(conditions) * extraction_trials.size
    assert model.rows["embed"] == n_enroll + len(conditions) * n_test + extracted
    assert model.rows["extract"] == extracted
    # The same scores as a model that is not shared (embedded separately for each system).
    alone = verification.score_systems(
        [verification.System("a", _CountingEmbedder())],
        eval_set,
        conditions,
        extraction_trials=extraction_trials,
    )
    for cond in alone["a"]:
        np.testing.assert_array_equal(alone["a"][cond]["scores"], scored["a"][cond]["scores"])
