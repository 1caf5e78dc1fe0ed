"""Tests for csc_jax.metrics against sklearn and brute-force references."""

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from csc_jax import metrics


def _sklearn_eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """Independent reference: interpolate the FNR = FPR crossing on sklearn's ROC points."""
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1.0 - tpr
    diff = fnr - fpr
    below = np.flatnonzero(diff < 0)[0]  # first point past the crossing
    above = below - 1
    alpha = diff[above] / (diff[above] - diff[below])
    return fpr[above] + alpha * (fpr[below] - fpr[above])


def _brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa) -> float:
    labels = np.asarray(labels, bool)
    n_tar, n_non = labels.sum(), (~labels).sum()
    best = np.inf
    for t in np.r_[np.inf, np.unique(scores)]:
        accept = scores >= t
        fnr = np.sum(~accept & labels) / n_tar
        fpr = np.sum(accept & ~labels) / n_non
        best = min(best, c_miss * p_target * fnr + c_fa * (1 - p_target) * fpr)
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


def _trials(seed: int, n: int = 600, separation: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    labels[:2] = [True, False]
    scores = rng.standard_normal(n) + separation * labels
    return scores, labels.astype(int)


@pytest.mark.parametrize("seed", range(6))
def test_eer_matches_sklearn_reference(seed):
    scores, labels = _trials(seed, separation=0.5 + seed * 0.4)
    value, threshold = metrics.eer(scores, labels)
    assert value == pytest.approx(_sklearn_eer(scores, labels), abs=1e-6)
    assert 0.0 < value < 0.5
    # The returned threshold is an operating point close to the EER.
    accept = scores >= threshold
    fpr = np.mean(accept[labels == 0])
    fnr = np.mean(~accept[labels == 1])
    assert abs(fpr - value) < 0.05 and abs(fnr - value) < 0.05


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("decimals", [0, 1])
def test_eer_with_heavy_ties_matches_sklearn_and_ignores_tie_order(seed, decimals):
    scores, labels = _trials(seed, n=400, separation=1.0)
    scores = np.round(scores, decimals)
    assert np.unique(scores).size < scores.size / 5  # really tied
    value, _ = metrics.eer(scores, labels)
    assert value == pytest.approx(_sklearn_eer(scores, labels), abs=1e-6)
    # Reordering trials (hence tied trials) must not change anything.
    perm = np.random.default_rng(seed + 100).permutation(scores.size)
    assert metrics.eer(scores[perm], labels[perm])[0] == pytest.approx(value, abs=1e-12)


def test_eer_simple_known_values():
    # All scores tied: the only ROC points are (0, 1) and (1, 0); the crossing is at 0.5.
    assert metrics.eer(np.zeros(10), np.r_[np.ones(3), np.zeros(7)])[0] == pytest.approx(0.5)
    # Perfectly inverted scores: every decision is wrong.
    assert metrics.eer([0.0, 1.0], [1, 0])[0] == pytest.approx(1.0)
    # Hand-checked: targets {0.9, 0.4}, non-targets {0.6, 0.1}; at t=0.6 FNR=FPR=0.5.
    value, threshold = metrics.eer([0.9, 0.4, 0.6, 0.1], [1, 1, 0, 0])
    assert value == pytest.approx(0.5)
    assert threshold == pytest.approx(0.6)


def test_eer_is_zero_for_perfect_separation():
    rng = np.random.default_rng(7)
    labels = np.r_[np.ones(50, bool), np.zeros(80, bool)]
    scores = np.r_[rng.uniform(1, 2, 50), rng.uniform(-2, 0.5, 80)]
    value, threshold = metrics.eer(scores, labels)
    assert value == 0.0
    assert threshold == pytest.approx(scores[:50].min())
    assert metrics.min_dcf(scores, labels)[0] == 0.0


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "p_target,c_miss,c_fa", [(0.01, 1.0, 1.0), (0.05, 1.0, 1.0), (0.5, 10.0, 1.0), (0.001, 1, 5)]
)
def test_min_dcf_matches_brute_force(seed, p_target, c_miss, c_fa):
    scores, labels = _trials(seed, n=300, separation=1.0 + seed)
    if seed % 2:
        scores = np.round(scores, 1)
    value, threshold = metrics.min_dcf(scores, labels, p_target, c_miss, c_fa)
    expected = _brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa)
    assert value == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert 0.0 <= value <= 1.0
    # The returned threshold attains the minimum.
    accept = scores >= threshold
    fnr = np.mean(~accept[labels == 1])
    fpr = np.mean(accept[labels == 0])
    cost = c_miss * p_target * fnr + c_fa * (1 - p_target) * fpr
    assert cost / min(c_miss * p_target, c_fa * (1 - p_target)) == pytest.approx(value)


def test_det_curve_points():
    scores = np.array([0.9, 0.4, 0.6, 0.1, 0.6])
    labels = np.array([True, True, False, False, True])
    fpr, fnr, thresholds = metrics.det_curve(scores, labels)
    np.testing.assert_array_equal(thresholds, [np.inf, 0.9, 0.6, 0.4, 0.1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(fnr, [1, 2 / 3, 1 / 3, 0, 0])
    sk_fpr, sk_tpr, sk_thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(fnr, 1 - sk_tpr)
    np.testing.assert_array_equal(thresholds[1:], sk_thr[1:])


def test_accepts_bool_int_float_labels_and_lists():
    scores, labels = _trials(3, n=100)
    expected = metrics.eer(scores, labels)
    assert metrics.eer(scores, labels.astype(bool)) == expected
    assert metrics.eer(scores, labels.astype(np.float32)) == expected
    assert metrics.eer(scores.tolist(), labels.tolist()) == expected
    assert metrics.eer(scores.astype(np.float32), labels)[0] == pytest.approx(expected[0], abs=1e-6)


@pytest.mark.parametrize(
    "scores,labels,match",
    [
        ([], [], "empty"),
        ([0.1, 0.2, 0.3], [1, 0], "same length.*3 scores and 2 labels"),
        ([0.1, 0.2, 0.3], [1, 0, 2], r"labels must be 1 \(target\) or 0.*\[2\].*index 2"),
        ([0.1, 0.2, 0.3], [1, 0, -1], "index 2"),
        ([0.1, 0.2], ["a", "b"], "labels must be bool or 0/1"),
        ([0.1, 0.2, 0.3], [1, 1, 1], "1 target.*0 non-target|3 target.*0 non-target"),
        ([0.1, 0.2, 0.3], [0, 0, 0], "0 target.*3 non-target"),
        ([0.1, np.nan, 0.3, np.nan], [1, 0, 1, 0], "2 non-finite.*2 NaN.*first at index 1"),
        ([0.1, 0.2, np.inf], [1, 0, 1], "1 non-finite.*1 Inf.*first at index 2"),
        ([[0.1, 0.2]], [[1, 0]], "1-D"),
        (["x", "y"], [1, 0], "real numbers"),
    ],
)
def test_bad_inputs_raise_helpful_errors(scores, labels, match):
    for fn in (metrics.eer, metrics.min_dcf, metrics.det_curve):
        with pytest.raises(ValueError, match=match):
            fn(scores, labels)


def test_min_dcf_rejects_bad_costs():
    with pytest.raises(ValueError, match="p_target"):
        metrics.min_dcf([0.1, 0.2], [1, 0], p_target=1.0)
    with pytest.raises(ValueError, match="c_miss"):
        metrics.min_dcf([0.1, 0.2], [1, 0], c_miss=0.0)


def test_plot_det_writes_png(tmp_path):
    curves = {}
    for name, sep in (("weak", 1.0), ("strong", 3.0)):
        scores, labels = _trials(0, n=500, separation=sep)
        fpr, fnr, _ = metrics.det_curve(scores, labels)
        curves[name] = (fpr, fnr)
    curves["as returned"] = metrics.det_curve(*_trials(1, n=200))
    out = metrics.plot_det(curves, tmp_path / "sub" / "det.png", title="DET")
    data = out.read_bytes()
    assert out == tmp_path / "sub" / "det.png"
    assert len(data) > 5000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one curve"):
        metrics.plot_det({}, tmp_path / "empty.png")
    with pytest.raises(ValueError, match="equal length"):
        metrics.plot_det({"bad": (np.zeros(3), np.zeros(4))}, tmp_path / "bad.png")


def test_metrics_module_imports_only_numpy():
    import subprocess
    import sys

    code = (
        "import sys, csc_jax; before = set(sys.modules); import csc_jax.metrics; "
        "print(sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] in ('jax', 'matplotlib', 'scipy')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=__import__("pathlib").Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


# ---------------------------------------------------------------- bootstrap intervals


def _gaussian_trials(rng, n_target: int, n_non: int, d: float):
    labels = np.r_[np.ones(n_target, int), np.zeros(n_non, int)]
    scores = rng.standard_normal(labels.size) + d * labels
    return scores, labels


def test_bootstrap_point_estimates_equal_the_plain_metrics():
    scores, labels = _trials(3, n=500)
    boot = metrics.bootstrap([scores, -scores], labels, replicates=50, seed=1)
    assert boot.eer[0] == pytest.approx(metrics.eer(scores, labels)[0], abs=1e-12)
    assert boot.eer[1] == pytest.approx(metrics.eer(-scores, labels)[0], abs=1e-12)
    assert boot.min_dcf[0] == pytest.approx(metrics.min_dcf(scores, labels)[0], abs=1e-12)
    assert boot.eer_reps.shape == (2, 50) and boot.unit == "trial"


def test_bootstrap_interval_covers_the_true_eer_about_95_percent_of_the_time():
    """Equal-variance Gaussian scores with separation d have EER = Phi(-d/2) exactly; over
    seeded repetitions the 95 % trial-bootstrap interval covers it in roughly 95 % of them."""
    from scipy.stats import norm

    d = 1.5
    true_eer = float(norm.cdf(-d / 2))
    rng = np.random.default_rng(2024)
    hits, reps = 0, 200
    for i in range(reps):
        scores, labels = _gaussian_trials(rng, 150, 300, d)
        boot = metrics.bootstrap([scores], labels, replicates=400, seed=i)
        lo, hi = metrics.interval(boot.eer_reps[0])
        hits += lo <= true_eer <= hi
    coverage = hits / reps
    # Binomial sd at p = 0.95 over 200 repetitions is 1.5 points; the percentile bootstrap
    # of an interpolated EER is slightly liberal at this size.
    assert 0.88 <= coverage <= 0.99, coverage


def test_speaker_clusters_widen_the_interval_when_trials_share_speakers():
    """With a per-speaker score offset, trials of one enrollment speaker are correlated: the
    speaker bootstrap interval is wider than the trial bootstrap's."""
    rng = np.random.default_rng(5)
    speakers = np.repeat(np.arange(30), 40)
    labels = rng.random(speakers.size) < 0.4
    offset = rng.standard_normal(30)[speakers]
    scores = rng.standard_normal(speakers.size) * 0.5 + 1.2 * labels + offset
    by_trial = metrics.bootstrap([scores], labels, replicates=300, seed=0)
    by_speaker = metrics.bootstrap([scores], labels, speakers, replicates=300, seed=0)
    assert by_speaker.unit == "speaker"
    width = lambda b: np.subtract(*metrics.interval(b.eer_reps[0])[::-1])  # noqa: E731
    assert width(by_speaker) > 1.5 * width(by_trial)


def test_paired_difference_of_a_system_with_itself_is_exactly_zero():
    scores, labels = _trials(4, n=800)
    speakers = np.arange(800) % 37
    boot = metrics.bootstrap([scores, scores.copy()], labels, speakers, replicates=200, seed=3)
    diff = boot.eer_reps[0] - boot.eer_reps[1]
    assert np.all(diff == 0.0)
    assert metrics.interval(diff) == (0.0, 0.0)


def test_paired_interval_is_narrower_than_the_unpaired_one():
    """Two systems with correlated errors: the paired difference interval is tighter than
    the difference of independent intervals, and it excludes 0 for a real improvement."""
    rng = np.random.default_rng(9)
    labels = rng.random(3000) < 0.5
    shared = rng.standard_normal(3000)
    a = shared + 1.6 * labels
    b = shared + 1.3 * labels + 0.3 * rng.standard_normal(3000)
    boot = metrics.bootstrap([a, b], labels, replicates=500, seed=0)
    lo, hi = metrics.interval(boot.eer_reps[0] - boot.eer_reps[1])
    assert hi < 0  # a is better and the paired interval says so
    a_lo, a_hi = metrics.interval(boot.eer_reps[0])
    b_lo, b_hi = metrics.interval(boot.eer_reps[1])
    assert hi - lo < (a_hi - a_lo) + (b_hi - b_lo)


def test_bootstrap_is_deterministic_per_seed_and_validates_inputs():
    scores, labels = _trials(1, n=300)
    a = metrics.bootstrap([scores], labels, replicates=30, seed=7)
    b = metrics.bootstrap([scores], labels, replicates=30, seed=7)
    np.testing.assert_array_equal(a.eer_reps, b.eer_reps)
    with pytest.raises(ValueError, match="clusters must be"):
        metrics.bootstrap([scores], labels, np.arange(5), replicates=3)
    with pytest.raises(ValueError, match="replicates must be >= 1"):
        metrics.bootstrap([scores], labels, replicates=0)
