"""The speaker-verification protocol: EER / minDCF per adverse condition, SI-SNRi, reports.

Systems compared on the same trials and the same corrupted audio:
  * ``csc``: the trained model's K=1 global speaker vector, cosine scored;
  * ``csc+extract``: the test side is first passed through target extraction conditioned on
    the enrollment's global vector, then embedded (only a separative model can do this);
  * ``untrained``: the same architecture at initialisation (global vector);
  * ``log-mel``: log-mel mean/std statistics centred on training data, cosine scored.
Outputs in ``outdir``: results.json, results.md (tables), det_<condition>.png.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from csc_jax import losses, metrics
from csc_jax.config import samples
from csc_jax.data import sources
from csc_jax.data import trials as trials_lib
from csc_jax.evaluation import conditions as cond_lib
from csc_jax.evaluation.embedders import LogMelEmbedder
from csc_jax.evaluation.noise import NoiseFolder
from csc_jax.evaluation.report import format_table, write_reports
from csc_jax.inference.batched import BatchedModel
from csc_jax.training import checkpointing


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (
        np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12
    )


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


def load_eval_set(config):
    """(test AudioSource, trial list) for the configured data source."""
    source = sources.make_source(config, "test")
    path = config.data.folder.trials if config.data.source == "folder" else ""
    if path:
        trials = trials_lib.read_trials(path)
        trials_lib.validate_trials(trials, set(source.keys), path=path)
    else:
        trials = trials_lib.generate_trials(source.keys, source.speakers, seed=config.eval.seed)
    return source, subsample_trials(trials, config.eval.max_trials, config.eval.seed)


class _Audio:
    """Test utterances fitted to the eval length, loaded once."""

    def __init__(self, source, length: int):
        self.source, self.length, self._cache = source, length, {}

    def __call__(self, key_or_index) -> np.ndarray:
        i = key_or_index if isinstance(key_or_index, int) else self.source.index_of(key_or_index)
        if i not in self._cache:
            self._cache[i] = cond_lib.fit_length(
                np.asarray(self.source[i], np.float32), self.length
            )
        return self._cache[i]


def noise_bank(config) -> NoiseFolder | None:
    """The recorded-noise folder of the noise conditions, or None (colored Gaussian noise)."""
    root = config.data.folder.noise_root
    return NoiseFolder(root, int(config.data.sample_rate)) if root else None


def corrupted_tests(
    audio: _Audio,
    trials,
    condition,
    cond_index: int,
    seed: int,
    noise: NoiseFolder | None = None,
) -> np.ndarray:
    """(N, T) test sides of ``trials`` under ``condition`` (deterministic per trial).

    ``noise``: recorded noise for the 'noise' conditions (default: colored Gaussian noise).
    """
    speakers = audio.source.speakers
    out = np.empty((len(trials), audio.length), np.float32)
    for n, t in enumerate(trials):
        rng = np.random.default_rng([seed, cond_index, n])
        clean = audio(t.test)
        interferer = None
        if condition.kind == "speech":
            exclude = {
                speakers[audio.source.index_of(t.enroll)],
                speakers[audio.source.index_of(t.test)],
            }
            interferer = audio(cond_lib.pick_interferer(rng, speakers, exclude))
        recorded = None
        if condition.kind == "noise" and noise is not None:
            recorded = noise.sample(rng, audio.length)
        out[n] = cond_lib.corrupt(clean, condition, rng, interferer=interferer, noise=recorded)
    return out


SCORING_MODES = ("plain", "extract")


def run_protocol(systems: dict, source, trials, config, outdir: str | None = None) -> dict:
    """Score every system under every condition.

    Args:
      systems: name -> (embedder, scoring). ``scoring`` says how the test side is embedded:
        'plain': ``embed(test)``; 'extract': ``embed(extract(test, global_vectors(enroll)))``
        (a separative model only). Embedders have ``embed((N, T)) -> (N, D)``; 'extract'
        also needs ``global_vectors`` and ``extract``.
      source: test AudioSource.
      trials: list of Trial.
      config: experiment config (``config.eval``, ``config.data.sample_rate``;
        ``config.data.folder.noise_root``: recorded noise for the noise conditions).
      outdir: where to write results.json / results.md / DET PNGs (None: don't write).

    Returns:
      {system: {condition: {'eer': %, 'min_dcf': float, 'si_snri': dB (extraction only)}}}.
    """
    for name, (_, scoring) in systems.items():
        if scoring not in SCORING_MODES:
            raise ValueError(f"system {name!r}: scoring {scoring!r} is not one of {SCORING_MODES}")
    modes = {name: scoring for name, (_, scoring) in systems.items()}
    ev = config.eval
    length = samples(ev.seconds, config.data.sample_rate)
    audio = _Audio(source, length)
    noise = noise_bank(config)
    labels = np.array([t.label for t in trials])
    enroll_keys = sorted({t.enroll for t in trials})
    enroll_wave = np.stack([audio(k) for k in enroll_keys])
    enroll_row = {k: i for i, k in enumerate(enroll_keys)}
    rows = np.array([enroll_row[t.enroll] for t in trials])
    clean_tests = np.stack([audio(t.test) for t in trials])

    enroll_emb, enroll_vec = {}, {}
    for name, (emb, _) in systems.items():
        enroll_emb[name] = emb.embed(enroll_wave)
        if modes[name] == "extract":
            enroll_vec[name] = emb.global_vectors(enroll_wave)

    results: dict = {name: {} for name in systems}
    curves: dict = {}
    for ci, condition in enumerate(cond_lib.conditions_from_config(ev)):
        tests = corrupted_tests(audio, trials, condition, ci, ev.seed, noise)
        for name, (emb, _) in systems.items():
            row: dict = {}
            if modes[name] == "extract":
                extracted = emb.extract(tests, enroll_vec[name][rows])
                test_emb = emb.embed(extracted)
                if condition.kind != "clean":
                    tgt = labels == 1
                    before = np.asarray(losses.si_snr(tests[tgt], clean_tests[tgt]))
                    after = np.asarray(losses.si_snr(extracted[tgt], clean_tests[tgt]))
                    row["si_snri"] = float(np.mean(after - before))
            else:
                test_emb = emb.embed(tests)
            scores = _cosine(enroll_emb[name][rows], test_emb)
            e, _ = metrics.eer(scores, labels)
            d, _ = metrics.min_dcf(scores, labels, p_target=ev.p_target)
            row.update(eer=100.0 * e, min_dcf=float(d))
            results[name][condition.name] = row
            fpr, fnr, _ = metrics.det_curve(scores, labels)
            curves.setdefault(condition.name, {})[name] = (fpr, fnr)
    if outdir:
        write_reports(
            results,
            curves,
            outdir,
            meta={
                "num_trials": len(trials),
                "target_trials": int(labels.sum()),
                "eval_seconds": ev.seconds,
                "seed": ev.seed,
                "noise": noise.describe() if noise else "colored Gaussian (1/f^a, a ~ U[0, 2])",
            },
        )
    return results


def check_eval_inputs(config) -> None:
    """Everything the evaluation reads that can be checked before training compiles: the
    test source, its trial list and the noise folder (raises DataError naming the file)."""
    noise_bank(config)
    load_eval_set(config)


def evaluate_workdir(config, workdir: str, *, model=None, params=None, step=None, outdir=None):
    """Evaluate a run (and the untrained and log-mel references); print and save the tables."""
    t0 = time.time()
    noise_bank(config)  # a bad noise folder fails before the checkpoint is read
    if params is None:
        model, params, step = checkpointing.restore_params(config, workdir, step)
    outdir = outdir or os.path.join(workdir, "eval")
    source, trials = load_eval_set(config)
    untrained = model.init(
        jax.random.PRNGKey(config.seed + 1),
        np.zeros((1, config.mixing.num_conditions, 1600), np.float32),
    )["params"]
    trained = BatchedModel(model, params, config.eval.batch_size)
    systems = {config.method: (trained, "plain")}
    if config.method == "csc" and config.eval.extraction_scoring:
        systems["csc+extract"] = (trained, "extract")
    systems["untrained"] = (BatchedModel(model, untrained, config.eval.batch_size), "plain")
    train_source = sources.make_source(config, "train")
    length = samples(config.eval.seconds, config.data.sample_rate)
    rng = np.random.default_rng(config.eval.seed)
    ref_idx = rng.permutation(len(train_source))[: min(200, len(train_source))]
    reference = np.stack([cond_lib.fit_length(train_source[int(i)], length) for i in ref_idx])
    systems["log-mel"] = (LogMelEmbedder(config.data.sample_rate, reference), "plain")
    results = run_protocol(systems, source, trials, config, outdir)
    print(format_table(results), flush=True)
    print(f"eval: {len(trials)} trials, {time.time() - t0:.0f} s, written to {outdir}", flush=True)
    return results
