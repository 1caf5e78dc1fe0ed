"""The results pipeline (csc_jax/experiments.py, scripts/run_results.py) on the tiny config.

One end-to-end run of the CLI (2 steps, seeds 0,1 for csc/simclr, seed 0 for the ablations,
a 20-trial evaluation) checks the report's rows, columns, numbers and figures; rerunning
in-process with ``train`` and ``evaluate_workdir`` replaced by functions that raise proves
finished runs are skipped, and a changed config proves they are not skipped blindly.
Aggregation and the written verdicts are checked on hand-made numbers.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from _train_worker import REPO, subprocess_env

from csc_jax import experiments

pytestmark = pytest.mark.slow

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CONDITIONS = ["clean", "SNR 10 dB", "SNR 5 dB", "SNR 0 dB", "SIR 5 dB", "SIR 0 dB"]
ALL_ROWS = [
    "csc",
    "csc+extract",
    "simclr",
    "csc-no-xattn",
    "csc-no-xattn+extract",
    "csc-no-sep",
    "csc-no-csc",
    "csc-no-csc+extract",
    "csc-K1",
    "csc-K1+extract",
    "csc-sep0.1",
    "csc-sep0.1+extract",
    "untrained",
    "log-mel",
]


def _write_tiny_config(path, cache_dir) -> str:
    path.write_text(
        "import sys\n"
        f"sys.path.insert(0, {TESTS_DIR!r})\n"
        "from conftest import make_tiny_config\n\n\n"
        "def get_config():\n"
        f"    return make_tiny_config({str(cache_dir)!r}, **{{'train.steps': 2, "
        "'eval.max_trials': 20, 'eval.seconds': 0.5})\n"
    )
    return str(path)


def _table_rows(md: str) -> dict[str, list[str]]:
    """First Markdown table after '## Speaker verification': label -> cells (incl. seeds)."""
    section = md.split("## Speaker verification", 1)[1]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| system") and "---" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory, shared_cache):
    root = tmp_path_factory.mktemp("results")
    config_path = _write_tiny_config(root / "tiny.py", shared_cache)
    out_md = root / "docs" / "results.md"
    runs = root / "runs"
    cmd = [sys.executable, "scripts/run_results.py", "--config", config_path]
    cmd += ["--steps", "2", "--seeds", "0,1", "--seeds_all", "0"]
    cmd += ["--workdir_root", str(runs), "--out", str(out_md)]
    env = subprocess_env(compile_cache=root / "compile_cache", fast_compile=True)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"root": root, "config": config_path, "md": out_md, "runs": runs, "log": proc.stdout}


def test_report_has_every_variant_condition_and_figure(pipeline_run):
    md = pipeline_run["md"].read_text()
    runs = pipeline_run["runs"]
    rows = _table_rows(md)
    assert list(rows) == ALL_ROWS, list(rows)
    header = next(line for line in md.splitlines() if line.startswith("| system | seeds |"))
    for cond in CONDITIONS:
        assert f"| {cond} " in header, cond
    assert rows["csc"][0] == "2" and rows["simclr"][0] == "2" and rows["csc-K1"][0] == "1"
    # The no-separation ablation has no extraction row (its extraction head is untrained).
    assert "csc-no-sep+extract" not in rows
    # Numbers come from the runs: csc's clean cell is the mean ± std of its two results.json.
    eers = []
    for seed in (0, 1):
        with open(runs / f"csc-s{seed}" / "eval" / "results.json") as f:
            eers.append(json.load(f)["results"]["csc"]["clean"]["eer"])
    mean = sum(eers) / 2
    std = abs(eers[0] - eers[1]) / 2**0.5  # sample std of two values
    assert rows["csc"][1].startswith(f"{mean:.2f} ± {std:.2f} ("), rows["csc"][1]
    with open(runs / "csc-s0" / "eval" / "results.json") as f:
        untrained = json.load(f)["results"]["untrained"]["SIR 0 dB"]["eer"]
    assert rows["untrained"][CONDITIONS.index("SIR 0 dB") + 1].startswith(f"{untrained:.2f} (")
    # SI-SNRi of separating variants, the CSC-vs-SimCLR verdict, commands, timings.
    assert "SI-SNRi" in md
    assert re.search(r"CSC (beats|does not beat) SimCLR beyond the seed spread|SimCLR beats", md)
    assert "make results" in md
    for name in ("csc-s0", "csc-s1", "simclr-s1", "csc-K1-s0"):
        assert f"--workdir {runs / name}" in md, name
    assert "--config.mixing.num_conditions=1" in md and "--config.method=simclr" in md
    assert "| **total** |" in md and "jax " in md
    fig_dir = pipeline_run["md"].parent / "results"
    pngs = ["det_SIR0dB.png"] + [f"curves_{v}.png" for v in experiments.variant_names()]
    for name in pngs:
        path = fig_dir / name
        assert path.is_file(), name
        assert 1000 < path.stat().st_size < 200_000, (name, path.stat().st_size)
        assert f"results/{name}" in md, name
    assert (runs / "csc-s1" / experiments.RESULTS_MARKER).is_file()
    assert not (runs / "csc-no-sep-s1").exists()  # ablations ran with seed 0 only


def test_rerun_skips_finished_runs_and_a_changed_config_runs_again(pipeline_run, monkeypatch):
    from csc_jax.evaluation import verification
    from csc_jax.training import loop

    def no_training(*args, **kwargs):
        raise RuntimeError("train called for a finished run")

    monkeypatch.setattr(loop, "train", no_training)
    monkeypatch.setattr(verification, "evaluate_workdir", no_training)
    md = pipeline_run["md"]
    before = _table_rows(md.read_text())
    md.unlink()
    base = experiments.load_config_file(pipeline_run["config"])
    records = experiments.run_results(
        base,
        experiments.VARIANTS,
        (0, 1),
        2,
        str(pipeline_run["runs"]),
        str(md),
        ablation_seeds=(0,),
        log=lambda *a: None,
    )
    assert len(records) == 9 and {r.status for r in records} == {"skipped"}
    assert _table_rows(md.read_text()) == before
    # A second report next to the first keeps its figures in its own folder.
    other = md.parent / "results_other.md"
    stamp = (md.parent / "results" / "det_SIR0dB.png").stat().st_mtime_ns
    experiments.run_results(
        base,
        experiments.select_variants(["csc", "simclr"]),
        (0,),
        2,
        str(pipeline_run["runs"]),
        str(other),
        log=lambda *a: None,
    )
    assert (md.parent / "results_other" / "det_SIR0dB.png").is_file()
    assert "results_other/det_SIR0dB.png" in other.read_text()
    assert (md.parent / "results" / "det_SIR0dB.png").stat().st_mtime_ns == stamp
    # Another training budget is another run: it must not be taken for the finished one.
    with pytest.raises(RuntimeError, match="train called"):
        experiments.run_results(
            base,
            experiments.select_variants(["csc"]),
            (0,),
            3,
            str(pipeline_run["runs"]),
            str(md),
            log=lambda *a: None,
        )


def _row(label, eers_by_seed, system=None):
    per_seed = {
        s: {c: {"eer": e + i, "min_dcf": 0.5} for i, c in enumerate(CONDITIONS)}
        for s, e in enumerate(eers_by_seed)
    }
    return experiments.Row(label, label, system or label, per_seed)


def test_compare_and_summary_follow_the_numbers():
    csc, simclr = _row("csc", [10.0, 11.0, 12.0]), _row("simclr", [20.0, 21.0, 22.0])
    k = experiments.compare(csc, simclr, "SIR 0 dB")
    assert k["verdict"] == "better" and k["diff"] == pytest.approx(10.0)
    assert k["spread"] == pytest.approx(2.0) and not k["overlap"]
    text = experiments.summary(CONDITIONS, [csc, simclr], [], 2)
    assert "CSC beats SimCLR beyond the seed spread at SIR 0 dB" in text
    assert "lowest EER is **csc**" in text

    close = _row("simclr", [10.5, 11.5, 12.5])
    assert experiments.compare(csc, close, "SIR 0 dB")["verdict"] == "within spread"
    text = experiments.summary(CONDITIONS, [csc, close], [], 2)
    assert "CSC does not beat SimCLR beyond the seed spread at SIR 0 dB" in text

    worse = _row("simclr", [1.0, 1.1, 1.2])
    assert experiments.compare(csc, worse, "clean")["verdict"] == "worse"
    assert "SimCLR beats CSC" in experiments.summary(CONDITIONS, [csc, worse], [], 2)

    single = _row("simclr", [20.0])
    assert experiments.compare(csc, single, "clean")["verdict"] == "undetermined"
    assert "cannot be judged" in experiments.summary(CONDITIONS, [csc, single], [], 2)


def test_registry_seeds_and_config_errors(tiny_config):
    assert experiments.variant_names() == [
        "csc",
        "simclr",
        "csc-no-xattn",
        "csc-no-sep",
        "csc-no-csc",
        "csc-K1",
        "csc-sep0.1",
    ]
    pairs = experiments.plan(experiments.VARIANTS, (0, 1, 2), (0,))
    assert len(pairs) == 7 + 2 * 2
    assert [v.name for v, s in pairs if s == 2] == ["csc", "simclr"]
    assert experiments.parse_seeds("0, 1,2") == (0, 1, 2)
    for bad in ("", "a", "1,1"):
        with pytest.raises(ValueError):
            experiments.parse_seeds(bad)
    with pytest.raises(ValueError, match="unknown variant"):
        experiments.select_variants(["csc", "nope"])
    k1 = experiments.select_variants(["csc-K1"])[0]
    c = experiments.run_config(tiny_config, k1, seed=5, steps=7)
    assert (c.mixing.num_conditions, c.seed, c.train.steps) == (1, 5, 7)
    assert tiny_config.mixing.num_conditions == 2  # the base config is not modified
    args = experiments.override_args(c, tiny_config)
    assert "--config.mixing.num_conditions=1" in args and "--config.seed=5" in args
    bad = experiments.Variant("bad", {"model.no_such_key": 1}, "")
    with pytest.raises(experiments.config_lib.ConfigError, match="no_such_key"):
        experiments.run_config(tiny_config, bad, 0)


def test_a_finished_run_stays_finished_when_the_schema_gains_a_key(tmp_path):
    """A run whose marker predates a config key (here model.identity_init) used that key's
    default: it must still count as finished, and not with a non-default value."""
    import json

    from csc_jax.config import base_config

    workdir = tmp_path / "run"
    (workdir / "eval").mkdir(parents=True)
    (workdir / "eval" / "results.json").write_text(json.dumps({"results": {}}))
    saved = base_config().to_dict()
    del saved["model"]["identity_init"]
    marker = {"config": saved, "train_seconds": 1.0, "eval_seconds": 1.0}
    (workdir / experiments.RESULTS_MARKER).write_text(json.dumps(marker))
    assert experiments.finished_run(str(workdir), base_config()) is not None
    other = base_config()
    other.model.identity_init = True
    assert experiments.finished_run(str(workdir), other) is None
