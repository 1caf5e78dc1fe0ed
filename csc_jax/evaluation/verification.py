"""The speaker-verification protocol: EER / minDCF with 95 % intervals per adverse condition.

Systems are scored on the same trials and the same corrupted audio (csc_jax/evaluation/
eval_set.py: each test utterance corrupted once per condition, enrollment clean):

* the trained model (``csc`` or ``simclr``): its K = 1 global speaker vector, cosine scored;
* ``csc+extract`` (a separative model only): the test side is first passed through target
  extraction conditioned on the enrollment's global vector, then embedded. Extraction depends
  on the (enrollment, test) pair, so its cost grows with trials: it is scored on a fixed
  subset of ``eval.extraction_max_trials`` trials (its own trial count is reported);
* ``csc+query`` (a model with cross-attention, ``eval.query_scoring``): the test side is the
  cross-attention over the TEST utterance's frames with the ENROLLMENT's query,
  ``c_{t|e} = Attn(W_q mean_t h_e, z_t)``, cosine scored against the enrollment's own vector;
  the query selects the test frames that look like the enrolled speaker. Each test utterance
  goes through the trunk once per condition (shared with the model's plain scoring) and only
  the attention is per trial, so it is scored on every trial;
* references: ``untrained`` (the same architecture at initialisation), ``log-mel`` (mean and
  std of 40 log-mel bands, centred on training data) and ``mfcc`` (mean log-mel + MFCC std over
  voiced frames, CMN, z-scored on training data) at the model's rate, plus ``mfcc@<rate>``
  at each of ``eval.reference_rates`` (e.g. 16 kHz: the same utterances at that rate).

Every EER and minDCF gets a 95 % bootstrap interval (csc_jax.metrics.bootstrap; unit
``eval.bootstrap_unit``: enrollment-speaker clusters by default), and the trained model is
compared with each reference by the paired interval of the EER difference (the same
replicates for both systems). Outputs in ``outdir``: results.json, results.md, scores.npz (every
system's trial scores, for paired comparisons across runs), det_<condition>.png.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np

from csc_jax import losses, metrics
from csc_jax.config import samples
from csc_jax.data import sources
from csc_jax.data import trials as trials_lib
from csc_jax.evaluation import conditions as cond_lib
from csc_jax.evaluation.eval_set import EvalSet
from csc_jax.evaluation.noise import NoiseFolder
from csc_jax.evaluation.reference_embedders import LogMelEmbedder, MfccStatsEmbedder
from csc_jax.evaluation.report import format_table, write_reports
from csc_jax.inference.batched import BatchedModel
from csc_jax.training import checkpointing

SCORING_MODES = ("plain", "extract", "query")
# Queries per test utterance in one 'query' slot: an utterance in more trials than this gets
# several slots (its trunk pass is then repeated), so one skewed trial list cannot blow up the
# padded (slots, Q) query array.
QUERY_SLOT_CAP = 64
LEVEL = 0.95
REFERENCE_UTTERANCES = 200  # training utterances for the references' centring / z-scoring


@dataclasses.dataclass
class System:
    """One scored system: ``embedder.embed((N, T)) -> (N, D)``; 'extract' scoring also needs
    ``global_vectors`` and ``extract``, 'query' scoring ``embed_and_query`` and
    ``embed_and_attend`` (:class:`~csc_jax.inference.batched.BatchedModel`). ``eval_set``: the
    audio it is scored on (None = the protocol's own, at the model's rate; another rate's set
    has the same trials)."""

    name: str
    embedder: object
    scoring: str = "plain"
    eval_set: EvalSet | None = None


def subsample_trials(trials: list, max_trials: int, seed: int) -> list:
    """Deterministic subset with (up to) half target and half non-target trials; 0 = all."""
    if not max_trials or len(trials) <= max_trials:
        return list(trials)
    rng = np.random.default_rng([seed, 7])
    tgt = [t for t in trials if t.label == 1]
    non = [t for t in trials if t.label == 0]
    n_t = min(len(tgt), max_trials // 2)
    n_n = min(len(non), max_trials - n_t)
    pick = lambda xs, n: [xs[i] for i in sorted(rng.permutation(len(xs))[:n])]  # noqa: E731
    return pick(tgt, n_t) + pick(non, n_n)


def _subset_indices(trials: list, max_trials: int, seed: int) -> np.ndarray:
    """Indices into ``trials`` of :func:`subsample_trials`' subset, in trial order."""
    chosen = set(map(id, subsample_trials(trials, max_trials, seed)))
    return np.array([i for i, t in enumerate(trials) if id(t) in chosen], np.int64)


def trial_list(config, source, path: str | None = None) -> list:
    """The trial list over ``source``, cut to ``eval.max_trials``.

    ``path``: a VoxCeleb-format trial list; None = the configured one (``data.folder.trials``
    for folder corpora); "" = generated: cross-session target pairs, at most
    ``eval.max_target_per_speaker`` per speaker, and ``eval.nontarget_per_target``
    non-targets per target.
    """
    ev = config.eval
    if path is None:
        folder = sources.split_source_kind(config, "test") == "folder"
        path = config.data.folder.trials if folder else ""
    if path:
        trials = trials_lib.read_trials(path)
        trials_lib.validate_trials(trials, set(source.keys), path=path)
    else:
        trials = trials_lib.generate_trials(
            source.keys,
            source.speakers,
            seed=ev.seed,
            num_nontarget_per_target=ev.nontarget_per_target,
            max_target_per_speaker=ev.max_target_per_speaker or None,
        )
    return subsample_trials(trials, ev.max_trials, ev.seed)


def _at_rate(config, rate: int):
    """A copy of ``config`` whose audio is read (or synthesised) at ``rate``."""
    c = config.copy_and_resolve_references()
    c.data.sample_rate = int(rate)
    return c


def load_eval_set(config, rate: int | None = None, trials: list | None = None) -> EvalSet:
    """The EvalSet of the configured test data at ``rate`` (default: the model's rate).

    ``trials``: reuse another rate's trial list (keys are the same at every rate).
    """
    c = config if rate in (None, config.data.sample_rate) else _at_rate(config, rate)
    source = sources.make_source(c, "test")
    if trials is None:
        trials = trial_list(c, source)
    length = samples(c.eval.seconds, c.data.sample_rate)
    return EvalSet(source, trials, length, c.eval.seed, noise=noise_bank(c))


def noise_bank(config) -> NoiseFolder | None:
    """The recorded-noise folder of the noise conditions, or None (colored Gaussian noise)."""
    root = config.data.folder.noise_root
    return NoiseFolder(root, int(config.data.sample_rate)) if root else None


def reference_waveforms(config, rate: int | None = None) -> np.ndarray:
    """(R, T) training utterances (fit to the eval length) for the references' statistics.

    At another rate than the model's, a synthetic corpus is synthesised at that rate for its
    first speakers only (the same voices), enough for REFERENCE_UTTERANCES utterances. A
    'mixed' config takes them from its primary corpus (the test data's), so every training mix
    evaluated on one test set gets the same references: the references' z-scoring depends on
    this sample (on the recorded voices, a sample of the recipe's mix instead of the voices'
    own moved the MFCC-statistics EER from 12.8 to 9.5 % in clean speech).
    """
    other_rate = rate not in (None, config.data.sample_rate)
    c = _at_rate(config, rate if other_rate else config.data.sample_rate)
    if c.data.source == "mixed":
        c.data.source = sources.split_source_kind(c, "test")
    if other_rate and c.data.source == "synthetic":
        per = max(1, c.data.synthetic.train_utterances_per_speaker)
        need = -(-REFERENCE_UTTERANCES // per)
        c.data.synthetic.num_train_speakers = min(c.data.synthetic.num_train_speakers, need)
    train_source = sources.make_source(c, "train")
    length = samples(c.eval.seconds, c.data.sample_rate)
    rng = np.random.default_rng(c.eval.seed)
    idx = rng.permutation(len(train_source))[: min(REFERENCE_UTTERANCES, len(train_source))]
    return np.stack([cond_lib.fit_length(train_source[int(i)], length) for i in idx])


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (
        np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12
    )


def query_slots(test_row: np.ndarray, cap: int = QUERY_SLOT_CAP) -> tuple[np.ndarray, np.ndarray]:
    """Group trials by test utterance for 'query' scoring: one trunk pass per slot.

    Args:
      test_row: (N,) int64, each trial's test utterance row (EvalSet.test_row).
      cap: most trials per slot.

    Returns:
      (slot_test (S,) int64 test rows, ascending; slot_trials (S, Q) int64 trial indices in
      trial order, -1 = padding), Q = min(cap, most trials of one test utterance). Every trial
      is in exactly one slot.
    """
    if cap < 1:
        raise ValueError(f"query_slots: cap must be >= 1, got {cap}")
    order = np.argsort(test_row, kind="stable")
    rows, starts, counts = np.unique(test_row[order], return_index=True, return_counts=True)
    q = int(min(cap, counts.max()))
    slot_test, slot_trials = [], []
    for row, start, count in zip(rows, starts, counts, strict=True):
        for lo in range(0, count, q):
            idx = order[start + lo : start + min(count, lo + q)]
            slot_test.append(row)
            slot_trials.append(np.pad(idx, (0, q - idx.size), constant_values=-1))
    return np.array(slot_test, np.int64), np.stack(slot_trials).astype(np.int64)


def _test_side(embedder, tests: np.ndarray, es: EvalSet, enroll: dict, query: bool) -> dict:
    """One embedder's test-side outputs under one condition: 'emb' (U, D) always; with
    ``query``, also 'query_scores' (N,) float64 per trial, cos(c_e, Attn(q_e, z_t))."""
    if not query:
        return {"emb": embedder.embed(tests)}
    # EvalSet.tests fits every utterance to one length, so all test utterances have the same
    # number of frames and the attention needs no padding mask.
    if tests.ndim != 2 or tests.shape[0] != len(es.test_keys):
        raise ValueError(
            f"query scoring needs the test set as one (U={len(es.test_keys)}, T) array of "
            f"equal-length utterances, got shape {tests.shape}"
        )
    slot_test, slot_trials = query_slots(es.test_row)
    valid = slot_trials >= 0
    trial = np.where(valid, slot_trials, 0)
    # Padding queries are zeros: computed (LayerNorm of zero is finite) and dropped.
    queries = np.where(valid[..., None], enroll["query"][es.enroll_row[trial]], 0.0)
    identity = slot_test.size == tests.shape[0] and np.array_equal(
        slot_test, np.arange(slot_test.size)
    )
    x = tests if identity else tests[slot_test]
    slot_emb, vectors = embedder.embed_and_attend(x, queries.astype(np.float32))
    # NaN, not garbage, for a test utterance no trial uses (no slot): nothing should read it.
    emb = np.full((tests.shape[0], slot_emb.shape[1]), np.nan, slot_emb.dtype)
    emb[slot_test] = slot_emb  # an utterance split over slots: the same embedding each time
    scores = np.full(len(es.trials), np.nan)  # every trial is in one slot (query_slots)
    scores[slot_trials[valid]] = _cosine(
        enroll["emb"][es.enroll_row[slot_trials[valid]]], vectors[valid]
    )
    return {"emb": emb, "query_scores": scores}


def score_systems(
    systems: list[System], eval_set: EvalSet, conditions, *, extraction_trials: np.ndarray
) -> dict:
    """Trial scores of every system under every condition.

    Returns:
      {system: {condition: {'scores': (n,) float64, 'trials': (n,) int64 indices into
      eval_set.trials, 'si_snri': dB (extraction scoring, corrupted conditions only)}}}.
    """
    for s in systems:
        if s.scoring not in SCORING_MODES:
            raise ValueError(
                f"system {s.name!r}: scoring {s.scoring!r} is not one of {SCORING_MODES}"
            )
    all_trials = np.arange(len(eval_set.trials))
    # Enrollment is clean, so its embeddings (and, for extraction scoring, its global vectors;
    # for query scoring, its queries) are computed once per embedder and audio, not once per
    # system and condition: 'csc', 'csc+extract' and 'csc+query' share one model. A model
    # with a 'query' system gets its embeddings and queries from one trunk pass, and so its
    # test embeddings with the queried vectors (the same function as ``embed``).
    key_of = lambda s: (id(s.embedder), id(s.eval_set or eval_set))  # noqa: E731
    queried = {key_of(s) for s in systems if s.scoring == "query"}
    enroll, cache = {}, {}
    for s in systems:
        es = s.eval_set or eval_set
        key = key_of(s)
        if key not in cache:
            wave = es.enrollment()
            cache[key] = {"wave": wave}
            if key in queried:
                cache[key]["emb"], cache[key]["query"] = s.embedder.embed_and_query(wave)
            else:
                cache[key]["emb"] = s.embedder.embed(wave)
        if s.scoring == "extract" and "vectors" not in cache[key]:
            cache[key]["vectors"] = s.embedder.global_vectors(cache[key]["wave"])
        enroll[s.name] = cache[key]
    out: dict = {s.name: {} for s in systems}
    for ci, condition in enumerate(conditions):
        tests_by_set: dict[int, np.ndarray] = {}
        side: dict[tuple, dict] = {}
        for s in systems:
            es = s.eval_set or eval_set
            if id(es) not in tests_by_set:
                tests_by_set[id(es)] = es.tests(condition, ci)
            tests = tests_by_set[id(es)]
            emb = enroll[s.name]["emb"]
            key = key_of(s)
            if s.scoring in ("plain", "query") and key not in side:
                side[key] = _test_side(s.embedder, tests, es, enroll[s.name], key in queried)
            if s.scoring == "plain":
                test_emb = side[key]["emb"]
                sc = _cosine(emb[es.enroll_row], test_emb[es.test_row])
                out[s.name][condition.name] = {"scores": sc, "trials": all_trials}
                continue
            if s.scoring == "query":
                sc = side[key]["query_scores"]
                out[s.name][condition.name] = {"scores": sc, "trials": all_trials}
                continue
            idx = extraction_trials
            vectors = enroll[s.name]["vectors"]
            mixtures = tests[es.test_row[idx]]
            extracted = s.embedder.extract(mixtures, vectors[es.enroll_row[idx]])
            sc = _cosine(emb[es.enroll_row[idx]], s.embedder.embed(extracted))
            row = {"scores": sc, "trials": idx}
            if condition.kind != "clean":
                tgt = es.labels[idx] == 1
                clean = np.stack([es.audio(es.trials[i].test) for i in idx[tgt]])
                before = np.asarray(losses.si_snr(mixtures[tgt], clean))
                after = np.asarray(losses.si_snr(extracted[tgt], clean))
                row["si_snri"] = float(np.mean(after - before))
            out[s.name][condition.name] = row
    return out


def summarize(scored: dict, eval_set: EvalSet, ev, primary: str | None = None) -> tuple:
    """EER / minDCF with bootstrap intervals per system and condition, and paired differences.

    Systems scored on the same trials share every bootstrap replicate (seeded by
    ``ev.seed``), so their intervals are paired. ``primary`` is compared with every other
    system on the full trial list.

    Returns:
      (results {system: {condition: {eer, eer_ci, min_dcf, min_dcf_ci, trials, targets
      [, si_snri]}}} with EER in %, paired {"A - B": {condition: {diff, ci}}} in EER points).
    """
    unit = ev.bootstrap_unit
    results: dict = {name: {} for name in scored}
    paired: dict = {}
    conditions = list(next(iter(scored.values())))
    for cond in conditions:
        groups: dict[bytes, list[str]] = {}
        for name in scored:
            groups.setdefault(scored[name][cond]["trials"].tobytes(), []).append(name)
        for names in groups.values():
            idx = scored[names[0]][cond]["trials"]
            labels = eval_set.labels[idx]
            clusters = eval_set.enroll_speaker[idx] if unit == "speaker" else None
            boot = metrics.bootstrap(
                [scored[n][cond]["scores"] for n in names],
                labels,
                clusters,
                replicates=ev.bootstrap_replicates,
                seed=ev.seed,
                p_target=ev.p_target,
            )
            for i, n in enumerate(names):
                row = {
                    "eer": 100.0 * float(boot.eer[i]),
                    "eer_ci": [100.0 * v for v in metrics.interval(boot.eer_reps[i], LEVEL)],
                    "min_dcf": float(boot.min_dcf[i]),
                    "min_dcf_ci": list(metrics.interval(boot.min_dcf_reps[i], LEVEL)),
                    "trials": int(idx.size),
                    "targets": int(labels.sum()),
                }
                if "si_snri" in scored[n][cond]:
                    row["si_snri"] = scored[n][cond]["si_snri"]
                results[n][cond] = row
            if primary in names:
                a = names.index(primary)
                for b, other in enumerate(names):
                    if other == primary:
                        continue
                    diff = boot.eer_reps[a] - boot.eer_reps[b]
                    paired.setdefault(f"{primary} - {other}", {})[cond] = {
                        "diff": 100.0 * float(boot.eer[a] - boot.eer[b]),
                        "ci": [100.0 * v for v in metrics.interval(diff, LEVEL)],
                    }
    return results, paired


def run_protocol(systems: list[System], eval_set: EvalSet, config, outdir=None, primary=None):
    """Score ``systems`` under every condition, summarise with intervals, write reports.

    Returns:
      (results, paired) as :func:`summarize`.
    """
    ev = config.eval
    conditions = cond_lib.conditions_from_config(ev)
    extraction_trials = _subset_indices(eval_set.trials, ev.extraction_max_trials, ev.seed + 1)
    scored = score_systems(systems, eval_set, conditions, extraction_trials=extraction_trials)
    results, paired = summarize(scored, eval_set, ev, primary=primary)
    if outdir:
        meta = {
            "num_trials": len(eval_set.trials),
            "target_trials": int(eval_set.labels.sum()),
            "enroll_utterances": len(eval_set.enroll_keys),
            "test_utterances": len(eval_set.test_keys),
            "speakers": len(set(eval_set.enroll_speaker.tolist())),
            "eval_seconds": ev.seconds,
            "seed": ev.seed,
            "interval": f"{100 * LEVEL:g} % percentile bootstrap",
            "bootstrap_unit": "enrollment speaker" if ev.bootstrap_unit == "speaker" else "trial",
            "bootstrap_replicates": ev.bootstrap_replicates,
            "interferer_conflicts": eval_set.interferer_conflicts,
            "noise": eval_set.noise.describe()
            if eval_set.noise
            else "colored Gaussian (1/f^a, a ~ U[0, 2])",
        }
        write_reports(results, paired, scored, eval_set, outdir, meta=meta)
    return results, paired


def check_eval_inputs(config) -> None:
    """Everything the evaluation reads that can be checked before training compiles: the
    test source, its trial list and the noise folder (raises DataError naming the file)."""
    noise_bank(config)
    load_eval_set(config)


def reference_systems(config, model, eval_set: EvalSet) -> list[System]:
    """The untrained model and the hand-crafted references (see the module docstring)."""
    untrained = model.init(
        jax.random.PRNGKey(config.seed + 1),
        np.zeros((1, config.mixing.num_conditions, 1600), np.float32),
    )["params"]
    rate = int(config.data.sample_rate)
    reference = reference_waveforms(config)
    out = [
        System("untrained", BatchedModel(model, untrained, config.eval.batch_size)),
        System("log-mel", LogMelEmbedder(rate, reference)),
        System("mfcc", MfccStatsEmbedder(rate, reference)),
    ]
    for other in config.eval.reference_rates:
        if int(other) == rate:
            continue
        es = load_eval_set(config, int(other), trials=eval_set.trials)
        ref = reference_waveforms(config, int(other))
        out.append(
            System(f"mfcc@{int(other) // 1000}k", MfccStatsEmbedder(int(other), ref), eval_set=es)
        )
    return out


def trained_systems(config, trained: BatchedModel) -> list[System]:
    """The trained model's systems: its own (``config.method``), and for CSC 'csc+extract'
    (``eval.extraction_scoring``) and 'csc+query' (``eval.query_scoring``, only for a model
    with cross-attention: a mean-pooling ablation has no query, so it is not offered)."""
    systems = [System(config.method, trained)]
    if config.method == "csc" and config.eval.extraction_scoring:
        systems.append(System("csc+extract", trained, "extract"))
    if config.method == "csc" and config.eval.query_scoring and config.model.use_cross_attention:
        systems.append(System("csc+query", trained, "query"))
    return systems


def evaluate_workdir(config, workdir: str, *, model=None, params=None, step=None, outdir=None):
    """Evaluate a run against the references; print and save the tables.

    Returns:
      the results dict of :func:`summarize` (EER % per system and condition, with intervals).
    """
    t0 = time.time()
    noise_bank(config)  # a bad noise folder fails before the checkpoint is read
    if params is None:
        model, params, step = checkpointing.restore_params(config, workdir, step)
    outdir = outdir or os.path.join(workdir, "eval")
    eval_set = load_eval_set(config)
    trained = BatchedModel(model, params, config.eval.batch_size)
    systems = trained_systems(config, trained) + reference_systems(config, model, eval_set)
    results, paired = run_protocol(systems, eval_set, config, outdir, primary=config.method)
    print(format_table(results, paired), flush=True)
    print(
        f"eval: {len(eval_set.trials)} trials ({int(eval_set.labels.sum())} target), "
        f"{time.time() - t0:.0f} s, written to {outdir}",
        flush=True,
    )
    return results
