"""What the fault suite shares: the releases every fault meets (one of each kind), the wiring through a
proxy, and the check every outcome must pass: never a PROMOTE when the data needed to judge is missing,
partial or invalid; never a ROLLBACK of a good release on a fault; an error names the source and the query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releasehealth import config, wiring
from releasehealth.errors import ReleaseHealthError
from releasehealth.model import Action, Classification
from releasehealth.simulator import Fleet, ReleaseLabel
from releasehealth.verdicts import Evaluation
from testing.configs import example_config
from testing.faults import Fault, FaultProxy
from tests import helpers

LABELS = (ReleaseLabel.GOOD, ReleaseLabel.ERROR_RATIO, ReleaseLabel.LATENCY, ReleaseLabel.NEW_EXCEPTION)
TIMEOUT = "1s"  # the faulted source's timeout in this suite: a hang is found out in a second
HEALTHY_TIMEOUT = "60s"


@dataclass(frozen=True)
class Release:
    label: ReleaseLabel
    service: str
    version: str


@dataclass(frozen=True)
class Case:
    """A fault; whether the data it leaves is still enough to judge (a slow answer, duplicate series);
    whether it is an error of the source, whose message must name the source and the query."""

    name: str
    fault: Fault
    judgeable: bool = False
    names_the_query: bool = False
    shows: str = ""  # text of the fault that what is said must show (a partial answer's warning)


def one_of_each(fleet: Fleet) -> dict[ReleaseLabel, Release]:
    """The first release of each kind in LABELS in the fleet."""
    found: dict[ReleaseLabel, Release] = {}
    for service in fleet.services:
        for release in service.releases[1:]:
            found.setdefault(release.label, Release(release.label, service.name, release.version))
    return {label: found[label] for label in LABELS}


def raw_config(prometheus_url: str, elasticsearch_url: str, faulted: str = "both") -> dict[str, Any]:
    """The example configuration on these sources, without retries: the `faulted` one ("prometheus",
    "elasticsearch" or "both") with a timeout of a second, so that a hang is found out at once; the other,
    healthy, with HEALTHY_TIMEOUT, a limit against a hang and never an expectation of speed (on a loaded
    machine the real Prometheus takes seconds for what it answers in a fraction of one when idle)."""
    timeouts = {
        name: TIMEOUT if faulted in (name, "both") else HEALTHY_TIMEOUT for name in ("prometheus", "elasticsearch")
    }
    raw = example_config(prometheus_url, elasticsearch_url, timeout=timeouts["prometheus"], retries=0)
    raw["sources"]["elasticsearch"].update(timeout=timeouts["elasticsearch"], retries=0)
    return raw


def through(prometheus_url: str, elasticsearch_url: str, faulted: str) -> wiring.Wiring:
    return wiring.connect(config.parse(raw_config(prometheus_url, elasticsearch_url, faulted), "faults.yaml"))


def evaluate(wired: wiring.Wiring, release: Release) -> Evaluation | ReleaseHealthError:
    """The evaluation, or the error our code raised (anything else, a traceback, fails the test)."""
    try:
        return helpers.evaluate(wired, release.service, release.version)
    except ReleaseHealthError as exc:
        return exc


def failures(outcome: Evaluation | ReleaseHealthError) -> list[str]:
    """What the outcome says went wrong: the error, or the reasons of the metrics that could not be judged."""
    if isinstance(outcome, ReleaseHealthError):
        return [str(outcome)]
    verdicts = outcome.score.verdicts if outcome.score else ()
    missing = [v.reason for v in verdicts if v.classification in (Classification.ERROR, Classification.NODATA)]
    return missing or [outcome.recommendation.reason]


def check(case: Case, release: Release, action: Action | None, said: list[str], source: str) -> None:
    """The rules of the suite for one outcome: its action (None: an error) and what it says went wrong."""
    if release.label.is_regression or not case.judgeable:
        assert action is not Action.PROMOTE, (case.name, release, said)
    if not release.label.is_regression:
        assert action is not Action.ROLLBACK, (case.name, release, said)
    text = " ".join(said)
    if case.names_the_query:
        assert source in text and "quer" in text, (case.name, text)
    assert case.shows in text, (case.name, text)


def check_outcome(case: Case, release: Release, outcome: Evaluation | ReleaseHealthError, source: str) -> None:
    action = None if isinstance(outcome, ReleaseHealthError) else outcome.recommendation.action
    said = failures(outcome)
    check(case, release, action, said, source)
    # An error answer's body is quoted, not whole: a 5 MB page must not become a 5 MB message.
    assert max(len(text) for text in said) < 2_000, (case.name, max(len(text) for text in said))


def check_each(case: Case, proxy: FaultProxy, wired: wiring.Wiring, releases: dict[ReleaseLabel, Release]) -> None:
    """Evaluate every release with `case`'s fault injected by `proxy`, and check each outcome."""
    with proxy.injecting(case.fault):
        outcomes = {label: evaluate(wired, release) for label, release in releases.items()}
    for label, outcome in outcomes.items():
        check_outcome(case, releases[label], outcome, proxy.url)
