"""The results store: one compact, committed record per finished (variant, seed) run.

A record is the folder ``<results_root>/<campaign>/<variant>-s<seed>/`` holding

* ``config.json``: the run's resolved config; ``record.json``: variant, seed, status ('ran'
  or 'resumed'), the run's ``train.py`` command, train and eval wall seconds, the code commit
  (``git rev-parse HEAD`` plus a dirty flag) and when it finished; ``run_info.json``: the
  machine (csc_jax/io_utils.py machine_info, as the run wrote it);
* ``metrics.jsonl``: the rows of the curves and the plateau test (``CURVE_KEYS`` only);
  ``convergence.json``: the plateau verdicts; ``eval_results.json``: the EER table with its
  intervals (the run's ``eval/results.json``);
* ``scores.npz``: the per-trial scores of the run's own systems (e.g. 'csc', 'csc+extract').

Scores are kept as **dense ranks** (``np.unique(..., return_inverse=True)``, uint16 while a
condition has < 65536 distinct scores): every statistic of the pages (EER, minDCF, DET
points, the paired cluster bootstrap; csc_jax/metrics.py) depends on the scores only through
their order and ties, which ranks keep exactly, so intervals recomputed from a record equal
those from the full-precision ``eval/scores.npz`` (tests/test_results_store.py). Score values
themselves (calibration) are not kept. Trial labels, enrollment speakers and trial subsets are
stored once per record.

The systems that do not depend on the run's training (``SHARED_SYSTEMS``: the untrained
model, log-mel, MFCC) are the same in many runs of a campaign; they go to
``<campaign>/shared_scores/<system>-<sha>.npz``, content-addressed (the hash covers the trial
list), so every run refers to one copy and a record stays under ``MAX_RECORD_BYTES``.

Writing is atomic: the record is assembled in a hidden temp folder next to it and renamed, so
a killed writer leaves no record (a leftover temp folder is removed by the next write).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence

import numpy as np

from csc_jax.errors import ConfigError, DataError
from csc_jax.io_utils import atomic_write, atomic_write_json

MAX_RECORD_BYTES = 300_000  # one record folder, and one shared score file
RECORD_FILE = "record.json"
SCORES_FILE = "scores.npz"
SHARED_DIR = "shared_scores"
STEP_TIMES_FILE = "step_times.json"
# metrics.jsonl keys a record keeps: the page's curves, time to accuracy, the plateau test.
CURVE_KEYS = ("step", "train_seconds", "loss", "sep_loss", "csc_loss", "nt_xent", "si_snri")
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def is_reference(name: str) -> bool:
    """The hand-crafted references (log-mel, MFCC statistics at any rate): no training and
    no seed, so every run of a campaign scores them identically."""
    return name == "log-mel" or name.startswith("mfcc")


def is_shared_system(name: str) -> bool:
    """Systems scored identically by many runs: stored once per campaign, not per record (the
    untrained model is shared by the runs of one seed)."""
    return name == "untrained" or is_reference(name)


@dataclasses.dataclass
class RunRecord:
    """One finished (variant, seed) run, as its record holds it."""

    variant: str
    seed: int
    record_dir: str
    config: dict
    results: dict  # eval_results.json's 'results': {system: {condition: {eer, eer_ci, ...}}}
    train_seconds: float
    eval_seconds: float
    status: str  # 'ran' (from scratch) or 'resumed' (from a checkpoint)
    command: str = ""
    commit: str = ""  # the code's commit, '+dirty' when tracked files differed from it

    @property
    def total_seconds(self) -> float:
        return self.train_seconds + self.eval_seconds

    @property
    def system(self) -> str:
        """The trained system's row name in the results ('csc' or 'simclr')."""
        return self.config["method"]


def record_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def git_commit(repo: str = _REPO) -> dict:
    """{'commit': HEAD's sha or 'unknown', 'dirty': tracked files differ from HEAD (or None)}."""

    def git(*args) -> str:
        out = subprocess.run(
            ["git", "-C", repo, *args], capture_output=True, text=True, timeout=30, check=True
        )
        return out.stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}


# --- scores -------------------------------------------------------------------------------


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Dense ranks of (n,) scores: same order and ties; uint16 when they fit, else uint32."""
    _, inv = np.unique(np.asarray(scores, np.float64), return_inverse=True)
    return inv.astype(np.uint16 if inv.size == 0 or inv.max() < 2**16 else np.uint32)


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _trial_list_sha(labels: np.ndarray, clusters: np.ndarray) -> str:
    h = hashlib.sha256(np.asarray(labels, np.int8).tobytes())
    h.update("\n".join(map(str, clusters)).encode())
    return h.hexdigest()[:16]


def _trial_set(trials: np.ndarray, arrays: dict, n: int) -> int:
    """Index of ``trials`` among the 'trial_set|<j>' arrays (added when new); -1 = all n."""
    trials = np.asarray(trials, np.int64)
    if np.array_equal(trials, np.arange(n)):
        return -1
    j = 0
    while f"trial_set|{j}" in arrays:
        if np.array_equal(arrays[f"trial_set|{j}"], trials):
            return j
        j += 1
    arrays[f"trial_set|{j}"] = trials.astype(np.int32)
    return j


def encode_scores(
    labels: np.ndarray, clusters: np.ndarray, by_system: dict
) -> tuple[dict, dict[str, dict]]:
    """Compact arrays of one run's scores.

    Args:
      labels: (n,) 0/1 target labels; clusters: (n,) enrollment speakers (str).
      by_system: {system: {condition: (scores (m,) float, trials (m,) int indices into n)}}
        (csc_jax/evaluation/report.py load_scores).

    Returns:
      (record arrays for ``scores.npz``, {system: arrays of its shared file}). Keys:
      'labels' (n,) uint8, 'speakers' (k,) str, 'speaker_of' (n,) uint16/uint32 codes,
      'trial_set|<j>' (m,) int32, '<system>|<condition>|ranks' uint16/uint32,
      '<system>|<condition>|trial_set' () int ('-1' = every trial), 'sha' () str (trial list).
    """
    labels = np.asarray(labels)
    speakers, speaker_of = np.unique(np.asarray(clusters).astype(str), return_inverse=True)
    sha = _trial_list_sha(labels, clusters)
    record = {
        "labels": labels.astype(np.uint8),
        "speakers": speakers,
        "speaker_of": speaker_of.astype(np.uint16 if speakers.size < 2**16 else np.uint32),
        "sha": np.str_(sha),
    }
    shared: dict[str, dict] = {}
    for name, by_cond in by_system.items():
        # A shared file holds its own trial subsets (it is read with other records).
        arrays = {"sha": np.str_(sha)} if is_shared_system(name) else record
        for cond, (scores, trials) in by_cond.items():
            arrays[f"{name}|{cond}|ranks"] = _ranks(scores)
            arrays[f"{name}|{cond}|trial_set"] = np.int64(_trial_set(trials, arrays, labels.size))
        if arrays is not record:
            shared[name] = arrays
    return record, shared


def _decode(z, into: dict, n: int, where: str) -> None:
    """{system: {cond: (ranks as float64, trials)}} from the '|ranks' keys of one npz."""
    for key in z.files:
        if not key.endswith("|ranks"):
            continue
        name, cond, _ = key.split("|")
        j = int(z[f"{name}|{cond}|trial_set"])
        trials = np.arange(n) if j < 0 else z[f"trial_set|{j}"].astype(np.int64)
        ranks = z[key].astype(np.float64)
        if ranks.shape != trials.shape:
            raise DataError(f"{where}: {key} has {ranks.size} scores for {trials.size} trials")
        into.setdefault(name, {})[cond] = (ranks, trials)


def load_scores(record_dir: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(labels (n,) int64, enrollment speakers (n,) str, {system: {condition: (scores (m,)
    float64, trials (m,) int64)}}) of a record, its shared systems included.

    The scores are the dense ranks (see the module docstring): order and ties as the run's.
    """
    path = os.path.join(record_dir, SCORES_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (a legacy record without per-trial scores?)")
    with np.load(path, allow_pickle=False) as z:
        labels = z["labels"].astype(np.int64)
        clusters = z["speakers"][z["speaker_of"]]
        sha = str(z["sha"])
        out: dict = {}
        _decode(z, out, labels.size, path)
        links = {k.split("|", 1)[1]: str(z[k]) for k in z.files if k.startswith("shared|")}
    for name, file in links.items():
        shared_path = os.path.join(os.path.dirname(os.path.abspath(record_dir)), SHARED_DIR, file)
        if not os.path.isfile(shared_path):
            raise DataError(f"{path}: its {name} scores {shared_path} are missing")
        with np.load(shared_path, allow_pickle=False) as z:
            if str(z["sha"]) != sha:
                raise DataError(f"{shared_path}: scored on another trial list than {path}")
            _decode(z, out, labels.size, shared_path)
    return labels, clusters, out


def load_run_scores(records: Sequence[RunRecord]) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The scores of several runs that must share one trial list.

    Returns:
      (labels, clusters, per_run): the trial labels (bool [N]) and clusters (int [N] or None)
      the runs share, and per run ``{system: {cond: (scores float [n], trials int [n])}}``.

    Raises:
      ValueError: a run was scored on other trials than the first (another evaluation config).
    """
    labels = clusters = None
    per_run = []
    for r in records:
        lab, clu, by_sys = load_scores(r.record_dir)
        if labels is None:
            labels, clusters = lab, clu
        elif not (np.array_equal(lab, labels) and np.array_equal(clu, clusters)):
            raise ValueError(
                f"{r.record_dir} was scored on other trials than {records[0].record_dir}: "
                "every run of a comparison must share the evaluation config"
            )
        per_run.append(by_sys)
    return labels, clusters, per_run


def _write_shared(campaign_dir: str, shared: dict[str, dict]) -> dict[str, str]:
    """Write each shared system's file once (content-addressed); returns {system: file}."""
    folder = os.path.join(campaign_dir, SHARED_DIR)
    os.makedirs(folder, exist_ok=True)
    links = {}
    for name, arrays in shared.items():
        # The hash covers the arrays, not the npz bytes (zip headers carry timestamps).
        h = hashlib.sha256()
        for key in sorted(arrays):
            h.update(key.encode())
            h.update(np.ascontiguousarray(arrays[key]).tobytes())
        file = f"{name.replace('/', '_')}-{h.hexdigest()[:16]}.npz"
        if not os.path.isfile(os.path.join(folder, file)):
            atomic_write(os.path.join(folder, file), _npz_bytes(arrays))
        links[name] = file
    return links


# --- records ------------------------------------------------------------------------------


def _curve_rows(workdir: str) -> list[dict]:
    from csc_jax.training.metric_log import read_metrics

    rows = []
    for row in read_metrics(workdir):
        kept = {k: v for k, v in row.items() if k in CURVE_KEYS or k.startswith("val/")}
        if len(kept) > 1:  # more than the step
            rows.append(kept)
    return rows


def write_record(
    record_dir: str,
    workdir: str,
    *,
    variant: str,
    seed: int,
    config: dict,
    status: str,
    command: str,
    train_seconds: float,
    eval_seconds: float,
    resumed_from_step: int | None = None,
    commit: dict | None = None,
) -> str:
    """Write the record of the finished run in ``workdir`` to ``record_dir`` atomically.

    ``commit``: {'commit', 'dirty', ...} of the code that ran (default: :func:`git_commit`
    now, right after the run; a record made later from an old workdir names its own).

    ``record_dir``'s parent is the campaign folder (its ``shared_scores/`` receives the shared
    systems). Raises DataError when the run lacks a file a record needs, or the record would
    exceed ``MAX_RECORD_BYTES``; the record is then not written.
    """
    from csc_jax.evaluation.report import load_scores as load_full_scores

    record_dir = os.path.abspath(record_dir)
    campaign_dir, name = os.path.split(record_dir)
    os.makedirs(campaign_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(campaign_dir, f".{name}.tmp-*")):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed writer
    needed = {
        "eval_results.json": os.path.join(workdir, "eval", "results.json"),
        SCORES_FILE: os.path.join(workdir, "eval", "scores.npz"),
        "run_info.json": os.path.join(workdir, "run_info.json"),
    }
    for src in needed.values():
        if not os.path.isfile(src):
            raise DataError(f"{src}: missing, so {record_dir} cannot be written")
    labels, clusters, by_system = load_full_scores(needed[SCORES_FILE])
    arrays, shared = encode_scores(labels, clusters, by_system)
    links = _write_shared(campaign_dir, shared)
    arrays.update({f"shared|{k}": np.str_(v) for k, v in links.items()})
    tmp = os.path.join(campaign_dir, f".{name}.tmp-{os.getpid()}")
    os.makedirs(tmp)
    try:
        atomic_write_json(os.path.join(tmp, "config.json"), config)
        atomic_write_json(
            os.path.join(tmp, RECORD_FILE),
            {
                "variant": variant,
                "seed": int(seed),
                "status": status,
                "command": command,
                "train_seconds": float(train_seconds),
                "eval_seconds": float(eval_seconds),
                "resumed_from_step": resumed_from_step,
                **(commit or git_commit()),
                "recorded": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
        shutil.copyfile(needed["run_info.json"], os.path.join(tmp, "run_info.json"))
        with open(needed["eval_results.json"]) as f:
            atomic_write_json(os.path.join(tmp, "eval_results.json"), json.load(f), indent=None)
        rows = _curve_rows(workdir)
        text = "".join(json.dumps(r) + "\n" for r in rows)
        atomic_write(os.path.join(tmp, "metrics.jsonl"), text)
        convergence = os.path.join(workdir, "convergence.json")
        if os.path.isfile(convergence):
            shutil.copyfile(convergence, os.path.join(tmp, "convergence.json"))
        atomic_write(os.path.join(tmp, SCORES_FILE), _npz_bytes(arrays))
        size = folder_bytes(tmp)
        if size > MAX_RECORD_BYTES:
            raise DataError(
                f"{record_dir}: the record would be {size} bytes, over the {MAX_RECORD_BYTES} "
                "byte budget (results/README.md)"
            )
        os.rename(tmp, record_dir)  # atomic: the record appears whole or not at all
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(OSError):
        fd = os.open(campaign_dir, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return record_dir


def folder_bytes(folder: str) -> int:
    """Total bytes of the files directly in ``folder``."""
    return sum(
        os.path.getsize(os.path.join(folder, f))
        for f in os.listdir(folder)
        if os.path.isfile(os.path.join(folder, f))
    )


def read_record(record_dir: str) -> RunRecord:
    """The RunRecord of a record folder; DataError naming the file when one is missing."""

    def load(file: str):
        path = os.path.join(record_dir, file)
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise DataError(f"{path}: missing (not a record, or a legacy one)") from None
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None

    meta = load(RECORD_FILE)
    return RunRecord(
        variant=meta["variant"],
        seed=int(meta["seed"]),
        record_dir=record_dir,
        config=load("config.json"),
        results=load("eval_results.json")["results"],
        train_seconds=float(meta["train_seconds"]),
        eval_seconds=float(meta["eval_seconds"]),
        status=meta["status"],
        command=meta.get("command", ""),
        commit=meta.get("commit", "") + ("+dirty" if meta.get("dirty") else ""),
    )


def config_difference(record_dir: str, flat_config: dict, ignore: Sequence[str] = ()) -> str:
    """'' if the record's config equals ``flat_config`` (flattened, JSON-normalised) on every
    key but ``ignore``, else one line naming the record and the first differing key."""
    from csc_jax import config as config_lib

    path = os.path.join(record_dir, "config.json")
    try:
        with open(path) as f:
            saved = config_lib.flat_with_defaults(json.load(f))
    except (OSError, ValueError) as e:
        return f"{path}: unreadable ({e})"
    saved = config_lib.flatten(json.loads(json.dumps(config_lib.flatten(saved))))
    for key in sorted(set(saved) | set(flat_config)):
        if key in ignore:
            continue
        if saved.get(key, "<absent>") != flat_config.get(key, "<absent>"):
            return (
                f"{path}: {key} is {saved.get(key, '<absent>')!r} in the record but "
                f"{flat_config.get(key, '<absent>')!r} in this campaign's config; use another "
                "--campaign, or delete the record to run it again"
            )
    return ""


def check_sizes(root: str) -> list[str]:
    """One line per record folder or shared score file under ``root`` over the budget."""
    over = []
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath).startswith("."):
            continue
        if RECORD_FILE in files or "config.json" in files:  # a record (legacy ones too)
            size = folder_bytes(dirpath)
            if size > MAX_RECORD_BYTES:
                over.append(f"{dirpath}: {size} bytes > {MAX_RECORD_BYTES}")
        if os.path.basename(dirpath) == SHARED_DIR:
            for f in files:
                size = os.path.getsize(os.path.join(dirpath, f))
                if size > MAX_RECORD_BYTES:
                    over.append(f"{os.path.join(dirpath, f)}: {size} bytes > {MAX_RECORD_BYTES}")
    return over


def require_records(campaign_dir: str, pairs: Sequence[tuple[str, int]]) -> list[str]:
    """Record folders of ``pairs`` ((variant, seed)); ConfigError naming the missing ones."""
    dirs = [os.path.join(campaign_dir, record_name(v, s)) for v, s in pairs]
    missing = [d for d in dirs if not os.path.isfile(os.path.join(d, RECORD_FILE))]
    if missing:
        raise ConfigError(
            f"no record for {', '.join(os.path.basename(d) for d in missing)} in {campaign_dir}"
            " (run them first, e.g. with --only)"
        )
    return dirs
