"""Log signatures on literal messages: masking, mining, NEW/INCREASED/KNOWN/GONE, the logs verdict."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from releasehealth.config import log_metrics
from releasehealth.model import Classification, LogLine, Series, SignatureStatus
from releasehealth.scoring.logs import classify_signatures
from releasehealth.scoring.signatures import compare, mine, rise_p_value
from releasehealth.verdicts import LogSamples, SideTotals

ALPHA = 0.0025
LOG_RATE, SIGNATURES = log_metrics()


def _lines(text: str, count: int, level: str = "error", error_type: str = "") -> list[LogLine]:
    return [LogLine(float(i), level, text.format(i=i, j=i * 7919 % 1000), error_type) for i in range(count)]


def _totals(sampled: int, exposure: float = 100_000.0, population: int | None = None) -> SideTotals:
    return SideTotals(sampled, sampled if population is None else population, exposure)


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("Timeout after 812ms calling 10.1.2.3:8080", "Timeout after <DURATION> calling <IP>"),
        ("order 3f2b6c1e-0a4d-4e5f-9a8b-1c2d3e4f5a6b failed", "order <UUID> failed"),
        ("read /var/lib/app/data.db failed", "read <PATH> failed"),
        ("pool 43/100 exhausted", "pool <NUM>/<NUM> exhausted"),
        ("checksum deadbeef12 mismatch", "checksum <HEX> mismatch"),
    ],
)
def test_variable_parts_are_masked(message: str, template: str) -> None:
    other = message.replace("812", "9000").replace("3f2b", "aaaa").replace("43", "7").replace("deadbeef12", "0badc0de99")
    clusters = mine([LogLine(0, "error", message)], [LogLine(1, "error", other)])
    assert list(clusters) == [template]


def test_a_new_frequent_error_is_new_and_credible() -> None:
    known = _lines("Timeout after {i}ms", 50)
    new = _lines("NullPointerException at Foo.java:{j}", 40, error_type="NPE")
    signatures = compare(known, known + new, (_totals(50), _totals(90)), tolerance=1.0, alpha=ALPHA)
    assert [s.status for s in signatures] == [SignatureStatus.NEW, SignatureStatus.KNOWN]
    first = signatures[0]
    assert first.credible and first.error_type == "NPE" and first.candidate_count == 40
    assert first.candidate_rate == pytest.approx(0.4) and first.baseline_rate == 0
    assert len(first.examples) == 3


def test_a_rare_new_line_is_new_but_not_credible() -> None:
    signatures = compare(_lines("ok {i}", 30), _lines("ok {i}", 30) + _lines("odd thing", 2), (_totals(30), _totals(32)),
                         tolerance=1.0, alpha=ALPHA)
    new = next(s for s in signatures if s.status is SignatureStatus.NEW)
    assert not new.credible


def test_a_sixfold_rise_is_increased_and_a_small_drift_known() -> None:
    baseline = _lines("Timeout after {i}ms", 30) + _lines("Slow query {i}", 30, "warn")
    candidate = _lines("Timeout after {i}ms", 180) + _lines("Slow query {i}", 33, "warn")
    signatures = {s.template: s for s in compare(baseline, candidate, (_totals(60), _totals(213)), tolerance=1.0, alpha=ALPHA)}
    assert signatures["Timeout after <DURATION>"].status is SignatureStatus.INCREASED
    assert signatures["Slow query <NUM>"].status is SignatureStatus.KNOWN


def test_a_signature_only_in_the_baseline_is_gone() -> None:
    signatures = compare(_lines("fixed bug {i}", 10) + _lines("ok {i}", 5), _lines("ok {i}", 5), (_totals(15), _totals(5)),
                         tolerance=1.0, alpha=ALPHA)
    assert {s.template: s.status for s in signatures}["fixed bug <NUM>"] is SignatureStatus.GONE


def test_sampled_counts_are_scaled_to_the_window() -> None:
    signatures = compare(_lines("a {i}", 10), _lines("a {i}", 10), (_totals(10, population=100), _totals(10, population=50)),
                         tolerance=1.0, alpha=ALPHA)
    assert (signatures[0].baseline_count, signatures[0].candidate_count) == (100, 50)


def test_the_exact_rate_test_at_zero_and_equal_exposure() -> None:
    assert rise_p_value(0, 8, 1.0, 1.0, ratio=1.0) == pytest.approx(0.5**8)
    assert rise_p_value(10, 10, 1.0, 1.0, ratio=2.0) > 0.5


def _sides(lines: float) -> tuple[dict, dict]:
    series = Series({"level": "error"}, np.array([60.0]), np.array([lines]))
    return {"lines": [series]}, {"lines": [series]}


KEY_ERROR = "KeyError: {j} in rules.py"
STEADY = "Cache miss for key {j}"


def _samples(
    new: int, *, level: str = "error", baseline_new: int = 0, not_a_risk: frozenset[str] = frozenset()
) -> LogSamples:
    """A baseline of 30 steady warn lines, a candidate with the same and `new` KeyError lines (the
    baseline with `baseline_new` of them), both windows over 100,000 requests."""
    baseline = _lines(STEADY, 30, "warn") + _lines(KEY_ERROR, baseline_new, level, "KeyError")
    candidate = _lines(STEADY, 30, "warn") + _lines(KEY_ERROR, new, level, "KeyError")
    return LogSamples(
        baseline=tuple(baseline), candidate=tuple(candidate),
        totals=(_totals(len(baseline)), _totals(len(candidate))), not_a_risk=not_a_risk,
    )


def test_a_credible_new_error_signature_fails_naming_its_template() -> None:
    verdict = classify_signatures(SIGNATURES, _samples(40), *_sides(500), alpha=ALPHA)
    (failing,) = [s for s in verdict.signatures if s.failing]
    assert failing.status is SignatureStatus.NEW and failing.credible
    assert verdict.classification is Classification.HIGH and verdict.critical
    assert f'NEW error signature "{failing.template}" (KeyError): 40 lines' in verdict.reason


@pytest.mark.parametrize(
    "samples",
    [
        _samples(40, not_a_risk=frozenset({"KeyError: <NUM> in rules.py"})),  # marked not a risk
        _samples(5),  # too few lines to be credible: 0.5^5 > alpha
        _samples(40, level="warn"),  # not an error
        _samples(40, baseline_new=40),  # as frequent as before: KNOWN
    ],
    ids=["not-a-risk", "not-credible", "warn", "known"],
)
def test_ignored_rare_warn_or_known_signatures_pass(samples: LogSamples) -> None:
    verdict = classify_signatures(SIGNATURES, samples, *_sides(500), alpha=ALPHA)
    assert verdict.classification is Classification.PASS, verdict.reason
    assert not [s for s in verdict.signatures if s.failing]


def test_a_credible_new_signature_under_min_count_lines_passes() -> None:
    rare = dataclasses.replace(SIGNATURES, min_count=50)
    verdict = classify_signatures(rare, _samples(40), *_sides(500), alpha=ALPHA)
    assert verdict.classification is Classification.PASS
    assert any(s.status is SignatureStatus.NEW and s.credible for s in verdict.signatures)


def test_no_log_lines_at_all_is_nodata() -> None:
    verdict = classify_signatures(SIGNATURES, _samples(0), *_sides(0), alpha=ALPHA)
    assert verdict.classification is Classification.NODATA and "are this version's logs shipped" in verdict.reason


def test_tarones_rule_gives_alpha_only_to_the_signatures_that_could_fail() -> None:
    from releasehealth.scoring.signatures import tarone_divisor

    # Eight signatures; only one could ever reach a p-value below alpha / k: alpha is not divided.
    assert tarone_divisor([1e-6] + [0.47] * 7, 0.002) == 1
    # Three could: Bonferroni over three.
    assert tarone_divisor([1e-9, 1e-9, 1e-9, 0.5, 0.5], 0.01) == 3
    # When every one could, it is Bonferroni over all of them; none at all divides by one.
    assert tarone_divisor([0.0] * 5, 0.01) == 5 and tarone_divisor([], 0.01) == 1
