"""The results pipeline (csc_jax/experiments, scripts/run_results.py) on the tiny config.

One end-to-end run of the CLI (2 steps, seeds 0 and 1; csc, simclr, the time-matched simclr
and one ablation) checks the page's rows, intervals, paired verdicts, convergence table,
figures and commands; rerunning in-process with training replaced by a function that raises
proves recorded runs are skipped; the page rebuilt from the records alone equals it; a runner
killed (SIGKILL) mid-run leaves no record and its rerun completes the run. The statistics
(two-level bootstrap, the rule for a finding, the plateau test) are checked on synthetic
scores.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _train_worker import REPO, subprocess_env

from csc_jax import experiments
from csc_jax.errors import ConfigError
from csc_jax.experiments import runner, statistics, store

pytestmark = pytest.mark.slow

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CONDITIONS = ["clean", "SNR 10 dB", "SNR 5 dB", "SNR 0 dB", "SIR 5 dB", "SIR 0 dB"]
# The runner fixture trains csc, simclr and simclr-time (each run costs ~20 s here); csc-K1
# and the other ablations are config overrides, checked by test_registry_plan_and_config_errors.
VARIANTS = "csc,simclr,simclr-time"
ROWS = ["csc", "simclr", "simclr-time", "untrained", "log-mel", "mfcc"]
CELL = re.compile(r"^(\d+\.\d\d) \[(\d+\.\d\d), (\d+\.\d\d)\]")


def _write_tiny_config(path, cache_dir) -> str:
    path.write_text(
        "import sys\n"
        f"sys.path.insert(0, {TESTS_DIR!r})\n"
        "from conftest import make_tiny_config\n\n\n"
        "def get_config():\n"
        f"    return make_tiny_config({str(cache_dir)!r}, **{{'train.steps': 2, "
        "'eval.max_trials': 60, 'eval.seconds': 0.5})\n"
    )
    return str(path)


def _table(md: str, header_start: str) -> dict[str, list[str]]:
    """The markdown table whose header starts with ``header_start``: label -> cells."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, shared_cache):
    root = tmp_path_factory.mktemp("results")
    config_path = _write_tiny_config(root / "tiny.py", shared_cache)
    out_md = root / "docs" / "results.md"
    runs = root / "runs"
    cmd = [sys.executable, "scripts/run_results.py", "--config", config_path]
    cmd += ["--steps", "2", "--seeds", "0,1", "--variants", VARIANTS]
    cmd += ["--workdir_root", str(runs), "--out", str(out_md), "--title", "Tiny results"]
    cmd += ["--results_root", str(root / "store"), "--campaign", "tiny"]
    env = subprocess_env(compile_cache=root / "compile_cache", fast_compile=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {
        "root": root,
        "config": config_path,
        "md": out_md,
        "runs": runs,
        "campaign": root / "store" / "tiny",
        "log": proc.stdout,
    }


def test_page_has_every_system_interval_verdict_and_figure(pipeline_run):
    md = pipeline_run["md"].read_text()
    runs = pipeline_run["runs"]
    assert md.startswith("# Tiny results")
    rows = _table(md, "| system | seeds |")
    assert list(rows) == ROWS, list(rows)
    assert rows["csc"][0] == "0,1" and rows["mfcc"][0] == "-"
    # Each cell: mean [lo, hi] with lo <= mean <= hi; the mean is the runs' own EERs' mean.
    eers = []
    for seed in (0, 1):
        with open(runs / f"csc-s{seed}" / "eval" / "results.json") as f:
            eers.append(json.load(f)["results"]["csc"]["clean"]["eer"])
    m = CELL.match(rows["csc"][1])
    assert m, rows["csc"][1]
    mean, lo, hi = map(float, m.groups())
    assert mean == pytest.approx(np.mean(eers), abs=0.006) and lo <= mean <= hi
    assert f"({min(eers):.1f}-{max(eers):.1f})" in rows["csc"][1]
    diffs = _table(md, "| difference |")
    assert {"csc - simclr", "csc - simclr-time", "csc - mfcc", "csc - log-mel"} <= set(diffs)
    for cells in diffs.values():
        for cell in cells:
            assert re.search(r"\[-?\d+\.\d\d, -?\d+\.\d\d\] (no finding|\*\*.+ better\*\*)", cell)
    assert "## Convergence" in md and "val/eer_sir0" in md
    # Equal wall time: simclr-time trained another number of steps, shown in its command.
    with open(runs / "simclr-time-s0" / "config.json") as f:
        steps = json.load(f)["train"]["steps"]
    assert steps % 10 == 0 and steps >= 10
    assert f"--workdir {runs / 'simclr-time-s0'} " in md and f"--config.train.steps={steps}" in md
    fig_dir = pipeline_run["md"].parent / "results"
    pngs = ["det_clean.png", "det_SIR0dB.png"] + [f"curves_{v}.png" for v in VARIANTS.split(",")]
    for name in pngs:
        path = fig_dir / name
        assert path.is_file(), name
        assert 1000 < path.stat().st_size < 200_000, (name, path.stat().st_size)
        assert f"results/{name}" in md, name
    assert (runs / "csc-s1" / experiments.RESULTS_MARKER).is_file()


def test_rerun_skips_recorded_runs_and_a_changed_config_is_one_error(pipeline_run, monkeypatch):
    import csc_jax.train_eval as train_eval

    def no_training(*args, **kwargs):
        raise RuntimeError("train called for a finished run")

    monkeypatch.setattr(train_eval, "train_and_evaluate", no_training)
    from csc_jax.config import load_config_file

    base = load_config_file(pipeline_run["config"])
    variants = experiments.select_variants(VARIANTS.split(","))
    campaign = str(pipeline_run["campaign"])
    records, left = experiments.run_results(
        base, variants, (0, 1), 2, str(pipeline_run["runs"]), campaign_dir=campaign,
        config_label="x", log=lambda *a: 0,
    )  # fmt: skip
    assert len(records) == 2 * len(variants) and not left and {r.status for r in records} == {"ran"}
    # Another training budget is another run: the record of the other one is one clear error.
    with pytest.raises(ConfigError, match=r"csc-s0/config.json: train.steps is 2 in the record"):
        experiments.run_results(
            base, experiments.select_variants(["csc"]), (0,), 3, str(pipeline_run["runs"]),
            campaign_dir=campaign, config_label="x", log=lambda *a: 0,
        )  # fmt: skip
    # In another campaign it is a new run (its workdir's finished run has another config).
    with pytest.raises(RuntimeError, match="train called"):
        experiments.run_results(
            base, experiments.select_variants(["csc"]), (0,), 3, str(pipeline_run["runs"]),
            campaign_dir=campaign + "-other", config_label="x", log=lambda *a: 0,
        )  # fmt: skip


def _scores(rng, labels, d, noise=None):
    base = rng.standard_normal(labels.size) if noise is None else noise
    return base + d * labels


def test_two_level_bootstrap_verdicts_follow_the_rule():
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.4).astype(int)
    speakers = np.arange(2000) % 40
    good = statistics.SeedScores("a", [_scores(rng, labels, 2.0) for _ in range(3)], [0, 1, 2])
    bad = statistics.SeedScores("b", [_scores(rng, labels, 1.0) for _ in range(3)], [0, 1, 2])
    same = statistics.SeedScores("c", [_scores(rng, labels, 2.0) for _ in range(3)], [0, 1, 2])
    means, diffs = statistics.compare([good, bad, same], labels, speakers, replicates=300)
    assert diffs[("a", "b")].verdict == "A" and diffs[("a", "b")].ci[1] < 0
    assert diffs[("b", "c")].verdict == "B"
    assert diffs[("a", "c")].verdict == "="
    for e in means.values():
        assert e.ci[0] <= e.value <= e.ci[1] and len(e.per_seed) == 3
    # Seed variability widens the interval of the mean: same scores in every seed vs. seeds
    # of very different quality.
    steady = statistics.SeedScores("s", [good.per_seed[0]] * 3, [0, 1, 2])
    wild = statistics.SeedScores(
        "w", [good.per_seed[0], bad.per_seed[0], good.per_seed[1]], [0, 1, 2]
    )
    m, _ = statistics.compare([steady, wild], labels, speakers, replicates=300)
    width = lambda e: e.ci[1] - e.ci[0]  # noqa: E731
    assert width(m["w"]) > 1.5 * width(m["s"])


def test_plateau_detects_a_falling_curve_and_a_flat_one():
    rng = np.random.default_rng(1)
    steps = list(range(0, 3001, 100))
    falling = [40.0 - 0.008 * s + rng.normal(0, 0.5) for s in steps]
    flat = [25.0 + rng.normal(0, 1.0) for _ in steps]
    assert statistics.plateau(steps, falling)["flat"] is False
    p = statistics.plateau(steps, flat)
    assert p["flat"] is True and p["points"] == 16
    assert statistics.plateau([0, 100], [30.0, 29.0])["flat"] is False  # too few points


def test_registry_plan_and_config_errors(tiny_config):
    names = experiments.variant_names()
    assert names[:3] == ["csc", "simclr", "simclr-time"]
    assert {"csc-no-xattn", "csc-no-sep", "csc-no-csc", "csc-K1"} <= set(names)
    # A time-matched variant brings the variant it matches; it runs after it, per seed.
    chosen = experiments.select_variants(["simclr", "simclr-time"])
    assert [v.name for v in chosen] == ["csc", "simclr", "simclr-time"]
    pairs = runner.plan(chosen, (0, 1))
    assert [(v.name, s) for v, s in pairs][:3] == [("csc", 0), ("simclr", 0), ("simclr-time", 0)]
    assert experiments.parse_seeds("0, 1,2") == (0, 1, 2)
    for bad in ("", "a", "1,1"):
        with pytest.raises(ConfigError):
            experiments.parse_seeds(bad)
    with pytest.raises(ConfigError, match="unknown variant"):
        experiments.select_variants(["csc", "nope"])
    k1 = experiments.select_variants(["csc-K1"])[-1]
    c = experiments.run_config(tiny_config, k1, seed=5, steps=7)
    assert (c.mixing.num_conditions, c.seed, c.train.steps) == (1, 5, 7)
    assert tiny_config.mixing.num_conditions == 2  # the base config is not modified
    args = runner.override_args(c, tiny_config)
    assert "--config.mixing.num_conditions=1" in args and "--config.seed=5" in args
    bad = experiments.Variant("bad", {"model.no_such_key": 1}, "")
    with pytest.raises(ConfigError, match="no_such_key"):
        experiments.run_config(tiny_config, bad, 0)


def test_a_finished_run_stays_finished_when_the_schema_gains_a_key(tmp_path):
    """A run whose marker predates a config key (here model.identity_init) used that key's
    default: it must still count as finished, and not with a non-default value."""
    from csc_jax.config import base_config

    workdir = tmp_path / "run"
    (workdir / "eval").mkdir(parents=True)
    (workdir / "eval" / "results.json").write_text(json.dumps({"results": {}}))
    (workdir / "eval" / "scores.npz").write_bytes(b"")
    saved = base_config().to_dict()
    del saved["model"]["identity_init"]
    marker = {"config": saved, "train_seconds": 1.0, "eval_seconds": 1.0}
    (workdir / experiments.RESULTS_MARKER).write_text(json.dumps(marker))
    assert runner.finished_run(str(workdir), base_config()) is not None
    other = base_config()
    other.model.identity_init = True
    assert runner.finished_run(str(workdir), other) is None


def test_equal_time_steps_come_from_one_side_by_side_measurement(
    tiny_config, tmp_path, monkeypatch
):
    """The time-matched step count uses step times measured side by side in this process
    (not the runs' logged rates), saved once and reused by every seed and rerun; a changed
    config is measured again."""
    calls = []

    def fake_measure(configs, **_):
        calls.append(sorted(configs))
        return {n: {"seconds_per_step": {"csc": 1.2, "simclr": 0.3}[n], "per_round": []}
                for n in configs}  # fmt: skip

    monkeypatch.setattr(runner, "measure_step_times", fake_measure)
    by_name = {v.name: v for v in experiments.select_variants(["simclr", "simclr-time"])}

    def configs(seed):
        return {n: experiments.run_config(tiny_config, by_name[n], seed, 600)
                for n in ("csc", "simclr")}  # fmt: skip

    times = runner.step_times(configs(0), str(tmp_path), log=lambda *_: None)
    assert times == {"csc": 1.2, "simclr": 0.3} and calls == [["csc", "simclr"]]
    assert runner.matched_steps(600, times["csc"], times["simclr"]) == 2400
    assert runner.matched_steps(600, 0.01, 1.0) == 10  # never fewer than 10
    # Another seed, or a rerun: the saved measurement, not a new one.
    assert runner.step_times(configs(1), str(tmp_path), log=lambda *_: None) == times
    assert len(calls) == 1
    # A change that can change a step's cost is measured again.
    tiny_config.data.batch_size = 2 * tiny_config.data.batch_size
    runner.step_times(configs(0), str(tmp_path), log=lambda *_: None)
    assert len(calls) == 2


def test_a_time_matched_variant_needs_no_equal_step_run_of_its_own(
    tiny_config, tmp_path, monkeypatch
):
    """waveform-time is timed on its own config against csc's; only csc and it are run."""
    timed, ran = [], []

    def fake_step_times(configs, workdir_root, log):
        timed.append(sorted(configs))
        return {"csc": 0.2, "waveform-time": 1.0}

    def fake_run_and_record(config, workdir, record_dir, name, cmd, log, commit):
        ran.append((name, int(config.train.steps), config.model.frontend))
        return record_dir

    monkeypatch.setattr(runner, "step_times", fake_step_times)
    monkeypatch.setattr(runner, "run_and_record", fake_run_and_record)
    monkeypatch.setattr(runner.store, "read_record", lambda d: d)
    tiny_config.model.frontend = "stft"
    tiny_config.data.sample_rate = 16000
    variants = experiments.select_variants(["waveform-time"])
    assert [v.name for v in variants] == ["csc", "waveform-time"]
    experiments.run_results(
        tiny_config, variants, (0,), 600, str(tmp_path), campaign_dir=str(tmp_path / "c"),
        config_label="x", log=lambda *a: 0,
    )  # fmt: skip
    assert timed == [["csc", "waveform-time"]]
    assert ran == [("csc", 600, "stft"), ("waveform-time", 120, "waveform")]


def test_report_convergence_writes_the_plateau_verdict_of_each_validation_curve(tmp_path):
    import json

    from csc_jax.train_eval import CONVERGENCE_FILE, report_convergence

    steps = list(range(0, 1100, 100))
    rows = [{"step": s, "loss": 1.0} for s in steps]
    rows += [{"step": s, "val/eer_clean": 30.0 - 0.01 * s} for s in steps]  # still falling
    rows += [{"step": s, "val/eer_sir0": 35.0 + (s // 100 % 2)} for s in steps]  # flat
    rows += [{"step": s, "val/eer_sir5": 20.0 + 0.01 * s} for s in steps]  # getting worse
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = []
    out = report_convergence(str(tmp_path), log=lines.append)
    assert out["val/eer_clean"]["flat"] is False and out["val/eer_sir0"]["flat"] is True
    assert "still falling" in lines[0] and "flat (slope" in lines[1]
    assert out["val/eer_sir5"]["flat"] is True and "sir5: rising (slope +10.0" in lines[2]
    saved = json.loads((tmp_path / CONVERGENCE_FILE).read_text())
    assert saved["val/eer_clean"]["steps"] == steps and saved["val/eer_sir0"]["points"] == 6


def test_step_times_keep_one_measurement_per_pair_and_read_the_older_file(
    tiny_config, tmp_path, monkeypatch
):
    """Two time-matched variants on one page: each pair is measured once, not re-measured
    because the other pair overwrote the file; a file in the one-measurement format is read."""
    import json

    calls = []

    def fake_measure(configs, **_):
        calls.append(sorted(configs))
        return {n: {"seconds_per_step": 0.5, "per_round": []} for n in configs}

    monkeypatch.setattr(runner, "measure_step_times", fake_measure)
    by_name = {v.name: v for v in experiments.select_variants(["simclr-time", "waveform-time"])}

    def pair(other, seed=0):
        names = ("csc", other)
        return {n: experiments.run_config(tiny_config, by_name[n], seed, 600) for n in names}

    for seed in (0, 1):
        for other in ("simclr-time", "waveform-time"):
            runner.step_times(pair(other, seed), str(tmp_path), log=lambda *_: None)
    assert calls == [["csc", "simclr-time"], ["csc", "waveform-time"]]
    # The older format: one {'configs', 'times'} object.
    old = tmp_path / "old"
    old.mkdir()
    saved = json.loads((tmp_path / runner.STEP_TIMES_FILE).read_text())["entries"][0]
    (old / runner.STEP_TIMES_FILE).write_text(json.dumps(saved))
    runner.step_times(pair("simclr-time"), str(old), log=lambda *_: None)
    assert len(calls) == 2
    # A measurement made before the schema gained a key (here: eval.query_scoring, at its
    # default) is still this pair's: a new measurement could give later seeds other steps.
    for entry in saved["configs"].values():
        del entry["eval.query_scoring"]
    (old / runner.STEP_TIMES_FILE).write_text(json.dumps(saved))
    runner.step_times(pair("simclr-time", seed=2), str(old), log=lambda *_: None)
    assert len(calls) == 2


def test_a_page_rebuilt_from_the_records_equals_the_page_written_after_the_runs(
    pipeline_run, tmp_path
):
    """No workdir is read: the runs' folder is moved away before the rebuild."""
    from csc_jax.config import load_config_file

    runs = pipeline_run["runs"]
    hidden = tmp_path / "runs-away"
    os.rename(runs, hidden)
    try:
        out = tmp_path / "docs" / pipeline_run["md"].name
        variants = experiments.select_variants(VARIANTS.split(","))
        text = experiments.report_from_records(
            load_config_file(pipeline_run["config"]), variants, (0, 1), 2, str(out),
            campaign_dir=str(pipeline_run["campaign"]), title="Tiny results",
            command=_page_command(pipeline_run["md"].read_text()), log=lambda *_: None,
        )  # fmt: skip
    finally:
        os.rename(hidden, runs)
    assert text == pipeline_run["md"].read_text()
    assert "## Notes" not in text
    assert store.check_sizes(str(pipeline_run["campaign"])) == []


def test_a_campaigns_notes_file_is_shown_on_its_page(pipeline_run, tmp_path):
    """results/<campaign>/NOTES.md (committed with the records) goes on the rebuilt page."""
    from csc_jax.config import load_config_file
    from csc_jax.experiments import report

    campaign = pipeline_run["campaign"]
    note = "Clean speech is not won: -3.1 [-6.2, 0.7] points.\n\nTried: a *wider* range."
    (campaign / report.NOTES_FILE).write_text(note + "\n")
    try:
        text = experiments.report_from_records(
            load_config_file(pipeline_run["config"]), experiments.select_variants(["csc"]),
            (0,), 2, str(tmp_path / "page.md"), campaign_dir=str(campaign), title="Notes",
            command="python scripts/run_results.py ...", log=lambda *_: None,
        )  # fmt: skip
    finally:
        (campaign / report.NOTES_FILE).unlink()
    notes = text.split("## Notes\n\n")[1].split("\n## ")[0]
    assert notes.strip() == f"From `{campaign.name}/NOTES.md` in the results store:\n\n{note}"
    assert text.index("## Summary") < text.index("## Notes") < text.index("## Speaker verification")


def test_compare_records_reproduces_the_pages_paired_difference(pipeline_run):
    """scripts/compare_records.py on two variants of one campaign gives the page's csc - simclr
    cells (the same two-level bootstrap on the same trials, from the records alone)."""
    campaign = str(pipeline_run["campaign"])
    cmd = [sys.executable, "scripts/compare_records.py", "--a", f"{campaign}:csc"]
    cmd += ["--b", f"{campaign}:simclr", "--seeds", "0,1"]
    proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = _table(pipeline_run["md"].read_text(), "| difference |")["csc - simclr"]
    got = _table(proc.stdout, "| system |")["tiny/csc - tiny/simclr"]
    numbers = re.compile(r"^(-?\d+\.\d\d) \[(-?\d+\.\d\d), (-?\d+\.\d\d)\]")
    assert [numbers.match(c).groups() for c in got] == [numbers.match(c).groups() for c in page]
    # A reference system of the records as side b: the page's csc - mfcc cells.
    ref = cmd[:5] + ["mfcc", "--seeds", "0,1"]
    proc = subprocess.run(ref, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = _table(pipeline_run["md"].read_text(), "| difference |")["csc - mfcc"]
    got = _table(proc.stdout, "| system |")["tiny/csc - mfcc"]
    assert [numbers.match(c).groups() for c in got] == [numbers.match(c).groups() for c in page]
    for a, b, error in (
        ("no-colon", "mfcc", "'no-colon': expected CAMPAIGN_FOLDER:VARIANT"),
        # The untrained model depends on the seed: one seed's scores are not "the" reference.
        (f"{campaign}:csc", "untrained", "'untrained': not a hand-crafted reference"),
    ):
        bad = subprocess.run(
            cmd[:2] + ["--a", a, "--b", b, "--seeds", "0,1"], cwd=REPO, env=subprocess_env(),
            capture_output=True, text=True,
        )  # fmt: skip
        assert bad.returncode == 2 and error in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def _page_command(md: str) -> str:
    """The page's reproduce command (the first line of its first bash block)."""
    return md.split("## Reproduce")[1].split("```bash\n")[1].splitlines()[0]


def test_a_killed_runner_leaves_no_record_and_the_rerun_completes_it(pipeline_run, tmp_path):
    """SIGKILL during a run's training: no record; the same command resumes and records it."""
    from csc_jax.training import checkpointing

    runs, page = tmp_path / "runs", tmp_path / "page.md"
    cmd = [sys.executable, "scripts/run_results.py", "--config", pipeline_run["config"]]
    # 8 steps: a checkpoint every 2 (tiny config), killed after the first; the evaluation
    # that precedes a record takes seconds, so the kill always lands before it.
    cmd += ["--steps", "8", "--seeds", "2", "--variants", "csc", "--workdir_root", str(runs)]
    cmd += ["--results_root", str(tmp_path / "store"), "--campaign", "kill", "--out", str(page)]
    env = subprocess_env(compile_cache=pipeline_run["root"] / "compile_cache", fast_compile=True)
    log = open(tmp_path / "killed.log", "w")
    victim = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not checkpointing.complete_steps(str(runs / "csc-s2")):
        assert victim.poll() is None, open(tmp_path / "killed.log").read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    record = tmp_path / "store" / "kill" / "csc-s2"
    assert victim.returncode == -signal.SIGKILL and not record.exists() and not page.exists()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "(resuming from step" in proc.stdout
    assert store.read_record(str(record)).status == "resumed" and page.is_file()
    assert not list(record.parent.glob(".*tmp*"))
