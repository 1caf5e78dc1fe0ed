"""The results store (csc_jax/experiments/store.py) on synthetic finished runs: no training.

* a record keeps the scores as ranks: EERs and paired two-level bootstrap intervals from the
  record equal those from the full-precision scores.npz (tolerance 1e-12: both depend on the
  order of the scores only), with ties and a trial subset;
* a record at the real protocol's size (11 880 trials, six conditions) fits the 300 KB budget,
  and so does every committed record under results/;
* a failing or killed write leaves no record; the next write removes the leftover;
* the runner skips recorded pairs, runs --only pairs, stops at the time budget and names what
  is left; a page of records from two machines is refused, or labelled when allowed.

The SIGKILL of a real runner and the page rebuilt from records are in tests/test_results.py
(they reuse its runs).
"""

import json
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest
from _train_worker import REPO

from csc_jax import experiments
from csc_jax.errors import ConfigError
from csc_jax.evaluation.report import load_scores as load_full_scores
from csc_jax.evaluation.report import save_scores
from csc_jax.experiments import runner, statistics, store

CONDS = ["clean", "SNR 5 dB", "SIR 0 dB"]


def _fake_run(workdir, *, n=600, conds=CONDS, seed=0, device="cpu", extract=200):
    """A finished run's files as train_eval writes them: eval/{results.json,scores.npz},
    run_info.json, metrics.jsonl, convergence.json. Scores are rounded to 2 decimals so that
    ties occur (ranks must keep them)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3 == 0).astype(np.int64)
    speakers = np.array([f"spk{i % 20:04d}" for i in range(n)])
    sub = np.sort(rng.choice(n, extract, replace=False))
    scored = {}
    for name, d in (("csc", 1.5), ("untrained", 0.3), ("mfcc", 0.8)):
        # mfcc is a reference: the same scores in every run, as in the protocol.
        r = np.random.default_rng(99) if name == "mfcc" else rng
        scored[name] = {
            c: {"scores": np.round(r.standard_normal(n) + d * labels, 2), "trials": np.arange(n)}
            for c in conds
        }
    scored["csc+extract"] = {
        c: {"scores": rng.standard_normal(extract) + labels[sub], "trials": sub} for c in conds
    }
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    save_scores(
        os.path.join(workdir, "eval", "scores.npz"),
        scored,
        SimpleNamespace(labels=labels, enroll_speaker=speakers),
    )
    results = {
        name: {c: {"eer": 10.0, "eer_ci": [9.0, 11.0], "trials": n} for c in conds}
        for name in scored
    }
    with open(os.path.join(workdir, "eval", "results.json"), "w") as f:
        json.dump({"meta": {}, "results": results, "paired": {}}, f)
    with open(os.path.join(workdir, "run_info.json"), "w") as f:
        json.dump({"cpu": "Test CPU", "cores": 2, "backend": device, "device_kind": device}, f)
    rows = [
        {"step": s, "loss": 1.0 / (s + 1), "grad_norm": 3.0, "train_seconds": s}
        for s in range(0, 40, 4)
    ]
    rows += [
        {"step": s, "val/eer_clean": 30.0 - s / 10, "val/eer_sir0": 35.0} for s in range(0, 40, 8)
    ]
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    with open(os.path.join(workdir, "convergence.json"), "w") as f:
        json.dump({"val/eer_clean": {"flat": False}}, f)
    return workdir


def _record(campaign, workdir, variant="csc", seed=0, config=None):
    config = config or {"method": "csc", "seed": seed, "train": {"steps": 40}}
    return store.write_record(
        os.path.join(campaign, store.record_name(variant, seed)), workdir, variant=variant,
        seed=seed, config=config, status="ran", command=f"python train.py --seed {seed}",
        train_seconds=12.0, eval_seconds=3.0,
    )  # fmt: skip


def test_ranks_reproduce_eers_and_paired_intervals_of_the_full_scores(tmp_path):
    runs = [_fake_run(str(tmp_path / f"run{s}"), seed=s) for s in (0, 1)]
    recs = [_record(str(tmp_path / "c"), w, seed=s) for s, w in enumerate(runs)]
    full = [load_full_scores(os.path.join(w, "eval", "scores.npz")) for w in runs]
    kept = [store.load_scores(r) for r in recs]
    labels, clusters, _ = full[0]
    assert np.array_equal(kept[0][0], labels) and np.array_equal(kept[0][1], clusters)
    # The untrained model and mfcc live once in shared_scores/, not in the records.
    shared = sorted(os.listdir(tmp_path / "c" / store.SHARED_DIR))
    assert [f.split("-")[0] for f in shared] == ["mfcc", "untrained", "untrained"], shared
    for cond, extract in (("SIR 0 dB", False), ("clean", True)):
        names = ["csc+extract"] if extract else ["csc", "untrained", "mfcc"]

        def systems(loaded, names=names, cond=cond):
            return [
                statistics.SeedScores(n, [b[n][cond][0] for _, _, b in loaded], [0, 1])
                for n in names
            ]

        trials = full[0][2][names[0]][cond][1]
        assert np.array_equal(kept[0][2][names[0]][cond][1], trials)
        args = (labels[trials], clusters[trials])
        m_full, d_full = statistics.compare(systems(full), *args, replicates=200)
        m_kept, d_kept = statistics.compare(systems(kept), *args, replicates=200)
        for n in names:
            assert m_kept[n].value == pytest.approx(m_full[n].value, abs=1e-12)
            assert np.allclose(m_kept[n].ci, m_full[n].ci, atol=1e-12, rtol=0)
        for k in d_full:
            assert np.allclose(d_kept[k].ci, d_full[k].ci, atol=1e-12, rtol=0)
        assert d_full or extract


def test_a_record_of_the_real_protocol_size_fits_the_budget(tmp_path):
    """11 880 trials and six conditions, as docs/frontends.md's runs: under 300 KB."""
    conds = ["clean", "SNR 10 dB", "SNR 5 dB", "SNR 0 dB", "SIR 5 dB", "SIR 0 dB"]
    workdir = _fake_run(str(tmp_path / "run"), n=11880, conds=conds, extract=1000)
    rec = _record(str(tmp_path / "c"), workdir)
    size = store.folder_bytes(rec)
    assert 50_000 < size <= store.MAX_RECORD_BYTES, size
    assert store.check_sizes(str(tmp_path)) == []
    # metrics.jsonl keeps the curve keys only.
    rows = [json.loads(line) for line in open(os.path.join(rec, "metrics.jsonl"))]
    assert all("grad_norm" not in r for r in rows) and any("val/eer_sir0" in r for r in rows)
    meta = json.load(open(os.path.join(rec, store.RECORD_FILE)))
    assert len(meta["commit"]) == 40 and meta["dirty"] in (True, False)


def test_every_committed_record_fits_the_budget():
    root = os.path.join(REPO, "results")
    assert store.check_sizes(root) == []
    for dirpath, _, files in os.walk(root):
        if store.RECORD_FILE in files:  # a store record: its scores load
            labels, _, by_system = store.load_scores(dirpath)
            assert labels.size and by_system, dirpath


def test_a_failed_or_killed_write_leaves_no_record(tmp_path, monkeypatch):
    workdir = _fake_run(str(tmp_path / "run"))
    campaign = tmp_path / "c"

    def boom(*_):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(store, "_npz_bytes", boom)
        with pytest.raises(OSError, match="disk full"):
            _record(str(campaign), workdir)
    assert not (campaign / "csc-s0").exists() and not list(campaign.glob(".csc-s0.tmp-*"))
    # A SIGKILL skips the clean-up: the temp folder stays, is no record, and goes next time.
    (campaign / ".csc-s0.tmp-999").mkdir()
    (campaign / ".csc-s0.tmp-999" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no record for csc-s0"):
        store.require_records(str(campaign), [("csc", 0)])
    _record(str(campaign), workdir)
    assert not list(campaign.glob(".csc-s0.tmp-*"))
    assert store.read_record(str(campaign / "csc-s0")).status == "ran"


def test_runner_skips_records_runs_only_pairs_and_stops_at_the_time_budget(
    tiny_config, tmp_path, monkeypatch
):
    ran, lines = [], []
    workdir = _fake_run(str(tmp_path / "run"))

    def fake_run_and_record(config, workdir_, record_dir, name, cmd, log, commit):
        # The commit of the code the runner loaded, taken before its first run.
        assert commit == store.git_commit(), commit
        ran.append((name, int(config.seed)))
        time.sleep(0.2)
        cfg = json.loads(json.dumps(config.to_dict()))
        return store.write_record(
            record_dir, workdir, variant=name, seed=int(config.seed), config=cfg,
            status="ran", command=cmd, train_seconds=1.0, eval_seconds=1.0,
        )  # fmt: skip

    monkeypatch.setattr(runner, "run_and_record", fake_run_and_record)
    variants = experiments.select_variants(["csc", "simclr"])
    campaign = str(tmp_path / "c")

    def run(**kw):
        return experiments.run_results(
            tiny_config, variants, (0, 1), 4, str(tmp_path / "runs"), campaign_dir=campaign,
            config_label="x", log=lines.append, **kw,
        )  # fmt: skip

    only = runner.parse_only("simclr/1,csc/0", variants, (0, 1))
    records, left = run(only=only)
    assert ran == [("csc", 0), ("simclr", 1)] and not left and len(records) == 2
    # 0.2 s per run, a 0.12 s budget: one run starts, the last is left and named.
    records, left = run(time_budget_minutes=0.002)
    assert ran[2:] == [("simclr", 0)] and left == [("csc", 1)], ran
    assert any("not started csc/1" in line for line in lines)
    assert len(records) == 3
    records, left = run()
    assert ran[3:] == [("csc", 1)] and len(records) == 4 and not left
    for bad in ("csc/7", "nope/0", "csc"):
        with pytest.raises(ConfigError, match="--only"):
            runner.parse_only(bad, variants, (0, 1))


def _run_config_json(base, variant, seed, steps) -> dict:
    return json.loads(json.dumps(experiments.run_config(base, variant, seed, steps).to_dict()))


def test_a_page_of_records_from_two_machines_is_refused_or_labelled(tmp_path, tiny_config):
    campaign = str(tmp_path / "c")
    variants = experiments.select_variants(["csc"])
    for seed, device in ((0, "cpu"), (1, "NVIDIA H100 80GB HBM3")):
        workdir = _fake_run(str(tmp_path / f"run{seed}"), seed=seed, device=device)
        cfg = _run_config_json(tiny_config, variants[0], seed, 40)
        _record(campaign, workdir, seed=seed, config=cfg)
    kw = dict(campaign_dir=campaign, title="T", command="c", log=lambda *_: None)
    out = str(tmp_path / "page.md")
    with pytest.raises(ConfigError, match="different machines .*csc-s1: NVIDIA H100"):
        experiments.report_from_records(tiny_config, variants, (0, 1), 40, out, **kw)
    text = experiments.report_from_records(
        tiny_config, variants, (0, 1), 40, out, allow_mixed_machines=True, **kw
    )
    assert "**Mixed machines:**" in text and "| NVIDIA H100 80GB HBM3 |" in text
    # The page names its command, so a record of other steps (or any other key) is refused.
    with pytest.raises(ConfigError, match="csc-s0/config.json: train.steps is 40 in the record"):
        experiments.report_from_records(
            tiny_config, variants, (0, 1), 50, out, allow_mixed_machines=True, **kw
        )


def test_a_record_folder_without_its_record_file_stops_the_runner_before_training(
    tiny_config, tmp_path, monkeypatch
):
    """A folder a copy left half-done (or a legacy record) is not overwritten after training."""
    monkeypatch.setattr(runner, "run_and_record", lambda *a: pytest.fail("trained"))
    (tmp_path / "c" / "csc-s0").mkdir(parents=True)
    with pytest.raises(ConfigError, match="csc-s0 exists but holds no record.json"):
        experiments.run_results(
            tiny_config, experiments.select_variants(["csc"]), (0,), 4, str(tmp_path / "runs"),
            campaign_dir=str(tmp_path / "c"), config_label="x", log=lambda *_: None,
        )  # fmt: skip


def test_recorded_commands_parse_back_to_the_config(tiny_config):
    """Tuple keys of every length, the empty one included, survive the record's command."""
    from csc_jax import config as config_lib

    config = tiny_config.copy_and_resolve_references()
    for values in ((), (0.9,), (0.9, 1.1)):
        config.data.augment.speed_factors = values
        args = [a.strip("'") for a in runner.override_args(config, tiny_config)]
        flags = config_lib.split_config_flags(["train.py", *args])
        back = config_lib.apply_overrides(tiny_config, flags.overrides)
        assert tuple(back.data.augment.speed_factors) == values, args


def test_transfer_ablations_run_only_when_named():
    default = {v.name for v in experiments.select_variants(None)}
    assert "csc" in default and "simclr" in default and "csc-plain" not in default
    assert [v.name for v in experiments.select_variants(["csc-plain"])] == ["csc-plain"]
