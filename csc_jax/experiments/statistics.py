"""Comparisons of systems over several training seeds, with intervals that count both the
trial sample and the seed.

Every run of a comparison is scored on the same trials and the same corrupted audio (its
``eval/scores.npz``), so one bootstrap replicate's enrollment-speaker weights apply to every
run (the comparison is *paired* over trials). On top, each replicate draws the seeds of each
system with replacement (a two-level bootstrap): the interval of a system's mean EER, and of
the difference of two systems' mean EERs, then reflects both the finite trial list and the
training randomness.

**Rule for a finding.** "A beats B" at a condition only when the 95 % interval of
``mean EER(A) - mean EER(B)`` lies entirely below 0; "B beats A" when it lies above 0;
otherwise the difference is not a finding. With one seed per system the interval counts the
trial sample only, and the page says so.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from csc_jax import metrics

LEVEL = 0.95


@dataclasses.dataclass
class SeedScores:
    """One system's scores at one condition: one (n,) array per seed, on the same trials."""

    name: str
    per_seed: list[np.ndarray]
    seeds: list[int]


@dataclasses.dataclass
class Estimate:
    """A mean EER (or EER difference) in percent with its interval and per-seed values."""

    value: float
    ci: tuple[float, float]
    per_seed: list[float]

    @property
    def verdict(self) -> str:
        """For a difference A - B: 'A' (A better), 'B' (B better) or '=' (no finding)."""
        if self.ci[1] < 0:
            return "A"
        if self.ci[0] > 0:
            return "B"
        return "="


def compare(
    systems: list[SeedScores],
    labels: np.ndarray,
    clusters: np.ndarray | None,
    *,
    replicates: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Estimate], dict[tuple[str, str], Estimate]]:
    """Mean EER per system and every pairwise difference, two-level bootstrap intervals.

    Args:
      systems: the systems, each with its seeds' scores on the same trials.
      labels: (n,) 0/1 target labels; clusters: (n,) enrollment speakers (None: trials).
      replicates: bootstrap replicates; seed: the bootstrap's seed.

    Returns:
      ({name: mean EER %}, {(a, b): mean EER(a) - mean EER(b) in points}).
    """
    flat = [s for sys in systems for s in sys.per_seed]
    boot = metrics.bootstrap(flat, labels, clusters, replicates=replicates, seed=seed)
    rng = np.random.default_rng([seed, 0x5EED])
    reps = boot.eer_reps.shape[1]
    means, rep_means, start = {}, {}, 0
    for sys in systems:
        k = len(sys.per_seed)
        point = 100.0 * boot.eer[start : start + k]
        block = 100.0 * boot.eer_reps[start : start + k]  # (k, R)
        draw = rng.integers(0, k, size=(k, reps))  # seeds resampled per replicate
        rep_means[sys.name] = np.take_along_axis(block, draw, axis=0).mean(axis=0)
        means[sys.name] = Estimate(
            float(point.mean()),
            metrics.interval(rep_means[sys.name], LEVEL),
            [float(x) for x in point],
        )
        start += k
    diffs = {}
    for i, a in enumerate(systems):
        for b in systems[i + 1 :]:
            d = rep_means[a.name] - rep_means[b.name]
            diffs[(a.name, b.name)] = Estimate(
                means[a.name].value - means[b.name].value,
                metrics.interval(d, LEVEL),
                [],
            )
    return means, diffs


# The convergence test lives with the other pure statistics (csc_jax/metrics.py).
plateau = metrics.plateau
