"""What the bad-input suite feeds the product: hostile and odd values, and the settings of its fuzzing.

Fuzzing is derandomised (the same inputs on every run, so CI never flakes on a new find); set
RELEASE_HEALTH_FUZZ_EXAMPLES (and RELEASE_HEALTH_FUZZ_RANDOM=1) to explore further by hand."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from releasehealth.format import UNPRINTABLE

EXAMPLES = int(os.environ.get("RELEASE_HEALTH_FUZZ_EXAMPLES", "700"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("RELEASE_HEALTH_FUZZ_RANDOM", "") != "1",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

SECRET = "s3cr3t-Pa55"  # planted in URLs and credentials: it must never come out

# Values that broke things before, or that parsers of durations, times, URLs and names trip on.
HOSTILE = [
    "", " ", "-", "--", "0", "-1", "1e309", "nan", "inf", "-inf", "99999999999d", "999999d", "3650d", "0s", "-5s",
    "1s", "5m", "1h30m", "7d", "1y", "292y", "1ms", "1us", "0001-01-01", "9999-12-31T23:59:59", "1970-01-01",
    "2026-13-45", "now", "yesterday", "\x00", "\x1b[2J\x1b[HPROMOTE", "line\nbreak", "carriage\rreturn",
    "\u202eesrever", "\u2066isolate", "ümlaut", "日本語", "🚀", "a" * 5000, "${selector}", "{service}", "{", "}",
    "%s%n", "'; DROP TABLE evaluations; --", '"quoted"', "back\\slash", "<script>alert(1)</script>",
    f"htp://admin:{SECRET}@prometheus:9090", f"http://admin:{SECRET}@prometheus:9090",
    f"https:/admin:{SECRET}@host", f"http://host/?token={SECRET}", "http://", "http://[::1", "file:///etc/passwd",
    "localhost:9090", "sqlite:///", "postgresql+psycopg://nobody@127.0.0.1:1/none", "5..", "(", "[", "*",
    'rate(x[5m]) # ${selector}', "sum(rate(http_requests_total{${selector}}[${step}])) by (${by})",
]

scalars = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=30),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
# Any document YAML or JSON can hold.
documents: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12) | st.sampled_from(HOSTILE), inner, max_size=4),
    max_leaves=10,
)


def unprintable_in(text: str) -> list[str]:
    """The control and bidirectional characters in `text`, line breaks and tabs aside."""
    return [c for c in UNPRINTABLE.findall(text) if c not in "\n\t"]
