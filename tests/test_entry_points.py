"""The front door: train.py, eval.py and benchmark.py as a newcomer first meets them.

``--help`` exits 0; every expected error is one ``error:`` line with exit status 2 (a missing
or badly typed config, an unknown flag, a stray argument, running from another directory);
eval.py evaluates a run with the run's own config.json; ``--config`` and ``--config.KEY=VALUE``
apply on top, and the model keys must stay the checkpoint's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from _train_worker import REPO, subprocess_env
from conftest import make_tiny_config, save_folder_corpus

from csc_jax.config import (
    ConfigError,
    apply_overrides,
    base_config,
    config_for_run,
    load_config_file,
    split_config_flags,
)

SCRIPTS = ("train.py", "eval.py", "benchmark.py")


def _run(script: str, *args, cwd=REPO, timeout=120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, os.path.join(REPO, script), *map(str, args)]
    return subprocess.run(
        cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout
    )


def _one_error_line(proc: subprocess.CompletedProcess, *named: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    for name in named:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0_from_any_directory(script, tmp_path):
    proc = _run(script, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--config" in proc.stdout and proc.stderr == ""
    if script == "train.py":
        assert "--config.KEY=VALUE" in proc.stdout and "configs/smoke.py" in proc.stdout
    if script == "eval.py":
        assert "config.json" in proc.stdout and "--config.KEY=VALUE" in proc.stdout


def test_expected_errors_are_one_line_with_exit_status_2(shared_cache, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    # From another directory the default config is found next to train.py; what fails is the
    # --workdir (a regular file), before anything is built.
    line = _one_error_line(_run("train.py", f"--workdir={a_file}", cwd=tmp_path), str(a_file))
    assert "not a writable directory" in line
    assert os.path.join(REPO, "configs", "default.py") in line
    workdir = tmp_path / "w"
    missing = tmp_path / "missing.py"
    _one_error_line(_run("train.py", "--config", missing, f"--workdir={workdir}"), str(missing))
    _one_error_line(
        _run("train.py", "--config.train.steps=two", f"--workdir={workdir}"),
        "--config.train.steps=two",
        "'two'",
    )
    _one_error_line(_run("train.py", f"--wrkdir={workdir}"), "'wrkdir'")
    _one_error_line(_run("train.py", "configs/smoke.py"), "unexpected arguments: configs/smoke.py")
    assert not workdir.exists()

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(make_tiny_config(shared_cache).to_dict()))
    _one_error_line(
        _run("eval.py", f"--workdir={run}", "--config.eval.max_trials=many"),
        "--config.eval.max_trials=many",
    )
    _one_error_line(
        _run("eval.py", f"--workdir={run}", "--config.model.hidden=48"),
        "model.hidden: 32 -> 48",
        str(run / "config.json"),
    )
    _one_error_line(_run("eval.py", f"--workdir={tmp_path / 'nowhere'}"), "config.json not found")
    _one_error_line(_run("benchmark.py", "--config", missing), str(missing))
    _one_error_line(
        _run("benchmark.py", "--config.experiment.train.steps=two"),
        "--config.experiment.train.steps=two",
    )


def test_config_flags_are_split_from_the_rest(tmp_path):
    config_file = tmp_path / "c.py"
    config_file.write_text("from csc_jax.config import base_config\nget_config = base_config\n")
    argv = ["train.py", "--workdir=w", "--config", str(config_file), "--config.seed", "3"]
    argv += ["--config.train.progress_bar", "--noconfig.train.eval_at_end", "--", "--config=x"]
    flags = split_config_flags(argv)
    assert flags.path == str(config_file)
    assert flags.overrides == (
        "--config.seed=3",
        "--config.train.progress_bar",
        "--noconfig.train.eval_at_end",
    )
    assert flags.argv == ["train.py", "--workdir=w", "--", "--config=x"]
    config = apply_overrides(load_config_file(str(config_file)), flags.overrides)
    assert (config.seed, config.train.progress_bar, config.train.eval_at_end) == (3, True, False)
    with pytest.raises(ConfigError, match=r"--config.seed needs a value"):
        split_config_flags(["train.py", "--config.seed"])
    with pytest.raises(ConfigError, match=r"unknown config key 'train.step'"):
        split_config_flags(["train.py", "--config.train.step=3"])
    with pytest.raises(ConfigError, match=r"--config.mixing.sir_db=abc: expected a tuple of"):
        apply_overrides(base_config(), ["--config.mixing.sir_db=abc"])
    assert apply_overrides(base_config(), ["--config.mixing.sir_db=(0, 3.5)"]).mixing.sir_db == (
        0,
        3.5,
    )


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, shared_cache):
    """A tiny model trained 2 steps on a folder corpus, with a protocol unlike the defaults
    (one noise and one interferer condition): eval.py can only reproduce it from config.json."""
    from csc_jax.training.loop import train

    root = tmp_path_factory.mktemp("folder_run")
    roots = save_folder_corpus(shared_cache, root)
    config = make_tiny_config(
        shared_cache,
        **{
            "data.source": "folder",
            "data.folder.train_root": roots["train"],
            "data.folder.test_root": roots["test"],
            "train.steps": 2,
            "eval.noise_snr_db": (5.0,),
            "eval.interferer_sir_db": (0.0,),
            "eval.extraction_max_trials": 8,
            "eval.bootstrap_replicates": 20,
        },
    )
    workdir = root / "run"
    train(config, str(workdir))
    return workdir, config


def test_eval_py_evaluates_a_run_with_its_own_config(folder_run, tmp_path):
    workdir, config = folder_run
    proc = _run("eval.py", f"--workdir={workdir}", cwd=tmp_path, timeout=300)  # no --config
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((workdir / "eval" / "results.json").read_text())
    assert sorted(results["results"]["csc"]) == ["SIR 0 dB", "SNR 5 dB", "clean"]
    assert results["meta"]["speakers"] == config.data.synthetic.num_test_speakers
    assert results["meta"]["bootstrap_replicates"] == 20


def test_config_for_run_applies_config_and_overrides_on_top(folder_run, tmp_path):
    workdir, config = folder_run
    saved = str(workdir / "config.json")

    def flags(*args):
        return split_config_flags(["eval.py", *args])

    assert config_for_run(str(workdir), flags()).to_dict() == config.to_dict()
    # A JSON config (here the run's own) and an override on top of it.
    got = config_for_run(str(workdir), flags("--config", saved, "--config.eval.max_trials=10"))
    assert got.eval.max_trials == 10 and got.data.source == "folder"
    assert got.model.to_dict() == config.model.to_dict()
    # Another config's protocol is fine; another model is not.
    other = tmp_path / "other.py"
    other.write_text(
        "from csc_jax.config import load_config_file\n\n"
        f"def get_config():\n    c = load_config_file({saved!r})\n"
        "    c.eval.noise_snr_db = ()\n    return c\n"
    )
    assert config_for_run(str(workdir), flags("--config", str(other))).eval.noise_snr_db == ()
    with pytest.raises(ConfigError, match=r"another model .*model.hidden: 32 -> 128"):
        config_for_run(str(workdir), flags("--config", str(other), "--config.model.hidden=128"))
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'empty'}.*config.json not found"):
        config_for_run(str(tmp_path / "empty"), flags())


@pytest.mark.slow
def test_smoke_config_trains_and_evaluates_within_two_minutes(tmp_path):
    """The command configs/smoke.py documents, end to end, at XLA's full optimisation (as a
    user runs it), corpus generation included (a fresh cache)."""
    workdir = tmp_path / "smoke"
    cmd = [sys.executable, "train.py", "--config", "configs/smoke.py", f"--workdir={workdir}"]
    cmd.append(f"--config.data.cache_dir={tmp_path / 'cache'}")
    t0 = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=subprocess_env(fast_compile=False),
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"configs/smoke.py: {seconds:.1f} s")
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert [r["step"] for r in rows if "val/eer_clean" in r] == [0, 50, 100, 150]
    assert os.listdir(workdir / "checkpoints") and (workdir / "eval" / "results.md").exists()
    results = json.loads((workdir / "eval" / "results.json").read_text())
    assert sorted(results["results"]["csc"]) == ["SIR 0 dB", "SNR 5 dB", "clean"]
    assert "eval: " in proc.stdout and "Traceback" not in proc.stderr
