"""The evaluation pipeline on literal data: in-memory sources (releasehealth.collectors.memory) behind the
same wiring as real ones, a release built step by step, judged from deploy detection to recommendation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from releasehealth import wiring
from releasehealth.collectors.memory import LoggedLine, MemoryLogSource, MemoryMetricSource
from releasehealth.config import catalogue_for
from releasehealth.evaluate import evaluate_release
from releasehealth.model import Action, Classification, LogLine, LogSettings, Series
from releasehealth.verdicts import Evaluation

SERVICE = "checkout"
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DEPLOY = T0 + timedelta(hours=2)  # 1.1 replaces 1.0
NOW = T0 + timedelta(hours=3)
STEP = 60.0
BOUNDS = ("0.1", "0.25", "0.5", "+Inf")


def _steps(start: datetime, end: datetime) -> np.ndarray:
    return np.arange(start.timestamp() + STEP, end.timestamp() + STEP / 2, STEP)


def _series(version: str, steps: np.ndarray, values: np.ndarray | float, **labels: str) -> Series:
    return Series({"service": SERVICE, "version": version, **labels}, steps, np.broadcast_to(values, steps.shape).astype(float))


def _metrics(errors_per_step: float) -> MemoryMetricSource:
    """Two releases of 600 requests a minute; the candidate fails `errors_per_step` of them a minute."""
    releases = {"1.0": (T0, DEPLOY, 3.0), "1.1": (DEPLOY, NOW, errors_per_step)}
    out: dict[str, list[Series]] = {name: [] for name in ("requests", "latency_buckets", "memory", "cpu_per_request")}
    seen: dict[str, list[Series]] = {"first_seen": [], "last_seen": []}
    rng = np.random.default_rng(1)
    for version, (start, end, errors) in releases.items():
        steps = _steps(start, end)
        failed = rng.poisson(errors, steps.size)  # requests by status code, as the generic preset asks
        out["requests"] += [_series(version, steps, 600.0 - failed, code="200"), _series(version, steps, failed, code="500")]
        for le, share in zip(BOUNDS, (0.5, 0.9, 0.99, 1.0), strict=True):
            out["latency_buckets"].append(_series(version, steps, 600.0 * share, le=le))
        out["memory"].append(_series(version, steps, 5e8 + rng.normal(0, 1e6, steps.size)))
        out["cpu_per_request"].append(_series(version, steps, 0.01 + rng.normal(0, 1e-4, steps.size)))
        seen["first_seen"].append(_series(version, np.array([NOW.timestamp()]), steps[0]))
        seen["last_seen"].append(_series(version, np.array([NOW.timestamp()]), steps[-1]))
    return MemoryMetricSource(out | seen)


def _logs(new_errors: int) -> MemoryLogSource:
    """A steady warn line in both releases; `new_errors` lines of an exception the candidate brings."""
    lines = []
    for version, start, end in (("1.0", T0, DEPLOY), ("1.1", DEPLOY, NOW)):
        steps = _steps(start, end)
        lines += [LoggedLine(SERVICE, version, LogLine(float(t) - 30, "warn", f"Cache miss for key {i}")) for i, t in enumerate(steps)]
        lines += [LoggedLine(SERVICE, version, LogLine(float(t) - 20, "info", "request served")) for t in steps for _ in range(20)]
    candidate = _steps(DEPLOY + timedelta(minutes=6), NOW)[:new_errors]
    lines += [
        LoggedLine(SERVICE, "1.1", LogLine(float(t) - 10, "error", f"KeyError: 'sku-{i}' in pricing.py", "KeyError"))
        for i, t in enumerate(candidate)
    ]
    return MemoryLogSource(lines)


def _evaluate(errors_per_step: float, new_errors: int) -> Evaluation:
    catalogue = catalogue_for([SERVICE], logs=LogSettings(index="logs"), path="<literal>")
    wired = wiring.assemble(catalogue, metrics=_metrics(errors_per_step), logs=_logs(new_errors))
    return evaluate_release(wired.sources, catalogue.service(SERVICE), catalogue.policy, now=NOW)


def test_a_release_like_the_one_it_replaced_is_promoted() -> None:
    evaluation = _evaluate(errors_per_step=3.0, new_errors=0)

    assert evaluation.candidate is not None and evaluation.candidate.version == "1.1"
    assert evaluation.baseline is not None and evaluation.baseline.version == "1.0"
    assert evaluation.recommendation.action is Action.PROMOTE, evaluation.recommendation.reason


def test_more_errors_and_a_new_exception_roll_the_release_back_naming_both() -> None:
    evaluation = _evaluate(errors_per_step=30.0, new_errors=40)

    assert evaluation.recommendation.action is Action.ROLLBACK
    assert evaluation.score is not None
    failing = {v.metric for v in evaluation.score.verdicts if v.classification is Classification.HIGH}
    assert {"error_ratio", "log_signatures"} <= failing
    assert evaluation.logs is not None
    (new,) = [s for s in evaluation.logs.signatures if s.failing]
    window = evaluation.candidate_window
    assert window is not None
    inside = sum(window.start.timestamp() <= line.line.timestamp < window.end.timestamp()
                 for line in _logs(40).lines if line.line.level == "error")
    assert new.error_type == "KeyError" and new.candidate_count == inside > 0
    assert new.template in evaluation.recommendation.reason
