"""Honest statistics for the modality comparison: a hierarchical, paired bootstrap.

Every score of a run is a function of *sums over resampling units* (for DeepFinder the
test tomogram's ground-truth particles with their surroundings, for the classifier the
test boxes; see :mod:`faket.evaluation.resampling`): each run gives a table ``F`` of
per-unit features, and a metric maps the column sums ``1ᵀF`` to a number (recall =
found / counted, F1 from confusion counts, ...). One bootstrap replicate then

1. draws the test units with replacement (multinomial counts ``w``), the *same* draw for
   every modality and seed, because every model is tested on the same test tomogram;
2. computes each run's metric from the weighted sums ``wᵀF``;
3. draws, independently per modality, as many seeds as it has, with replacement, and
   averages the metric over them.

The 95 % interval is the 2.5-97.5 percentile range of that average over the replicates
(percentile bootstrap). A paired difference ``a - b`` uses, per replicate, the same
unit draw for both modalities, so the test tomogram's particular particles cancel out
and only the difference between the training data (and the seeds) remains. Resampling
both levels makes the intervals honest about both sources of variation, at the price of
being somewhat conservative (the particle-level variance is counted within each seed's
number and again through the seed average).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from faket.errors import FaketError

#: Metric functions: column sums ``(R, d)`` -> value per row ``(R,)``.
Statistic = Callable[[np.ndarray], dict[str, np.ndarray]]
#: Replicates computed at once (bounds the memory of the weight matrix).
_BLOCK = 256


@dataclass
class Estimate:
    """One number with its uncertainty.

    Attributes
    ----------
    mean : float
        Mean over seeds of the full-data values.
    ci_low, ci_high : float
        Bootstrap interval (``level``, percentile method).
    seed_std : float
        Sample standard deviation over seeds (ddof = 1; 0 with one seed).
    seeds : list of float
        The full-data value of each seed.
    """

    mean: float
    ci_low: float
    ci_high: float
    seed_std: float = 0.0
    seeds: list[float] = field(default_factory=list)

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without an interval)."""
        return (self.ci_high - self.ci_low) / 2

    def as_dict(self) -> dict:
        """JSON-ready fields (NaN -> None)."""
        return {
            "mean": _clean(self.mean),
            "ci_low": _clean(self.ci_low),
            "ci_high": _clean(self.ci_high),
            "seed_std": _clean(self.seed_std),
            "seeds": [_clean(v) for v in self.seeds],
        }


def _clean(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


@dataclass
class BootstrapResult:
    """Estimates per modality and metric, and per paired difference and metric."""

    modalities: dict[str, dict[str, Estimate]]
    differences: dict[str, dict[str, Estimate]]
    replicates: int
    level: float
    seed: int


def hierarchical_bootstrap(
    runs: Mapping[str, Sequence[np.ndarray]],
    statistic: Statistic,
    *,
    differences: Sequence[tuple[str, str]] = (),
    replicates: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Bootstrap every metric of every modality, and paired differences.

    Parameters
    ----------
    runs : modality -> one ``(n_units, d)`` feature table per seed; every table has the
        same units in the same order.
    statistic : maps column sums ``(R, d)`` to ``{metric: (R,) values}``.
    differences : ``(a, b)`` pairs; those whose two modalities are in ``runs`` are done.
    replicates : bootstrap replicates.
    level : interval coverage.
    seed : seeds the resampling.

    Returns
    -------
    BootstrapResult
    """
    if not runs or any(len(tables) == 0 for tables in runs.values()):
        raise FaketError("the bootstrap needs at least one run per modality")
    if not 0 < level < 1:
        raise FaketError(f"the interval level must lie between 0 and 1, got {level}")
    n_units = {t.shape[0] for tables in runs.values() for t in tables}
    if len(n_units) != 1:
        raise FaketError("every run must be scored on the same test units")
    n = n_units.pop()
    unit_stream, seed_stream = np.random.SeedSequence(seed).spawn(2)
    full = {
        m: [statistic(t.sum(axis=0, dtype=np.float64)[None]) for t in ts] for m, ts in runs.items()
    }
    metrics = list(next(iter(full.values()))[0])
    per_seed = _replicate_values(runs, statistic, metrics, n, replicates, unit_stream)
    seed_rng = np.random.default_rng(seed_stream)
    averaged = {m: _seed_average(values, seed_rng) for m, values in per_seed.items()}
    tail = 100 * (1 - level) / 2
    result = BootstrapResult({}, {}, replicates, level, seed)
    for modality, values in full.items():
        result.modalities[modality] = {}
        for metric in metrics:
            seeds = [float(v[metric][0]) for v in values]
            low, high = _percentiles(averaged[modality][metric], tail)
            spread = float(np.std(seeds, ddof=1)) if len(seeds) > 1 else 0.0
            result.modalities[modality][metric] = Estimate(
                float(np.mean(seeds)), low, high, spread, seeds
            )
    for a, b in differences:
        if a not in runs or b not in runs:
            continue
        estimates = {}
        for metric in metrics:
            delta = averaged[a][metric] - averaged[b][metric]
            mean = result.modalities[a][metric].mean - result.modalities[b][metric].mean
            estimates[metric] = Estimate(mean, *_percentiles(delta, tail))
        result.differences[f"{a}-{b}"] = estimates
    return result


def _replicate_values(runs, statistic, metrics, n, replicates, stream):
    """``{modality: {metric: (replicates, n_seeds)}}``: each run's metric under each
    unit draw; one draw per replicate, shared by every modality and seed."""
    draws = np.random.default_rng(stream)
    out = {
        m: {k: np.empty((replicates, len(tables))) for k in metrics} for m, tables in runs.items()
    }
    for start in range(0, replicates, _BLOCK):
        count = min(_BLOCK, replicates - start)
        weights = draws.multinomial(n, np.full(n, 1.0 / n), size=count).astype(np.float64)
        for modality, tables in runs.items():
            for column, table in enumerate(tables):
                values = statistic(weights @ np.asarray(table, dtype=np.float64))
                for metric in metrics:
                    out[modality][metric][start : start + count, column] = values[metric]
    return out


def _seed_average(values: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per replicate: the mean over a with-replacement draw of the seeds (one draw per
    replicate, shared by the metrics of a modality)."""
    first = next(iter(values.values()))
    replicates, n_seeds = first.shape
    chosen = rng.integers(0, n_seeds, size=(replicates, n_seeds))
    return {m: np.take_along_axis(v, chosen, axis=1).mean(axis=1) for m, v in values.items()}


def _percentiles(values: np.ndarray, tail: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def disjoint_seed_sets(seeds: Sequence[int]) -> tuple[list[int], list[int]]:
    """Two disjoint halves of the seeds, alternating (0, 2, 4... and 1, 3, 5...)."""
    ordered = list(seeds)
    return ordered[0::2], ordered[1::2]


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation (ties get mean ranks); None when undefined (fewer than
    three values or a constant list)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return float(spearmanr(x[ok], y[ok]).statistic)


def seed_set_rank_correlation(
    per_seed: Mapping[str, Mapping[int, float]], seeds: Sequence[int]
) -> dict:
    """How stable the modality ranking is: Spearman correlation between the modality
    means over two disjoint seed sets.

    Parameters
    ----------
    per_seed : modality -> seed -> value.
    seeds : the experiment's seeds.

    Returns
    -------
    dict
        ``seed_sets`` (the two lists), ``spearman`` (None when undefined: fewer than two
        seeds or three modalities), ``means`` (modality -> [mean on set 1, on set 2]).
    """
    first, second = disjoint_seed_sets(seeds)
    means = {}
    for modality, values in per_seed.items():
        halves = [[values[s] for s in part if s in values] for part in (first, second)]
        if all(halves):
            means[modality] = [float(np.mean(h)) for h in halves]
    rho = spearman([v[0] for v in means.values()], [v[1] for v in means.values()])
    return {"seed_sets": [first, second], "spearman": rho, "means": means}


def seeds_for_half_width(estimate: Estimate, target: float) -> int | None:
    """Seeds an interval like ``estimate``'s would need to be at most ±``target`` wide.

    The estimate assumes the spread between seeds dominates the interval and stays as
    measured, so that the half-width shrinks as 1/√seeds: ``ceil(n (h / target)²)`` for
    ``n`` seeds and half-width ``h`` (``n`` itself when the interval is narrow enough).
    That overestimates a little where test particles contribute to the width, since
    more seeds do not shrink their part.

    Parameters
    ----------
    estimate : a bootstrap estimate over ``len(estimate.seeds)`` seeds.
    target : wanted half-width (same units as the metric, e.g. 0.04 of F1).

    Returns
    -------
    int or None
        None when it cannot be said: fewer than two seeds (no seed spread measured) or
        no finite interval.
    """
    if target <= 0:
        raise FaketError(f"target half-width must be positive, not {target}")
    n, half_width = len(estimate.seeds), estimate.half_width
    if n < 2 or not np.isfinite(half_width):
        return None
    if half_width <= target:
        return n
    return int(np.ceil(n * (half_width / target) ** 2 - 1e-9))
