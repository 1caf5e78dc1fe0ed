"""'csc+query' scoring: the test side attended with the enrollment's query (model pieces,
trial grouping, scores against a direct computation, which models are offered it, the key).

No synthetic "the query pulls toward the target's frames" check: with a tiny model the
alignment of W_q with W_k is whatever the initialisation or a few steps make it, so such a
test could not fail for the right reason."""

import jax
import numpy as np
import pytest
from conftest import make_tiny_config

from csc_jax.config import base_config, validate_config
from csc_jax.errors import ConfigError
from csc_jax.evaluation import conditions as cond_lib
from csc_jax.evaluation import verification
from csc_jax.inference.batched import BatchedModel
from csc_jax.models.csc import model_from_config


@pytest.fixture(scope="module")
def tiny(shared_cache):
    """(config, model, params) of the tiny config at initialisation."""
    config = make_tiny_config(shared_cache)
    model = model_from_config(config)
    params = jax.jit(model.init)(jax.random.PRNGKey(3), np.zeros((1, 2, 1600), np.float32))
    return config, model, params["params"]


_JITTED: dict = {}


def _apply(model, params, method, *args):
    """``model.apply`` of ``method``, jitted once per (model, method) so tests share compiles."""
    key = (id(model), method.__name__)
    if key not in _JITTED:
        _JITTED[key] = jax.jit(lambda p, *a: model.apply({"params": p}, *a, method=method))
    return _JITTED[key](params, *args)


def test_attend_of_query_and_frames_is_the_global_vector(tiny):
    _, model, params = tiny
    # (3, 4000): the shape of the direct computation below (0.5 s at 8 kHz), so its calls hit
    # these compiles.
    x = np.random.default_rng(0).standard_normal((3, 4000)).astype(np.float32)
    query, frames = _apply(model, params, model.query_and_frames, x)
    assert query.shape == (3, model.bottleneck) and query.dtype == np.float32
    assert frames.shape[0] == 3 and frames.shape[2] == model.speaker_dim
    own = _apply(model, params, model.attend, query, frames)
    np.testing.assert_array_equal(own, _apply(model, params, model.global_vectors, x))
    # Q queries at once: row j is the single-query vector of query j (here: others' queries).
    others = np.stack([np.roll(np.asarray(query), s, axis=0) for s in (0, 1, 2)], axis=1)
    many = _apply(model, params, model.attend, others, frames)
    assert many.shape == (3, 3, model.speaker_dim)
    for j in range(3):
        single = _apply(model, params, model.attend, others[:, j], frames)
        np.testing.assert_allclose(many[:, j], single, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="leading"):
        _apply(model, params, model.attend, others[:2], frames)


def test_query_slots_put_every_trial_in_one_slot_of_its_test_utterance():
    test_row = np.array([2, 0, 2, 2, 1, 2, 0, 2])
    slot_test, slot_trials = verification.query_slots(test_row, cap=3)
    np.testing.assert_array_equal(slot_test, [0, 1, 2, 2])
    np.testing.assert_array_equal(slot_trials, [[1, 6, -1], [4, -1, -1], [0, 2, 3], [5, 7, -1]])
    slot_test, slot_trials = verification.query_slots(test_row)
    assert slot_trials.shape == (3, 5)
    kept = slot_trials[slot_trials >= 0]
    np.testing.assert_array_equal(np.sort(kept), np.arange(test_row.size))
    np.testing.assert_array_equal(test_row[slot_trials[2, :5]], [2] * 5)
    with pytest.raises(ValueError, match="cap must be >= 1"):
        verification.query_slots(test_row, cap=0)


def test_query_scores_equal_a_direct_computation_and_leave_plain_scores_alone(tiny):
    config, model, params = tiny
    eval_set = verification.load_eval_set(config)
    every = cond_lib.conditions_from_config(config.eval)
    conditions = [c for c in every if c.name == "SIR 0 dB"]
    # A small batch: several calls per side, the last one padded.
    batched = BatchedModel(model, params, batch_size=3)
    systems = [verification.System("a", batched), verification.System("a+q", batched, "query")]
    scored = verification.score_systems(
        systems, eval_set, conditions, extraction_trials=np.arange(0)
    )
    alone = verification.score_systems(
        [verification.System("a", batched)],
        eval_set,
        conditions,
        extraction_trials=np.arange(0),
    )
    n = len(eval_set.trials)
    enroll = eval_set.enrollment()
    for cond in conditions:
        ci = every.index(cond)
        row = scored["a+q"][cond.name]
        np.testing.assert_array_equal(row["trials"], np.arange(n))
        assert row["scores"].shape == (n,) and np.all(np.isfinite(row["scores"]))
        np.testing.assert_allclose(
            scored["a"][cond.name]["scores"], alone["a"][cond.name]["scores"], atol=1e-6
        )
        tests = eval_set.tests(cond, ci)
        idx = np.array([0, n // 2, n - 1])  # 3 trials: the compiled shapes of the test above
        e, t = enroll[eval_set.enroll_row[idx]], tests[eval_set.test_row[idx]]
        assert e.shape == (3, 4000)
        q_e, _ = _apply(model, params, model.query_and_frames, e)
        c_e = np.asarray(_apply(model, params, model.global_vectors, e))
        _, z_t = _apply(model, params, model.query_and_frames, t)
        c_te = np.asarray(_apply(model, params, model.attend, q_e, z_t))
        direct = np.sum(c_e * c_te, -1) / (
            np.linalg.norm(c_e, axis=-1) * np.linalg.norm(c_te, axis=-1)
        )
        np.testing.assert_allclose(row["scores"][idx], direct, atol=1e-5)
    # The enrollment-queried vector is not the test utterance's own one.
    assert not np.allclose(scored["a+q"]["SIR 0 dB"]["scores"], scored["a"]["SIR 0 dB"]["scores"])


def test_only_csc_models_with_cross_attention_are_offered_query_scoring(tiny):
    config, model, params = tiny
    batched = BatchedModel(model, params)
    names = lambda c: [s.name for s in verification.trained_systems(c, batched)]  # noqa: E731
    on = make_tiny_config(config.data.cache_dir, **{"eval.query_scoring": True})
    assert names(on) == ["csc", "csc+extract", "csc+query"]
    off = make_tiny_config(config.data.cache_dir, **{"eval.query_scoring": False})
    assert names(off) == ["csc", "csc+extract"]
    pooled = make_tiny_config(
        config.data.cache_dir, **{"model.use_cross_attention": False, "eval.query_scoring": True}
    )
    assert names(pooled) == ["csc", "csc+extract"]
    simclr = make_tiny_config(
        config.data.cache_dir, method="simclr", **{"eval.query_scoring": True}
    )
    assert names(simclr) == ["simclr"]
    # The check comes before any parameter is read: no init needed.
    pooling_model = model_from_config(pooled)
    for method in (pooling_model.query_and_frames, pooling_model.embed_and_query):
        with pytest.raises(ValueError, match="use_cross_attention=True"):
            pooling_model.apply({"params": {}}, np.zeros((1, 800), np.float32), method=method)


def test_query_scoring_key_is_validated(shared_cache):
    with pytest.raises(ConfigError, match="eval.query_scoring='yes'"):
        make_tiny_config(shared_cache, **{"eval.query_scoring": "yes"})
    bad = base_config().to_dict()  # e.g. a config.json: no ConfigDict type check on the way
    bad["eval"]["query_scoring"] = 1
    with pytest.raises(ConfigError, match="eval.query_scoring=1: must be True or False"):
        validate_config(bad)
    bad["eval"]["query_scoring"] = False
    validate_config(bad)
