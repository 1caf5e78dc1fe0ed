"""Speaker-verification metrics in numpy: EER, minDCF, DET curve, bootstrap intervals (and a
DET plot).

Conventions shared by every function:

* ``scores``: 1-D real array, higher = more likely the same speaker. Must be finite.
* ``labels``: 1-D bool or 0/1 numbers; 1 = target (same speaker), 0 = non-target.
* The decision rule is ``accept if score >= t``. The operating points are the thresholds
  ``t = +inf`` (reject everything: FPR = 0, FNR = 1) followed by every *distinct* score in
  decreasing order. Equal scores are one threshold, so tied trials are always accepted or
  rejected together and the result does not depend on how ties are ordered. The last point
  (lowest score) accepts everything: FPR = 1, FNR = 0.

  ``FPR(t) = #{non-target, score >= t} / #non-target`` (false acceptance rate),
  ``FNR(t) = #{target, score < t} / #target`` (miss rate).

These are exactly the points of ``sklearn.metrics.roc_curve(labels, scores,
drop_intermediate=False)`` with ``FNR = 1 - TPR``.

Uncertainty (:func:`bootstrap`): percentile intervals from a cluster bootstrap. The unit
resampled is the *enrollment speaker* by default: trials that share an enrollment speaker are
correlated (the same voice model, the same recordings), so resampling trials one by one would
understate the uncertainty. Each replicate draws the enrollment speakers with replacement and
weights every trial by the number of times its enrollment speaker was drawn; EER and minDCF
of the weighted trials are computed exactly as above (ties kept together). Several systems
scored on the same trials share every replicate's weights, so the replicates of
``EER_A - EER_B`` form the *paired* interval of the difference, and a system compared with
itself gives exactly 0.

matplotlib and scipy are imported lazily inside :func:`plot_det`, so importing this module only
pulls in numpy.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "Bootstrap",
    "bootstrap",
    "det_curve",
    "eer",
    "interval",
    "min_dcf",
    "plot_det",
]

# DET axis ticks in percent; sparse at the low end where probit spacing would make labels overlap.
_DET_TICKS_PCT = (0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 80, 90, 95)


def _validate(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Checks and converts ``scores`` to float64 (N,) and ``labels`` to int64 (N,) in {0, 1}."""
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"scores and labels must be 1-D arrays, got shapes {scores.shape} and {labels.shape}"
        )
    if scores.size == 0:
        raise ValueError("scores and labels are empty: need at least one target and one non-target")
    if scores.shape != labels.shape:
        raise ValueError(
            f"scores and labels must have the same length, got {scores.size} scores and "
            f"{labels.size} labels"
        )
    if scores.dtype == bool or not (
        np.issubdtype(scores.dtype, np.integer) or np.issubdtype(scores.dtype, np.floating)
    ):
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
    scores = scores.astype(np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            f"scores contain {int(bad.sum())} non-finite values ({int(np.isnan(scores).sum())} "
            f"NaN, {int(np.isinf(scores).sum())} Inf); first at index {int(np.argmax(bad))} "
            f"(value {scores[np.argmax(bad)]})"
        )

    if labels.dtype == bool:
        y = labels.astype(np.int64)
    elif np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating):
        ok = (labels == 0) | (labels == 1)
        if not ok.all():
            first = int(np.argmin(ok))
            others = np.unique(labels[~ok])[:5]
            raise ValueError(
                "labels must be 1 (target) or 0 (non-target); found "
                f"{int((~ok).sum())} other values, e.g. {others.tolist()}, first at index {first}"
            )
        y = labels.astype(np.int64)
    else:
        raise ValueError(f"labels must be bool or 0/1 numbers, got dtype {labels.dtype}")

    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            "both classes are needed: got "
            f"{n_pos} target (label 1) and {n_neg} non-target (label 0) trials"
        )
    return scores, y


def det_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Operating points of the DET (and ROC) curve.

    Args:
        scores: (N,) real, finite.
        labels: (N,) bool or 0/1; 1 = target.

    Returns:
        ``(fpr, fnr, thresholds)``, float64 arrays of length ``1 + #distinct scores``, ordered
        by decreasing threshold: ``thresholds[0] = +inf`` (FPR 0, FNR 1), then every distinct
        score; FPR is non-decreasing and FNR non-increasing along the arrays. Point ``i`` is the
        rule ``accept iff score >= thresholds[i]``.
    """
    scores, y = _validate(scores, labels)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    y = y[order]
    # Counts accepted at threshold s[i]; only the last index of each run of equal scores is an
    # operating point, which is what keeps ties together.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.r_[0, np.cumsum(y)[last]]
    fp = np.r_[0, np.cumsum(1 - y)[last]]
    n_pos = tp[-1]
    n_neg = fp[-1]
    fpr = fp / n_neg
    fnr = (n_pos - tp) / n_pos
    thresholds = np.r_[np.inf, s[last]]
    return fpr, fnr, thresholds


def eer(scores, labels) -> tuple[float, float]:
    """Equal error rate, wespeaker-style linear interpolation of the FNR/FPR crossing.

    Definition: let ``(FPR_i, FNR_i)`` be the operating points of :func:`det_curve` and
    ``d_i = FNR_i - FPR_i`` (non-increasing, from ``+1`` to ``-1``). Take ``a`` = the last point
    with ``d_a >= 0`` and ``b = a + 1`` (so ``d_b < 0``). The EER is where the segment from
    point ``a`` to point ``b`` crosses ``FNR = FPR``::

        alpha = d_a / (d_a - d_b)
        EER   = FPR_a + alpha * (FPR_b - FPR_a)   (= FNR_a + alpha * (FNR_b - FNR_a))

    This is the unique intersection of the ROC polyline with the diagonal, so it equals the
    same interpolation on sklearn's ``roc_curve`` points (with or without
    ``drop_intermediate``). If some point has ``FNR = FPR`` exactly, that value is the EER.

    Args:
        scores: (N,) real, finite.
        labels: (N,) bool or 0/1; 1 = target.

    Returns:
        ``(eer, threshold)``: ``eer`` as a fraction in ``[0, 1]``; ``threshold`` is the score
        threshold of whichever endpoint ``a`` or ``b`` has the smaller ``|FNR - FPR|`` (``b``,
        the finite lower threshold, on ties). Perfectly separated scores give
        ``(0.0, lowest target score)``.
    """
    fpr, fnr, thresholds = det_curve(scores, labels)
    diff = fnr - fpr
    a = int(np.count_nonzero(diff >= 0)) - 1  # diff[0] = 1 and diff[-1] = -1, so 0 <= a < len-1
    b = a + 1
    alpha = diff[a] / (diff[a] - diff[b])
    value = fpr[a] + alpha * (fpr[b] - fpr[a])
    best = a if abs(diff[a]) < abs(diff[b]) else b
    return float(value), float(thresholds[best])


def min_dcf(
    scores,
    labels,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> tuple[float, float]:
    """Normalised minimum detection cost (NIST SRE; as in sslsv / wespeaker).

    Over the operating points of :func:`det_curve` (both trivial systems, reject-all and
    accept-all, included)::

        DCF(t)  = c_miss * p_target * FNR(t) + c_fa * (1 - p_target) * FPR(t)
        minDCF  = min_t DCF(t) / min(c_miss * p_target, c_fa * (1 - p_target))

    The normaliser is the cost of the best trivial system, so ``minDCF <= 1``.

    Args:
        scores: (N,) real, finite.
        labels: (N,) bool or 0/1; 1 = target.
        p_target: prior of a target trial, in (0, 1).
        c_miss: cost of a miss, > 0.
        c_fa: cost of a false acceptance, > 0.

    Returns:
        ``(min_dcf, threshold)``: the normalised minimum and the threshold attaining it (the
        highest one on ties; ``+inf`` means rejecting everything is optimal).
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    if not c_miss > 0 or not c_fa > 0:
        raise ValueError(f"c_miss and c_fa must be > 0, got c_miss={c_miss}, c_fa={c_fa}")
    fpr, fnr, thresholds = det_curve(scores, labels)
    dcf = c_miss * p_target * fnr + c_fa * (1.0 - p_target) * fpr
    best = int(np.argmin(dcf))
    c_def = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(dcf[best] / c_def), float(thresholds[best])


def _weighted_eer_dcf(
    labels_sorted: np.ndarray,
    last: np.ndarray,
    weights: np.ndarray,
    p_target: float,
) -> tuple[np.ndarray, np.ndarray]:
    """EER and normalised minDCF of R weightings of one score-sorted trial list.

    Args:
      labels_sorted: (N,) int 0/1 in decreasing-score order.
      last: (P,) indices closing each run of equal scores (the operating points).
      weights: (R, N) non-negative trial weights in the same order.

    Returns:
      ((R,) EER fractions, (R,) minDCF); NaN for a weighting without targets or non-targets.
    """
    tp = np.cumsum(weights * labels_sorted, axis=1)[:, last]
    fp = np.cumsum(weights * (1 - labels_sorted), axis=1)[:, last]
    n_pos, n_neg = tp[:, -1:], fp[:, -1:]
    ok = (n_pos[:, 0] > 0) & (n_neg[:, 0] > 0)
    n_pos, n_neg = np.where(n_pos > 0, n_pos, 1), np.where(n_neg > 0, n_neg, 1)
    zeros = np.zeros((weights.shape[0], 1))
    fpr = np.concatenate([zeros, fp / n_neg], axis=1)
    fnr = np.concatenate([zeros + 1, (n_pos - tp) / n_pos], axis=1)
    diff = fnr - fpr
    rows = np.arange(weights.shape[0])
    a = np.count_nonzero(diff >= 0, axis=1) - 1
    b = np.minimum(a + 1, diff.shape[1] - 1)
    da, db = diff[rows, a], diff[rows, b]
    alpha = np.where(da - db > 0, da / np.where(da - db > 0, da - db, 1), 0.0)
    eer = fpr[rows, a] + alpha * (fpr[rows, b] - fpr[rows, a])
    dcf = p_target * fnr + (1.0 - p_target) * fpr
    min_dcf = dcf.min(axis=1) / min(p_target, 1.0 - p_target)
    return np.where(ok, eer, np.nan), np.where(ok, min_dcf, np.nan)


class Bootstrap:
    """Point estimates and bootstrap replicates of EER / minDCF for S systems on one trial list.

    Attributes:
      eer: (S,) EER fractions of the full trial list (= :func:`eer`).
      min_dcf: (S,) normalised minDCF (= :func:`min_dcf`, c_miss = c_fa = 1).
      eer_reps, min_dcf_reps: (S, R) replicates (every system sees the same weights per
        replicate; replicates without targets or non-targets are dropped).
      unit: what was resampled ('speaker' clusters or 'trial'); replicates: R; seed.
    """

    def __init__(self, eer, min_dcf, eer_reps, min_dcf_reps, unit, seed):
        self.eer, self.min_dcf = eer, min_dcf
        self.eer_reps, self.min_dcf_reps = eer_reps, min_dcf_reps
        self.unit, self.seed = unit, seed

    @property
    def replicates(self) -> int:
        return int(self.eer_reps.shape[1])


def bootstrap(
    scores: Sequence[np.ndarray],
    labels,
    clusters=None,
    *,
    replicates: int = 1000,
    seed: int = 0,
    p_target: float = 0.01,
    chunk: int = 100,
) -> Bootstrap:
    """Cluster-bootstrap replicates of EER and minDCF for systems scored on the same trials.

    Args:
      scores: S arrays (N,), one per system (or per seed of a system), on the same trials.
      labels: (N,) bool or 0/1; 1 = target.
      clusters: (N,) hashable cluster of each trial (its enrollment speaker); None resamples
        trials one by one.
      replicates: R bootstrap replicates.
      seed: the generator seed (the same seed gives the same weights, so results computed
        separately with one seed are paired).
      p_target: minDCF's target prior.
      chunk: replicates computed at once (memory: about 5 * chunk * N float64).

    Returns:
      a :class:`Bootstrap`.
    """
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    checked = [_validate(s, labels) for s in scores]
    if not checked:
        raise ValueError("bootstrap needs at least one score array")
    y = checked[0][1]
    n = y.size
    if clusters is None:
        ids, unit = np.arange(n), "trial"
    else:
        clusters = np.asarray(clusters)
        if clusters.shape != (n,):
            raise ValueError(f"clusters must be ({n},), got {clusters.shape}")
        _, ids = np.unique(clusters, return_inverse=True)
        unit = "speaker"
    k = int(ids.max()) + 1
    rng = np.random.default_rng([seed, 0xB007])
    counts = [rng.multinomial(k, np.full(k, 1.0 / k), size=min(chunk, replicates - start))
              for start in range(0, replicates, chunk)]  # fmt: skip
    eer_pt, dcf_pt, eer_reps, dcf_reps = [], [], [], []
    for s, _ in checked:
        order = np.argsort(-s, kind="stable")
        ys, ss = y[order], s[order]
        last = np.r_[np.flatnonzero(np.diff(ss) != 0), ss.size - 1]
        e, d = _weighted_eer_dcf(ys, last, np.ones((1, n)), p_target)
        eer_pt.append(e[0])
        dcf_pt.append(d[0])
        er, dr = [], []
        for c in counts:
            e, d = _weighted_eer_dcf(ys, last, c[:, ids[order]].astype(np.float64), p_target)
            er.append(e)
            dr.append(d)
        eer_reps.append(np.concatenate(er))
        dcf_reps.append(np.concatenate(dr))
    eer_reps, dcf_reps = np.stack(eer_reps), np.stack(dcf_reps)
    valid = np.all(np.isfinite(eer_reps), axis=0)
    return Bootstrap(
        np.asarray(eer_pt), np.asarray(dcf_pt), eer_reps[:, valid], dcf_reps[:, valid], unit, seed
    )


def interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval (lo, hi) of 1-D bootstrap replicates at ``level``."""
    replicates = np.asarray(replicates, np.float64)
    if replicates.ndim != 1 or replicates.size == 0:
        raise ValueError(f"replicates must be a non-empty 1-D array, got {replicates.shape}")
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(replicates, [tail, 100.0 - tail])
    return float(lo), float(hi)


def plot_det(
    curves: Mapping[str, Sequence[np.ndarray]],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Writes a PNG DET plot (FNR vs FPR on probit axes labelled in %).

    Both axes show ``norm.ppf(p)`` (standard normal quantile), the NIST DET convention, so
    Gaussian score distributions give straight lines. Probabilities are clipped to
    ``[1e-4, 1 - 1e-4]`` because 0 and 1 map to -inf / +inf.

    Args:
        curves: ``{legend label: (fpr, fnr)}``; a 3-tuple ``(fpr, fnr, thresholds)`` from
            :func:`det_curve` is accepted too (thresholds are ignored).
        path: output PNG path; parent directories are created.
        title: optional axes title.

    Returns:
        The written path.
    """
    # Lazy imports: metrics is used by code that never plots, and matplotlib is slow to import.
    from matplotlib.figure import Figure
    from scipy.stats import norm

    if not curves:
        raise ValueError("plot_det needs at least one curve, got an empty mapping")
    p_min = 1e-4
    prepared = {}
    for name, curve in curves.items():
        if len(curve) < 2:
            raise ValueError(f"curve {name!r} must be (fpr, fnr[, thresholds]), got {len(curve)}")
        fpr = np.asarray(curve[0], dtype=np.float64)
        fnr = np.asarray(curve[1], dtype=np.float64)
        if fpr.ndim != 1 or fpr.shape != fnr.shape or fpr.size == 0:
            raise ValueError(
                f"curve {name!r}: fpr and fnr must be non-empty 1-D arrays of equal length, "
                f"got shapes {fpr.shape} and {fnr.shape}"
            )
        if not (np.all((fpr >= 0) & (fpr <= 1)) and np.all((fnr >= 0) & (fnr <= 1))):
            raise ValueError(f"curve {name!r}: fpr and fnr must lie in [0, 1]")
        prepared[name] = (np.clip(fpr, p_min, 1 - p_min), np.clip(fnr, p_min, 1 - p_min))

    # Axis range: from the tick below the smallest nonzero error rate (the resolution the trial
    # counts allow) up to 50 %, or 95 % when some curve never gets both error rates below 40 %
    # (a near-chance system).
    smallest = min(
        min(fpr[fpr > p_min].min(initial=0.5), fnr[fnr > p_min].min(initial=0.5))
        for fpr, fnr in prepared.values()
    )
    worst_eer = max(np.min(np.maximum(fpr, fnr)) for fpr, fnr in prepared.values())
    ticks = np.asarray(_DET_TICKS_PCT) / 100.0
    lo = ticks[ticks <= max(smallest, ticks[0])].max()
    hi = 0.5 if worst_eer <= 0.4 else 0.95
    shown = ticks[(ticks >= lo) & (ticks <= hi)]

    fig = Figure(figsize=(5.5, 5.5), dpi=120)
    ax = fig.add_subplot()
    for name, (fpr, fnr) in prepared.items():
        ax.plot(norm.ppf(fpr), norm.ppf(fnr), label=name, linewidth=1.5)
    ax.plot(norm.ppf([lo, hi]), norm.ppf([lo, hi]), "k--", linewidth=0.7, label="FNR = FPR")
    labels = [f"{100 * t:g}" for t in shown]
    ax.set_xticks(norm.ppf(shown), labels)
    ax.set_yticks(norm.ppf(shown), labels)
    ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
    ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
    ax.set_xlabel("False acceptance rate (FPR) [%]")
    ax.set_ylabel("Miss rate (FNR) [%]")
    ax.grid(True, linewidth=0.4, alpha=0.6)
    ax.legend(loc="lower left", fontsize="small")  # DET curves never reach there
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plateau(steps: list[int], values: list[float], fraction: float = 0.5) -> dict:
    """Has a validation curve flattened? A least-squares line through the points of the last
    ``fraction`` of training: the curve has flattened when the 95 % interval of its slope
    (t distribution) includes 0 or lies above it, i.e. no further decrease is detectable.

    Returns:
      {'flat': bool, 'slope_per_1k': EER points per 1000 steps, 'ci': (lo, hi), 'points': n}.
    """
    from scipy import stats

    steps_a = np.asarray(steps, np.float64)
    vals = np.asarray(values, np.float64)
    keep = steps_a >= steps_a.max() * (1.0 - fraction)
    x, y = steps_a[keep], vals[keep]
    if x.size < 3:
        return {"flat": False, "slope_per_1k": float("nan"), "ci": (np.nan, np.nan), "points": 0}
    fit = stats.linregress(x, y)
    t = stats.t.ppf(0.975, x.size - 2)
    lo, hi = fit.slope - t * fit.stderr, fit.slope + t * fit.stderr
    return {
        "flat": bool(hi >= 0),
        "slope_per_1k": 1000.0 * float(fit.slope),
        "ci": (1000.0 * float(lo), 1000.0 * float(hi)),
        "points": int(x.size),
    }
