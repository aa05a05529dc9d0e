"""Log template mining on literal messages: one test per rule of scoring/mining.py, and odd input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasehealth.scoring.mining import MAX_CHARS, WILDCARD, Miner, mine_templates

SERVICES = ("ts-basic-service", "ts-seat-service", "ts-travel2-service", "search-service")


def test_host_port_lines_of_one_event_group_together() -> None:
    templates = mine_templates([
        "Connection reset by cache.example.org:6379",
        "Connection reset by queue.internal.net:5672",
        "api.example.org:443 closed the connection",
        "cdn.example.org:8443 closed the connection",
        "edge.example.org:443 closed the connection",
    ])
    assert templates == ["Connection reset by <*>"] * 2 + ["<*> closed the connection"] * 3


def test_optional_trailing_size_does_not_split_an_event() -> None:
    templates = mine_templates([
        "Uploaded report.pdf to bucket archive (12.8 KB)",
        "Uploaded summary.pdf to bucket archive",
        "Uploaded a.pdf to bucket archive (980 B)",
        "Uploaded b.pdf to bucket archive (1.2 MB)",
    ])
    assert templates == ["Uploaded <*> to bucket archive (<*>)"] * 4


def test_a_trailing_group_of_one_shape_is_shown_as_it_is() -> None:
    templates = mine_templates(["Uploaded report to archive (12.8 KB)", "Uploaded report to archive (3.1 KB)"])
    assert templates == ["Uploaded report to archive (<*> KB)"] * 2


def test_a_trailing_group_without_a_value_is_part_of_the_event() -> None:
    templates = mine_templates(["replica drained (rollout step)", "replica drained (rollout step)", "replica drained"])
    assert templates == ["replica drained (rollout step)"] * 2 + ["replica drained"]


REQUESTS = [
    'gateway saw 10.0.0.1 "GET /api/orders/42" answer 500 bytes 120 in 25ms',
    'gateway saw 10.0.0.2 "POST /api/orders/42" answer 500 bytes 211 in 31ms',
    'gateway saw 10.0.0.1 "DELETE /api/orders/7" answer 204 bytes 0 in 2ms',
    'gateway saw 10.0.0.3 "GET /api/orders/9" answer 200 bytes 640 in 11ms',
]


def test_http_methods_are_separate_templates() -> None:
    assert mine_templates(REQUESTS) == [
        'gateway saw <*> "GET /api/orders/<*>" answer <*> bytes <*> in <*>',
        'gateway saw <*> "POST /api/orders/<*>" answer <*> bytes <*> in <*>',
        'gateway saw <*> "DELETE /api/orders/<*>" answer <*> bytes <*> in <*>',
        'gateway saw <*> "GET /api/orders/<*>" answer <*> bytes <*> in <*>',
    ]


@pytest.mark.parametrize(
    "values",
    [
        ("00000005", "0000000d", "deadbeef12", "0x1f"),
        ("812ms", "9000ms", "3s", "1.5ms"),
        ("3f2b6c1e-0a4d-4e5f-9a8b-1c2d3e4f5a6b", "e4f5a6b1-0a4d-4e5f-9a8b-1c2d3e4f5a6b", "7", "-1"),
        ("true", "false", "null", "None"),
    ],
)
def test_each_kind_of_value_is_one_field(values: tuple[str, ...]) -> None:
    assert mine_templates([f"frame {value} dropped by decoder" for value in values]) == ["frame <*> dropped by decoder"] * len(values)


def test_the_stem_of_a_value_stays() -> None:
    assert mine_templates(["node-17 is down", "node-230 is down"]) == ["node-<*> is down"] * 2
    assert mine_templates(["read chunk_-38 from disk", "read chunk_1042 from disk"]) == ["read chunk_<*> from disk"] * 2


def test_a_date_with_a_month_name_is_one_value() -> None:
    templates = mine_templates([
        "login from 1.2.3.4 at Tue Mar 3 09:15:00 2026",
        "login from 5.6.7.8 at Wed, March  4, 2026",
        "login from 5.6.7.9 at Nov 28",
    ])
    assert templates == ["login from <*> at <*>"] * 3


def test_quoted_strings_and_empty_brackets_are_values() -> None:
    assert mine_templates(['lock owner="cache warmup" held', 'lock owner="gc" held']) == ['lock owner="<*>" held'] * 2
    assert mine_templates(["peer 1.2.3.4 () joined ring", "peer 1.2.3.5 (7) joined ring"]) == ["peer <*> (<*>) joined ring"] * 2


def test_code_locations_stay_visible_and_apart() -> None:
    templates = mine_templates([
        "NullPointerException at TravelServiceImpl#451 while booking trip 12",
        "NullPointerException at TravelServiceImpl#457 while booking trip 13",
        "NullPointerException at TravelServiceImpl#451 while booking trip 14",
        "query failed at Repository.java:45 with code 3",
        "query failed at Repository.java:47 with code 4",
        "query failed at module.py:45 with code 3",
    ])
    assert templates == [
        "NullPointerException at TravelServiceImpl#451 while booking trip <*>",
        "NullPointerException at TravelServiceImpl#457 while booking trip <*>",
        "NullPointerException at TravelServiceImpl#451 while booking trip <*>",
        "query failed at Repository.java:45 with code <*>",
        "query failed at Repository.java:47 with code <*>",
        "query failed at module.py:45 with code <*>",
    ]


def test_a_protected_service_name_is_never_masked_or_merged() -> None:
    messages = ["No instances available for ts-basic-service", "No instances available for ts-seat-service"]
    assert mine_templates(messages) == ["No instances available for <*>"] * 2  # unprotected, they are one event
    assert mine_templates(messages, protected=SERVICES) == messages


def test_a_protected_name_stays_inside_a_value() -> None:
    templates = mine_templates(
        [
            "pod ts-travel2-service-7f9c restarted 3 times",
            "pod ts-travel2-service-1a2b restarted 5 times",
            "call to http://ts-basic-service:8080/api/v1 failed",
            "search-service answered ts-search-service",
            'upstream="ts-seat-service" refused',
        ],
        protected=SERVICES,
    )
    assert templates == [
        "pod ts-travel2-service-<*> restarted <*> times",
        "pod ts-travel2-service-<*> restarted <*> times",
        "call to http://ts-basic-service:<*> failed",
        "search-service answered ts-search-service",
        'upstream="ts-seat-service" refused',
    ]


def test_lines_sharing_two_fifths_of_their_tokens_stay_apart() -> None:
    messages = ["cache 12 evicted for alice", "cache 7 loaded by bob"]
    assert mine_templates(messages) == ["cache <*> evicted for alice", "cache <*> loaded by bob"]


def test_few_repeated_words_are_constants_and_many_words_a_value() -> None:
    states = [f"[pod: {i}f2e] replica {state} after rollout" for i, state in enumerate(["Draining", "Ready"] * 2)]
    assert mine_templates(states) == ["[pod: <*>] replica Draining after rollout", "[pod: <*>] replica Ready after rollout"] * 2
    names = [f"cart of {user} saved (v=2)" for user in ("alice", "bob", "carol", "dave", "erin", "frank", "grace")]
    assert mine_templates(names) == ["cart of <*> saved (v=<*>)"] * 7
    moves = [f"job {i} moved from {a} to {b}" for i, (a, b) in enumerate([("QUEUED", "RUNNING"), ("RUNNING", "DONE")] * 3)]
    assert mine_templates(moves) == ["job <*> moved from QUEUED to RUNNING", "job <*> moved from RUNNING to DONE"] * 3


def test_a_template_is_final_once_every_message_is_in() -> None:
    miner = Miner()
    first = miner.add("worker 1 started in pool east")
    assert miner.template(first) == "worker <*> started in pool east"
    second = miner.add("worker 2 started in pool west")
    assert miner.template(first) == miner.template(second) == "worker <*> started in pool <*>"
    assert miner.add("worker 3 started in pool east") == first  # the same masked text, the same id


def test_an_unknown_id_is_refused() -> None:
    miner = Miner()
    miner.add("hello")
    with pytest.raises(IndexError):
        miner.template(1)
    with pytest.raises(IndexError):
        miner.template(-1)


@pytest.mark.parametrize(
    "message",
    [
        "",
        "   \t\n ",
        "a" * 1_000_000,
        "word12 " * 150_000,
        bytes(range(256)).decode("latin-1") * 4,
        "\ud800 lone \udfff surrogates \udc80",
        "\x00\x01\x02 nul and control \x7f",
        "<script>alert(1)</script><div class='x'>&amp;</div>",
        "<*> <*> already masked <*>",
        "\ue000 private \ue001 use \ue010",
        "((((((((((((((((((((( 1",
        "Jan " * 10_000,
        "#" * 10_000 + "1",
        "x.java:" * 5_000 + "1",
        '="' * 10_000,
    ],
)
def test_mining_never_raises(message: str) -> None:
    templates = mine_templates([message, message, "ordinary line 1"], protected=SERVICES)
    assert all(isinstance(template, str) for template in templates)
    assert templates[0] == templates[1]
    assert len(templates[0]) <= 3 * MAX_CHARS + len(WILDCARD)  # clipped: a masked value is at most "<*>"


# Text with the characters the rules look for, so that the fuzzing reaches them.
ODD_TEXT = st.text(st.sampled_from(list("aZ09 .:=,-_#()[]{}<>\"'*/\\|\t\n") + ["\ud800", "\ue000", "\ue001", "\x00", "é"]), max_size=80)


@settings(max_examples=300, deadline=None)
@given(messages=st.lists(st.one_of(st.text(max_size=80), ODD_TEXT), max_size=8), protected=st.lists(st.text(max_size=12), max_size=3))
def test_mining_never_raises_on_any_text(messages: list[str], protected: list[str]) -> None:
    templates = mine_templates(messages, protected=protected)
    assert len(templates) == len(messages)
    assert all(isinstance(template, str) for template in templates)


def test_a_build_hash_in_a_code_location_is_a_value_and_its_line_stays() -> None:
    messages = [f"TypeError: undefined at /app/dist/checkout.{h}.js:451" for h in ("1a2b3c4d", "9f8e7d6c", "0badf00d")]
    assert set(mine_templates(messages)) == {"TypeError: undefined at /app/dist/checkout.<*>:451"}
