"""PromQL escaping, selectors, strict rendering and durations: golden strings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from releasehealth.errors import TemplateError
from releasehealth.model import parse_duration
from releasehealth.queries import promql


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("user-service", '"user-service"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("a\nb", '"a\\nb"'),
        ('x"} or vector(1) #', '"x\\"} or vector(1) #"'),
    ],
)
def test_quote_escapes_backslashes_quotes_and_newlines(value: str, literal: str) -> None:
    assert promql.quote(value) == literal


def test_one_service_is_an_equality_matcher_with_extra_matchers() -> None:
    assert promql.selector("service", ["a"], [("env", "prod")]) == 'service="a",env="prod"'


def test_several_services_are_one_escaped_regex() -> None:
    assert promql.selector("service", ["b.c", "a", "x+"]) == 'service=~"a|b\\\\.c|x\\\\+"'


def test_invalid_label_names_are_refused() -> None:
    with pytest.raises(TemplateError, match="invalid label name"):
        promql.selector('service"}', ["a"])


def test_render_is_strict_about_missing_variables() -> None:
    with pytest.raises(TemplateError, match=r"template 'errors': no value for variable \$\{selector\}"):
        promql.render("errors", "sum(x{${selector}})", {"step": "1m"})


def test_render_fills_every_variable() -> None:
    assert promql.render("t", "rate(x{${selector}}[${step}])", {"selector": 'a="b"', "step": "1m"}) == 'rate(x{a="b"}[1m])'


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30s", timedelta(seconds=30)), ("1h30m", timedelta(minutes=90)), ("7d", timedelta(days=7)),
        # promql-parser 0.11 reads milliseconds as microseconds; parse_duration corrects it.
        ("500ms", timedelta(milliseconds=500)), ("1s500ms", timedelta(seconds=1, milliseconds=500)),
    ],
)
def test_durations_parse(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "1h 30m", "0s", "-5m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration|must be positive"):
        parse_duration(text)


def test_durations_format_as_prometheus_does() -> None:
    assert promql.format_duration(timedelta(seconds=90)) == "1m30s"
    assert promql.format_duration(timedelta(days=7)) == "1w"  # promql-parser's spelling; 7d means the same
