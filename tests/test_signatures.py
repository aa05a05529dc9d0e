"""Log signatures on literal messages: masking, mining, NEW/INCREASED/KNOWN/GONE, the logs verdict."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from releasehealth.config import log_metrics
from releasehealth.model import Classification, LogLine, Series, SignatureStatus
from releasehealth.scoring.logs import classify_signatures
from releasehealth.scoring.signatures import compare, mine, rise_p_value
from releasehealth.verdicts import LogSamples, SideTotals, blast_radius

ALPHA = 0.0025
LOG_RATE, SIGNATURES = log_metrics()


def _lines(text: str, count: int, level: str = "error", error_type: str = "") -> list[LogLine]:
    return [LogLine(float(i), level, text.format(i=i, j=i * 7919 % 1000), error_type) for i in range(count)]


def _totals(sampled: int, exposure: float = 100_000.0, population: int | None = None) -> SideTotals:
    return SideTotals(sampled, sampled if population is None else population, exposure)


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("Timeout after 812ms calling 10.1.2.3:8080", "Timeout after <*> calling <*>"),
        ("order 3f2b6c1e-0a4d-4e5f-9a8b-1c2d3e4f5a6b failed", "order <*> failed"),
        ("pool 43/100 exhausted", "pool <*> exhausted"),
        ("checksum deadbeef12 mismatch", "checksum <*> mismatch"),
    ],
)
def test_variable_parts_are_masked(message: str, template: str) -> None:
    other = message.replace("812", "9000").replace("3f2b", "aaaa").replace("43", "7").replace("deadbeef12", "0badc0de99")
    clusters = mine([LogLine(0, "error", message)], [LogLine(1, "error", other)])
    assert list(clusters) == [template]


def test_a_new_frequent_error_is_new_and_credible() -> None:
    known = _lines("Timeout after {i}ms", 50)
    new = _lines("NullPointerException for order {j}", 40, error_type="NPE")
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
    assert signatures["Timeout after <*>"].status is SignatureStatus.INCREASED
    assert signatures["Slow query <*>"].status is SignatureStatus.KNOWN


def test_a_signature_only_in_the_baseline_is_gone() -> None:
    signatures = compare(_lines("fixed bug {i}", 10) + _lines("ok {i}", 5), _lines("ok {i}", 5), (_totals(15), _totals(5)),
                         tolerance=1.0, alpha=ALPHA)
    assert {s.template: s.status for s in signatures}["fixed bug <*>"] is SignatureStatus.GONE


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
        _samples(40, not_a_risk=frozenset({"KeyError: <*> in rules.py"})),  # marked not a risk
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


# ---- statements: identity, vanishing, rewording ---------------------------------------------------------


def _steady(text: str, minutes: int, per_minute: int, level: str = "info", origin: str = "", start: float = 0.0) -> list[LogLine]:
    """A statement logged `per_minute` times a minute for `minutes` minutes."""
    return [
        LogLine(start + 60.0 * m + k * 60.0 / per_minute, level, text.format(j=(m * per_minute + k) * 7919 % 1000), "", origin)
        for m in range(minutes) for k in range(per_minute)
    ]


INFO_TOTALS = (SideTotals(0, 0, 100_000.0, info_sampled=900, info_population=900), SideTotals(0, 0, 100_000.0, info_sampled=900, info_population=900))


def test_two_statements_with_one_text_are_two_signatures() -> None:
    near = _lines("Cannot find train {j}", 20) + [dataclasses.replace(line, origin="TravelServiceImpl#query (TravelServiceImpl.java:451)") for line in _lines("Cannot find train {j}", 20)]
    signatures = compare(near, near, (_totals(40), _totals(40)), tolerance=1.0, alpha=ALPHA)
    assert sorted(s.template for s in signatures) == [
        "Cannot find train <*>", "[TravelServiceImpl#query (TravelServiceImpl.java:451)] Cannot find train <*>",
    ]


def test_a_steady_statement_that_stops_vanished() -> None:
    reserved = _steady("Reserved seat {j}", 30, 30, origin="seat#reserve (Seats.java:88)")
    other = _steady("Heartbeat {j}", 30, 0 + 1)
    baseline, candidate = reserved + other, other
    signatures = compare(baseline, candidate, INFO_TOTALS, tolerance=1.0, alpha=ALPHA)
    (gone,) = [s for s in signatures if s.status is SignatureStatus.VANISHED]
    assert gone.template == "[seat#reserve (Seats.java:88)] Reserved seat <*>" and gone.credible
    assert gone.p_value is not None and gone.p_value < 1e-100 and gone.candidate_count == 0


def test_a_burst_that_ends_is_gone_not_vanished() -> None:
    burst = _steady("Rebalancing partition {j}", 2, 200)  # two minutes of a 30-minute window
    other = _steady("Heartbeat {j}", 30, 1)
    signatures = compare(burst + other, other, INFO_TOTALS, tolerance=1.0, alpha=ALPHA)
    assert {s.template: s.status for s in signatures}["Rebalancing partition <*>"] is SignatureStatus.GONE


def test_a_reworded_statement_is_gone_replaced_by_the_new_one() -> None:
    before = _steady("Reserved seat {j}", 30, 30, origin="seat#reserve (Seats.java:88)")
    after = _steady("Seat {j} reserved for the order", 30, 30, origin="seat#reserve (Seats.java:90)")
    signatures = {s.template: s for s in compare(before, after, INFO_TOTALS, tolerance=1.0, alpha=ALPHA)}
    old = signatures["[seat#reserve (Seats.java:88)] Reserved seat <*>"]
    assert old.status is SignatureStatus.GONE and old.replaced_by == "[seat#reserve (Seats.java:90)] Seat <*> reserved for the order"


def _vanishing() -> LogSamples:
    reserved = _steady("Reserved seat {j}", 30, 30, origin="seat#reserve (Seats.java:88)")
    other = _steady("Heartbeat {j}", 30, 1)
    return LogSamples(baseline=tuple(reserved + other), candidate=tuple(other), totals=INFO_TOTALS)


@pytest.mark.parametrize(("setting", "label", "critical"), [("hold", Classification.HIGH, False), ("rollback", Classification.HIGH, True), ("show", Classification.PASS, True)])
def test_a_vanished_statement_holds_by_default_as_configured(setting: str, label: Classification, critical: bool) -> None:
    spec = dataclasses.replace(SIGNATURES, vanished=setting)
    verdict = classify_signatures(spec, _vanishing(), *_sides(500), alpha=ALPHA)
    assert verdict.classification is label and verdict.critical is critical
    if label is Classification.HIGH:
        assert 'VANISHED info statement "[seat#reserve (Seats.java:88)] Reserved seat <*>": 900 lines' in verdict.reason
    assert ("holds, never rolls back" in verdict.reason) is (setting == "hold")


def test_info_lines_are_scaled_by_their_own_sample() -> None:
    lines = _steady("Request {j} done", 10, 10)
    totals = (SideTotals(5, 50, 1000.0, info_sampled=100, info_population=1000),) * 2
    (signature,) = compare(lines, lines, (totals[0], totals[1]), tolerance=1.0, alpha=ALPHA)
    assert signature.baseline_count == 1000 and signature.level == "info"


def test_a_new_info_statement_is_shown_never_failing() -> None:
    other = _steady("Heartbeat {j}", 30, 1)
    samples = LogSamples(baseline=tuple(other), candidate=tuple(other + _steady("Cache warmed {j}", 30, 30)), totals=INFO_TOTALS)
    verdict = classify_signatures(SIGNATURES, samples, *_sides(500), alpha=ALPHA)
    assert verdict.classification is Classification.PASS
    assert any(s.status is SignatureStatus.NEW and s.level == "info" and s.credible for s in verdict.signatures)


def test_the_catalogue_service_names_stay_apart() -> None:
    a = _lines("No instances available for ts-basic-service ({j})", 20)
    b = _lines("No instances available for ts-seat-service ({j})", 20)
    clusters = mine(a, b, protected=("ts-basic-service", "ts-seat-service"))
    assert sorted(clusters) == ["No instances available for ts-basic-service (<*>)", "No instances available for ts-seat-service (<*>)"]


def test_a_signature_from_the_service_history_is_not_new() -> None:
    known = _lines("Timeout after {i}ms", 50)
    sometimes = _lines("Payment gateway {j} declined the card", 12)
    without = {s.template: s for s in compare(known, known + sometimes, (_totals(50), _totals(62)), tolerance=1.0, alpha=ALPHA)}
    assert without["Payment gateway <*> declined the card"].status is SignatureStatus.NEW
    history = _lines("Payment gateway {j} declined the card", 30)
    found = {
        s.template: s
        for s in compare(known, known + sometimes, (_totals(50), _totals(62)), tolerance=1.0, alpha=ALPHA, history=history)
    }
    declined = found["Payment gateway <*> declined the card"]
    assert declined.status is SignatureStatus.KNOWN and declined.in_history
    assert set(found) == set(without)  # history alone adds no signature


def test_a_history_signature_that_surges_is_increased() -> None:
    known = _lines("Timeout after {i}ms", 50)
    surge = _lines("Payment gateway {j} declined the card", 60)
    history = _lines("Payment gateway {j} declined the card", 3)
    (declined,) = [
        s for s in compare(known, known + surge, (_totals(50), _totals(110)), tolerance=1.0, alpha=ALPHA, history=history)
        if s.in_history
    ]
    assert declined.status is SignatureStatus.INCREASED and declined.credible


def _called(failures: int, setting: str = "hold") -> tuple[LogSamples, object]:
    """The own lines of `_samples(0)`, and callers: a gateway naming search-service once in the baseline
    and `failures` times in the candidate, beside lines that only share its words."""
    def said(text: str, count: int, service: str) -> tuple[LogLine, ...]:
        return tuple(dataclasses.replace(line, service=service) for line in _lines(text, count))

    baseline = said("No instances available for search-service ({j})", 1, "gateway")
    candidate = said("No instances available for search-service ({j})", failures, "gateway")
    candidate += said("ts-search-service unreachable ({j})", 50, "gateway") + said("search service {j} late", 50, "cart")
    samples = dataclasses.replace(
        _samples(0), callee="search-service", callers=(baseline, candidate),
        caller_totals=(_totals(len(baseline)), _totals(len(candidate))),
    )
    return samples, dataclasses.replace(SIGNATURES, callers=setting)


@pytest.mark.parametrize(("setting", "label", "critical"), [("hold", Classification.HIGH, False), ("rollback", Classification.HIGH, True), ("show", Classification.PASS, True)])
def test_callers_errors_naming_the_release_hold_it_by_default_as_configured(setting: str, label: Classification, critical: bool) -> None:
    samples, spec = _called(40, setting)
    verdict = classify_signatures(spec, samples, *_sides(500), alpha=ALPHA)
    (caller,) = [s for s in verdict.signatures if s.caller]  # lines that only share its words are not its
    assert caller.caller == "gateway" and caller.status is SignatureStatus.INCREASED and caller.failing is (setting != "show")
    assert caller.template == "[gateway] No instances available for search-service (<*>)"
    assert verdict.classification is label and verdict.critical is critical
    if label is Classification.HIGH:
        assert 'INCREASED in caller gateway: "[gateway] No instances available for search-service (<*>)": 40 lines naming this service, 1 line in the baseline window' in verdict.reason
    assert ("holds, never rolls back" in verdict.reason) is (setting == "hold")


def test_callers_at_their_usual_rate_do_not_fail() -> None:
    samples, spec = _called(2)
    verdict = classify_signatures(spec, samples, *_sides(500), alpha=ALPHA)
    assert verdict.classification is Classification.PASS
    assert [s.status for s in verdict.signatures if s.caller] == [SignatureStatus.KNOWN]


def test_the_blast_radius_says_who_names_the_service_and_what_rose() -> None:
    samples, spec = _called(40)
    verdict = classify_signatures(spec, samples, *_sides(500), alpha=ALPHA)
    assert blast_radius(verdict.signatures) == (
        "Blast radius: 40 error and warn lines of 1 caller (gateway) name this service in the candidate window, "
        "1 in the baseline window; 1 signature INCREASED."
    )
    assert blast_radius(classify_signatures(spec, _samples(40), *_sides(500), alpha=ALPHA).signatures) == ""


def test_a_callers_signature_on_the_not_a_risk_list_never_fails() -> None:
    samples, spec = _called(40, "rollback")
    marked = dataclasses.replace(samples, not_a_risk=frozenset({"[gateway] No instances available for search-service (<*>)"}))
    verdict = classify_signatures(spec, marked, *_sides(500), alpha=ALPHA)
    (caller,) = [s for s in verdict.signatures if s.caller]
    assert caller.ignored and not caller.failing and verdict.classification is Classification.PASS
