"""The one formatter: queries on one line."""

from __future__ import annotations

from datetime import UTC, datetime

from releasehealth.format import plural, query_line
from releasehealth.model import Query

START, END = datetime(2026, 12, 7, 11, 40, tzinfo=UTC), datetime(2026, 12, 7, 12, 45, 30, tzinfo=UTC)


def test_promql_is_shown_as_it_ran() -> None:
    promql = 'sum by (version) (rate(http_requests_total{service="a"}[1m]))'
    assert query_line(Query(template="requests", text=promql, services=("a",), start=START, end=END)) == promql


def test_a_multi_search_is_its_request_line_and_what_it_searches() -> None:
    text = "\n".join([
        "GET _msearch", '{"index": "logs-a"}', '{"size": 0}', '{"index": "logs-a"}', '{"size": 20}',
        '{"index": ["logs-*"]}', '{"size": 20}',
    ])
    line = query_line(Query(template="logs", text=text, services=("a",), start=START, end=END))
    assert line == "GET _msearch (3 searches, of logs-a, logs-*, for a, 2026-12-07 11:40:00..2026-12-07 12:45:30 UTC)"


def test_a_search_with_a_garbled_body_still_gets_one_line() -> None:
    line = query_line(Query(template="deploy_events", text='GET deploys/_search\n{"size": 10\n\n'))
    assert line == "GET deploys/_search (1 search)"
    garbled_headers = "GET _msearch\nnot json\n{}\n[1]\n{}"
    assert query_line(Query(template="logs", text=garbled_headers)) == "GET _msearch (2 searches)"


def test_plural() -> None:
    assert [plural(0, "line"), plural(1, "line"), plural(2, "search", "searches")] == ["0 lines", "1 line", "2 searches"]
