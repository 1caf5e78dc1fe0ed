"""Rematerialisation of the TCN (model.remat): same parameters, same outputs, same gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_tiny_config

from csc_jax.config import ConfigError, validate_config
from csc_jax.data import mixing
from csc_jax.models import model_from_config
from csc_jax.models.separator import TCN, DepthwiseConv1D
from csc_jax.training.objectives import csc_objective

MODES = [("block", "nothing"), ("repeat", "nothing"), ("block", "dots")]


def _tiny(tmp_path, remat="none", policy="nothing"):
    # Two repeats, so both scans run more than one iteration (a loop of one is inlined).
    return make_tiny_config(
        tmp_path, **{"model.repeats": 2, "model.remat": remat, "model.remat_policy": policy}
    )


def _mixed(config, seed=0):
    b, k = config.data.batch_size, config.mixing.num_conditions
    t = int(config.data.segment_seconds * config.data.sample_rate)
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    batch = {
        "target": 0.1 * jax.random.normal(keys[0], (b, k, t)),
        "interferer": 0.1 * jax.random.normal(keys[1], (b, k, t)),
    }
    return mixing.mix_batch(keys[2], batch, jnp.arange(b, dtype=jnp.int32), config.mixing)


def _loss_and_grads(config, params, mixed):
    model = model_from_config(config)

    def loss(p):
        return csc_objective(p, model=model, mixed=mixed, config=config)[0]

    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.fixture(scope="module")
def without_remat(tmp_path_factory):
    """(params, mixed batch, loss, gradients) of the tiny model without rematerialisation."""
    plain = _tiny(tmp_path_factory.mktemp("remat"))
    mixed = _mixed(plain)
    params = model_from_config(plain).init(jax.random.PRNGKey(1), mixed["mixture"][:1])["params"]
    return (params, mixed, *_loss_and_grads(plain, params, mixed))


@pytest.mark.parametrize("remat,policy", MODES)
def test_gradients_with_remat_equal_those_without(tmp_path, without_remat, remat, policy):
    """The real CSC objective (trunk, extraction TCN and the component passes) on the tiny
    model: loss and every parameter's gradient agree to float32 rounding."""
    params, mixed, loss0, grads0 = without_remat
    loss1, grads1 = _loss_and_grads(_tiny(tmp_path, remat, policy), params, mixed)
    np.testing.assert_allclose(loss1, loss0, rtol=1e-5)
    flat0 = jax.tree_util.tree_leaves_with_path(grads0)
    flat1 = jax.tree.leaves(grads1)
    assert len(flat0) == len(flat1)
    # XLA fuses (and so rounds) the recomputed activations differently; the absolute
    # tolerance is relative to the largest gradient, since some gradients are zero up to
    # rounding (e.g. the attention key bias, to which softmax is invariant).
    scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads0))
    for (path, g0), g1 in zip(flat0, flat1, strict=True):
        np.testing.assert_allclose(
            g1, g0, rtol=1e-4, atol=1e-6 * scale, err_msg=jax.tree_util.keystr(path)
        )


@pytest.mark.parametrize("remat", ["block", "repeat"])
def test_parameters_and_outputs_are_the_same_in_every_mode(remat):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 40, 16))
    plain = TCN(hidden=32, kernel=3, blocks=3, repeats=2)
    other = TCN(hidden=32, kernel=3, blocks=3, repeats=2, remat=remat)
    p0 = plain.init(jax.random.PRNGKey(1), x)
    p1 = other.init(jax.random.PRNGKey(1), x)
    assert jax.tree.structure(p0) == jax.tree.structure(p1)
    for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p1), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p0["params"]) == [f"TCNBlock_{n}" for n in range(6)]
    # A checkpoint written by one mode loads in the other.
    np.testing.assert_allclose(other.apply(p0, x), plain.apply(p0, x), rtol=1e-5, atol=1e-5)


def test_traced_dilation_equals_static_dilation():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 30, 6))
    for dilation in (1, 2, 4):
        static = DepthwiseConv1D(kernel=3, dilation=dilation)
        p = static.init(jax.random.PRNGKey(1), x)
        traced = DepthwiseConv1D(kernel=3, dilation=4)  # 4: the largest, sizes the padding
        y = jax.jit(lambda d, p=p, traced=traced: traced.apply(p, x, d))(jnp.int32(dilation))
        np.testing.assert_allclose(y, static.apply(p, x), rtol=1e-6, atol=1e-6)


def test_unrolled_scan_is_the_same_computation():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 40, 16))
    tcn = TCN(hidden=32, kernel=3, blocks=2, repeats=2, remat="block")
    p = tcn.init(jax.random.PRNGKey(1), x)
    unrolled = TCN(hidden=32, kernel=3, blocks=2, repeats=2, remat="block", unroll_scan=True)
    np.testing.assert_allclose(unrolled.apply(p, x), tcn.apply(p, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "key,value", [("model.remat", "layer"), ("model.remat_policy", "everything")]
)
def test_config_rejects_unknown_remat_settings(tmp_path, key, value):
    config = make_tiny_config(tmp_path, **{key: value})
    with pytest.raises(ConfigError, match=key):
        validate_config(config)


def test_module_rejects_unknown_remat_mode():
    x = jnp.zeros((1, 8, 4))
    with pytest.raises(ValueError, match="remat="):
        TCN(hidden=8, kernel=3, blocks=1, repeats=1, remat="layer").init(jax.random.PRNGKey(0), x)
