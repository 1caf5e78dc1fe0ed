"""The training loop in-process: config checks before compilation, workdir compatibility,
unwritable workdirs, non-finite stops/skips, at most one step in flight, the transfer guard,
and the command line's error messages (train.py).

Runs that must not compile are watched with a jax.monitoring listener for XLA compilations.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from _train_worker import REPO, inject_nan_at_step, subprocess_env, tiny_cli_flags
from conftest import make_tiny_config

from csc_jax.config import ConfigError, set_dotted, validate_config
from csc_jax.errors import EXIT_PREEMPTED, DataError
from csc_jax.training import checkpointing, loop
from csc_jax.training.checkpointing import restore_params
from csc_jax.training.parallel import DataParallel


@contextlib.contextmanager
def count_compiles():
    """Yields a list that collects one entry per XLA backend compilation inside the block."""
    events = []

    def listener(event, *args, **kwargs):
        if event.endswith("backend_compile_duration"):
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


class _PendingSignal:
    """Stands in for train.py's start-up handler: a SIGTERM that arrived during imports."""

    def __init__(self):
        self.received = [signal.SIGTERM]
        self.previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def __call__(self, signum, frame):  # pragma: no cover - replaced by the loop at once
        self.received.append(signum)


@contextlib.contextmanager
def signal_during_startup():
    """Install a start-up handler holding a SIGTERM: train() must stop before compiling."""
    handler = _PendingSignal()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, handler)
    try:
        yield handler
    finally:
        for s, old in handler.previous.items():
            signal.signal(s, old)


def configure_then_stop(config, workdir, **kwargs):
    """Run train() through all config/workdir checks, stopping before anything compiles."""
    with signal_during_startup() as handler, count_compiles() as compiles:
        with pytest.raises(loop.Preempted) as info:
            loop.train(config, str(workdir), **kwargs)
        # The loop took the record over and then restored the handlers the start-up one
        # had replaced (not the start-up recorder, which would swallow later signals).
        assert signal.getsignal(signal.SIGTERM) is handler.previous[signal.SIGTERM]
    assert compiles == []
    assert info.value.code == EXIT_PREEMPTED
    return info.value


# ---------------------------------------------------------------- config checks


def _set(config, key, value):
    if key == "train.foo":  # a key the schema lacks: set_dotted would refuse it
        config.train.foo = value
    else:
        set_dotted(config, key, value)
    return config


INVALID = [
    ("train.foo", 1, r"unknown config key\(s\): train.foo"),
    ("mixing.snr_db", (20.0, 0.0), r"mixing.snr_db=\(20.0, 0.0\): must be \(low, high\)"),
    ("mixing.sir_db", (5.0, -5.0), r"mixing.sir_db=\(5.0, -5.0\): must be \(low, high\)"),
    ("mixing.num_conditions", 0, r"mixing.num_conditions=0: K must be >= 1"),
    ("data.segment_seconds", 0.001, r"data.segment_seconds=0.001: segment of 8 samples is shorter"),
    ("data.batch_size", 1, r"data.batch_size=1: must be >= 2"),
    ("model.enc_kernel", 7, r"model.enc_kernel=7: must be an even number"),
]


@pytest.mark.parametrize(("key", "value", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_config_is_refused_before_anything_compiles(
    tiny_config, tmp_path, key, value, message
):
    config = _set(tiny_config, key, value)
    workdir = tmp_path / "run"
    with count_compiles() as compiles, pytest.raises(ConfigError, match=message):
        loop.train(config, str(workdir))
    assert compiles == []
    assert not workdir.exists()  # refused before touching the workdir


def test_bad_noise_folder_fails_before_training_not_after(tiny_config, tmp_path):
    from csc_jax.train_eval import train_and_evaluate

    config = _set(tiny_config, "data.folder.noise_root", str(tmp_path / "no_such_noise"))
    config.train.eval_at_end = True
    with count_compiles() as compiles, pytest.raises(DataError, match="no_such_noise"):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert compiles == []


def test_batch_not_divisible_by_devices_names_both_numbers(tiny_config):
    validate_config(tiny_config, num_devices=2)
    with pytest.raises(ConfigError, match=r"batch_size=4: .* number of devices \(3\)"):
        validate_config(tiny_config, num_devices=3)


def test_workdir_with_another_model_is_refused_with_the_keys(shared_cache, tmp_path):
    workdir = tmp_path / "run"
    configure_then_stop(make_tiny_config(shared_cache), workdir)
    assert (workdir / "config.json").exists()
    (workdir / "checkpoints" / "2").mkdir(parents=True)  # as if step 2 had been saved

    other = make_tiny_config(shared_cache, **{"model.hidden": 64, "model.blocks": 3})
    with count_compiles() as compiles, pytest.raises(ConfigError) as info:
        loop.train(other, str(workdir))
    assert compiles == []
    msg = str(info.value)
    assert "model.blocks: 2 -> 3" in msg and "model.hidden: 32 -> 64" in msg
    assert "--allow_config_change" in msg

    # train.steps is not watched: a longer run in the same workdir needs no override.
    longer = make_tiny_config(shared_cache, **{"train.steps": 9})
    configure_then_stop(longer, workdir)
    with open(workdir / "config.json") as f:
        assert json.load(f)["train"]["steps"] == 9

    # A watched run key needs the override, and the override lets it through.
    faster = make_tiny_config(shared_cache, **{"train.steps": 9, "optim.learning_rate": 1e-3})
    with pytest.raises(ConfigError, match=r"optim.learning_rate: 0.003 -> 0.001"):
        loop.train(faster, str(workdir))
    configure_then_stop(faster, workdir, allow_config_change=("optim.learning_rate",))


def test_workdir_without_a_checkpoint_takes_a_new_config_with_a_notice(
    shared_cache, tmp_path, capsys
):
    """A run that stopped before its first checkpoint left only its config and metrics: a
    rerun with fixed flags takes the workdir over, prints the changed keys and keeps the
    earlier attempt's files in earlier_attempts/<n>/."""
    workdir = tmp_path / "run"
    configure_then_stop(make_tiny_config(shared_cache), workdir)
    (workdir / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n')
    capsys.readouterr()
    fixed = make_tiny_config(shared_cache, **{"model.hidden": 48, "optim.learning_rate": 1e-3})
    configure_then_stop(fixed, workdir)
    (notice,) = [ln for ln in capsys.readouterr().out.splitlines() if "notice" in ln]
    earlier = workdir / "earlier_attempts" / "1"
    assert notice.startswith(f"notice: --workdir {workdir} holds no checkpoint")
    assert "model.hidden: 32 -> 48" in notice and "optim.learning_rate: 0.003 -> 0.001" in notice
    assert notice.endswith(str(earlier))
    assert json.loads((workdir / "config.json").read_text())["model"]["hidden"] == 48
    assert json.loads((earlier / "config.json").read_text())["model"]["hidden"] == 32
    assert (earlier / "metrics.jsonl").read_text() == '{"step": 1, "loss": 9.0}\n'
    assert not (workdir / "metrics.jsonl").exists()
    # Another change: the next folder; the same config again: nothing moved, no notice.
    configure_then_stop(make_tiny_config(shared_cache), workdir)
    assert (workdir / "earlier_attempts" / "2" / "config.json").exists()
    capsys.readouterr()
    configure_then_stop(make_tiny_config(shared_cache), workdir)
    assert "notice" not in capsys.readouterr().out
    assert sorted(os.listdir(workdir / "earlier_attempts")) == ["1", "2"]


def test_model_change_cannot_be_allowed_once_checkpoints_exist(shared_cache, tmp_path):
    workdir = tmp_path / "run"
    configure_then_stop(make_tiny_config(shared_cache), workdir)
    (workdir / "checkpoints" / "2").mkdir(parents=True)  # as if step 2 had been saved
    other = make_tiny_config(shared_cache, **{"model.hidden": 64})
    with pytest.raises(
        ConfigError, match=r"(?s)checkpoints of a different model.*model.hidden: 32 -> 64"
    ):
        loop.train(other, str(workdir), allow_config_change=("model.hidden",))


def test_unwritable_workdir_gets_a_clear_error(tiny_config, tmp_path):
    # Permission bits do not stop root (tests may run as root); these fail for everyone.
    regular_file = tmp_path / "a_file"
    regular_file.write_text("not a directory")
    for workdir, reason in (
        (regular_file / "run", "Not a directory"),
        (regular_file, "File exists"),
    ):
        with count_compiles() as compiles, pytest.raises(ConfigError) as info:
            loop.train(tiny_config, str(workdir))
        assert compiles == []
        assert f"--workdir {workdir} is not a writable directory" in str(info.value)
        assert reason in str(info.value)


def test_checkpoint_directory_that_cannot_be_created(tmp_path):
    (tmp_path / "checkpoints").write_text("a file where the directory should be")
    with pytest.raises(checkpointing.CheckpointError, match="cannot create checkpoint directory"):
        checkpointing.Checkpointer(tmp_path)


def test_startup_signal_is_honoured_without_compiling(tiny_config, tmp_path):
    err = configure_then_stop(tiny_config, tmp_path / "run")
    assert err.step == 0
    assert "preempted at step 0 (SIGTERM)" in err.message
    assert "rerun the same command to resume" in err.message
    assert checkpointing.complete_steps(tmp_path / "run") == []


# ---------------------------------------------------------------- non-finite values


def test_injected_nan_stops_with_step_last_metrics_and_last_good_checkpoint(
    shared_cache, tmp_path, monkeypatch
):
    config = make_tiny_config(shared_cache, **{"train.steps": 6})
    inject_nan_at_step(3, monkeypatch)
    workdir = tmp_path / "run"
    with pytest.raises(loop.NonFiniteError) as info:
        loop.train(config, str(workdir))
    msg = str(info.value)
    assert "non-finite loss or gradient at step 3 (loss=nan" in msg
    assert "last finite metrics: {" in msg and "'step': 2}" in msg
    assert "last good checkpoint: step 2" in msg
    # Only the good checkpoint exists; no later one (of NaN params) was ever written.
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2"]
    _, params, step = restore_params(config, str(workdir))
    assert step == 2
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
    with open(workdir / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2]


@pytest.fixture(scope="module")
def skip_run(tmp_path_factory, shared_cache):
    """NaN at step 3 skipped; records how many earlier steps were unfinished at each dispatch.

    log_every and checkpoint_every exceed the run, so nothing but the loop's own per-step
    wait bounds how far the host may run ahead of the device.
    """
    overrides = {
        "train.steps": 8,
        "train.skip_nonfinite_updates": True,
        "train.log_every": 100,
        "train.checkpoint_every": 100,
    }
    config = make_tiny_config(shared_cache, **overrides)
    workdir = tmp_path_factory.mktemp("skip") / "run"
    unfinished, outputs = [], []
    real_step = DataParallel.step

    def step(self, state, batch):
        unfinished.append(sum(not all(x.is_ready() for x in m.values()) for m in outputs))
        state, metrics = real_step(self, state, batch)
        outputs.append(metrics)
        return state, metrics

    mp = pytest.MonkeyPatch()
    mp.setattr(DataParallel, "step", step)
    inject_nan_at_step(3, mp)
    try:
        import io
        from contextlib import redirect_stdout

        out = io.StringIO()
        with redirect_stdout(out):
            _, state = loop.train(config, str(workdir))
    finally:
        mp.undo()
    return workdir, state, unfinished, out.getvalue()


def test_skip_nonfinite_updates_finishes_and_reports_the_count(skip_run):
    workdir, state, _, stdout = skip_run
    assert int(state.step) == 8 and int(state.skipped) == 1
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))
    with open(workdir / "metrics.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert rows[-1]["step"] == 8 and rows[-1]["skipped"] == 1.0
    assert "skipped 1 non-finite update(s)" in stdout


def test_host_keeps_at_most_one_step_in_flight(skip_run):
    """Unbounded async dispatch let a SIGTERM or NaN be seen up to log_every steps late."""
    _, _, unfinished, _ = skip_run
    assert len(unfinished) == 8
    assert max(unfinished) <= 1


def test_implicit_transfer_inside_the_loop_raises(tiny_config, tmp_path, monkeypatch):
    """The loop runs under jax.transfer_guard('disallow'): an implicit upload fails loudly."""
    import jax.numpy as jnp

    def implicit_put(self, batch):
        return {k: jnp.add(v, 0.0) for k, v in batch.items()}  # numpy -> device, implicitly

    monkeypatch.setattr(DataParallel, "put_batch", implicit_put)
    with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
        loop.train(tiny_config, str(tmp_path / "run"))
    # Outside the loop the same operation is allowed (the guard is scoped to the loop).
    jnp.add(np.zeros(2, np.float32), 0.0).block_until_ready()


# ---------------------------------------------------------------- train.py messages


def _train_cli(args, timeout=120):
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_unknown_override_key(shared_cache, tmp_path):
    flags = tiny_cli_flags(shared_cache)
    proc = _train_cli([*flags, f"--workdir={tmp_path / 'run'}", "--config.train.step=3"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--config.train.step=3: unknown config key 'train.step'" in proc.stderr
    assert "did you mean train.steps" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_unknown_key_in_config_file_and_incompatible_workdir(shared_cache, tmp_path):
    config_file = tmp_path / "my_config.py"
    config_file.write_text(
        "from csc_jax.config import base_config\n\n\n"
        "def get_config():\n"
        "    c = base_config()\n"
        "    c.model.hiden = 32  # typo\n"
        "    return c\n"
    )
    flags = tiny_cli_flags(shared_cache)
    proc = _train_cli([f"--config={config_file}", *flags, f"--workdir={tmp_path / 'a'}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unknown config key(s): model.hiden" in proc.stderr
    assert str(config_file) in proc.stderr

    # A workdir whose saved config and checkpoint have another model shape.
    workdir = tmp_path / "b"
    (workdir / "checkpoints" / "2").mkdir(parents=True)
    saved = make_tiny_config(shared_cache, **{"model.hidden": 48}).to_dict()
    (workdir / "config.json").write_text(json.dumps(saved))
    proc = _train_cli([*flags, f"--workdir={workdir}"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "holds a run with a different config" in proc.stderr
    assert "model.hidden: 48 -> 32" in proc.stderr
    assert os.listdir(workdir / "checkpoints") == ["2"]  # stopped before any work
    assert not (workdir / "metrics.jsonl").exists()


def test_rematerialisation_may_change_on_resume():
    """model.remat computes the same function with less memory: a run saved without it may
    resume with it (a GPU run moved to a smaller card), unlike other model keys."""
    from csc_jax.config import base_config, incompatible_keys

    saved = base_config().to_dict()
    changed = base_config()
    changed.model.remat, changed.model.remat_policy = "block", "dots"
    assert incompatible_keys(saved, changed) == []
    changed.model.hidden = 64
    assert incompatible_keys(saved, changed) == ["model.hidden: 128 -> 64"]


def test_config_keys_added_after_a_run_do_not_block_its_resume():
    """A workdir saved before a key existed (model.identity_init) used the key's default: the
    same config must count as compatible, and a different value must not."""
    from csc_jax.config import base_config, incompatible_keys

    saved = base_config().to_dict()
    del saved["model"]["identity_init"]
    assert incompatible_keys(saved, base_config()) == []
    changed = base_config()
    changed.model.identity_init = True
    assert incompatible_keys(saved, changed) == ["model.identity_init: False -> True"]


def test_a_run_saved_before_the_front_end_key_is_a_waveform_model(tmp_path):
    """config.json files written before model.frontend existed describe waveform models: they
    must not be read as today's default ('stft'), whose parameters differ."""
    import json

    from csc_jax.config import base_config, incompatible_keys, read_saved_config

    saved = base_config().to_dict()
    saved["model"]["frontend"] = "waveform"
    saved["data"]["sample_rate"] = 8000
    saved["model"]["enc_kernel"] = 32
    del saved["model"]["frontend"], saved["model"]["stft_window"], saved["model"]["stft_hop"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert read_saved_config(tmp_path).model.frontend == "waveform"
    now = base_config()
    now.model.frontend = "stft"
    assert "model.frontend: 'waveform' -> 'stft'" in incompatible_keys(saved, now)
    now.model.frontend, now.data.sample_rate, now.model.enc_kernel = "waveform", 8000, 32
    assert incompatible_keys(saved, now) == []


def _random_mixed(k: int) -> dict:
    """Two targets under ``k`` conditions of random (2, k, 800) components and their mixture."""
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    target, interference, noise = (0.1 * jax.random.normal(key, (2, k, 800)) for key in keys)
    mixture = target + interference + 0.1 * noise
    return {"target": target, "interference": interference, "noise": noise, "mixture": mixture}


def test_stop_gradient_components_keeps_the_loss_and_changes_only_the_gradient(tiny_config):
    """loss.stop_gradient_components: same loss value, but the component passes no longer
    contribute gradient (so the gradients differ unless those passes had none)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from csc_jax.models import model_from_config
    from csc_jax.training.objectives import csc_objective

    model = model_from_config(tiny_config)
    mixed = _random_mixed(2)
    params = model.init(jax.random.PRNGKey(1), mixed["mixture"])["params"]

    def value_and_grad(stop):
        tiny_config.loss.stop_gradient_components = stop
        # jit: one compiled program per setting instead of op-by-op dispatch.
        fn = jax.jit(jax.value_and_grad(lambda p: csc_objective(p, model, mixed, tiny_config)[0]))
        return fn(params)

    v0, g0 = value_and_grad(False)
    v1, g1 = value_and_grad(True)
    np.testing.assert_allclose(v0, v1, rtol=1e-6)
    pairs = zip(jax.tree.leaves(g0), jax.tree.leaves(g1), strict=True)
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in pairs)
    assert diff > 1e-6
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(g1))


def test_enrollment_conditioning_extracts_with_the_next_conditions_clean_vector(tiny_config):
    """loss.extraction_condition='enrollment': mixture k is extracted with the K=1 vector of
    the clean target component of condition k+1 (mod K), not with its own global vector, and
    the separation loss differs from the global vector's."""
    import jax
    import numpy as np

    from csc_jax.models import model_from_config
    from csc_jax.training.objectives import component_streams, csc_objective

    model = model_from_config(tiny_config)
    mixed = _random_mixed(3)
    tiny_config.mixing.num_conditions = 3
    params = model.init(jax.random.PRNGKey(1), mixed["mixture"])["params"]
    e_target, _ = component_streams(params, model, mixed)
    expected = {}
    for k, cond in ((0, 1), (1, 2), (2, 0)):
        est = model.apply(
            {"params": params},
            mixed["mixture"][:, k],
            e_target[:, cond],
            method=model.extract,
        )
        expected[k] = np.asarray(est)
    tiny_config.loss.extraction_condition = "enrollment"
    out = model.apply(
        {"params": params}, mixed["mixture"], condition=np.roll(np.asarray(e_target), -1, 1)
    )
    for k in range(3):
        np.testing.assert_allclose(out["estimate"][:, k], expected[k], rtol=1e-4, atol=1e-5)

    def sep_loss(condition):
        tiny_config.loss.extraction_condition = condition
        return jax.jit(lambda p: csc_objective(p, model, mixed, tiny_config)[1]["sep_loss"])

    enrolled, own = sep_loss("enrollment")(params), sep_loss("global")(params)
    assert abs(float(enrolled) - float(own)) > 1e-6


def test_enrollment_conditioning_needs_component_streams():
    from csc_jax.config import base_config
    from csc_jax.config.schema import validate_config
    from csc_jax.errors import ConfigError

    for weights in ("mask", "oracle"):
        c = base_config()
        c.loss.stream_weights = weights
        with pytest.raises(ConfigError, match="loss.extraction_condition"):
            validate_config(c)
        c.loss.extraction_condition = "global"
        validate_config(c)
    c = base_config()
    c.loss.extraction_condition = "clean"
    with pytest.raises(ConfigError, match="loss.extraction_condition"):
        validate_config(c)


def test_a_run_saved_before_extraction_conditioning_reads_as_global(tmp_path):
    """Runs saved before loss.extraction_condition existed were conditioned on c[b,k]."""
    from csc_jax.config import base_config
    from csc_jax.config.tools import read_saved_config

    saved = base_config().to_dict()
    del saved["loss"]["extraction_condition"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert read_saved_config(tmp_path).loss.extraction_condition == "global"
    assert base_config().loss.extraction_condition == "enrollment"
