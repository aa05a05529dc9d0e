"""An Evaluation as the stored document and back: every document reads back into an Evaluation that writes
the same document, and a report rendered from the read-back evaluation says what the live one's says."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from releasehealth import report
from releasehealth.model import Classification
from releasehealth.serialize import evaluation_from_dict, evaluation_to_dict
from releasehealth.verdicts import Evaluation
from releasehealth.wiring import Wiring
from tests import helpers

END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=2)


@pytest.fixture(scope="module")
def evaluations() -> list[Evaluation]:
    """Every release of the demo fleet: promoted, rolled back, inconclusive (a first release), with logs."""
    catalogue, sources, fleet = helpers.demo(seed=7, end=END)
    return [e for s in fleet.services for e in helpers.releases(Wiring(catalogue, sources), s.name, now=END)]


def _stored(evaluation: Evaluation) -> dict[str, Any]:
    """The document as the history store keeps it: through JSON."""
    document: dict[str, Any] = json.loads(json.dumps(evaluation_to_dict(evaluation)))
    return document


def test_the_fixture_covers_every_kind_of_evaluation(evaluations: list[Evaluation]) -> None:
    actions = {e.recommendation.action.value for e in evaluations}
    assert {"PROMOTE", "ROLLBACK", "INCONCLUSIVE"} <= actions
    assert any(e.logs and any(s.failing for s in e.logs.signatures) for e in evaluations)
    assert any(v.classification is Classification.HIGH for e in evaluations if e.score for v in e.score.verdicts)


def test_every_stored_document_reads_back_into_the_same_document(evaluations: list[Evaluation]) -> None:
    for evaluation in evaluations:
        document = _stored(evaluation)
        read = evaluation_from_dict(document)
        assert evaluation_to_dict(read) == document
        assert read.recommendation == evaluation.recommendation
        assert (read.candidate, read.baseline) == (evaluation.candidate, evaluation.baseline)
        assert (read.candidate_window, read.baseline_window) == (evaluation.candidate_window, evaluation.baseline_window)


def test_a_report_from_the_store_says_what_the_live_evaluations_report_says(evaluations: list[Evaluation]) -> None:
    for evaluation in (e for e in evaluations if e.score is not None):
        read = evaluation_from_dict(_stored(evaluation))
        assert report.render_markdown(read, "f" * 16) == report.render_markdown(evaluation, "f" * 16)
