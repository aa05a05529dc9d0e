"""The evaluation as the terminal shows it: the verdict, each metric's reason, the log findings, the queries.
"""

from __future__ import annotations

from releasehealth import config
from releasehealth.cli.app import out, shown
from releasehealth.format import format_seconds, per_thousand, plural, query_line, score_text
from releasehealth.model import NOTABLE_SIGNATURES, Action, Service
from releasehealth.verdicts import Evaluation


def print_evaluation(evaluation: Evaluation, catalogue: config.Catalogue, *, verbose: bool = False) -> None:
    """The evaluation for the terminal; each query on one line unless `verbose` (whole Elasticsearch bodies)."""
    r = evaluation.recommendation
    colour = {Action.PROMOTE: "green", Action.ROLLBACK: "red"}.get(r.action, "yellow")
    out.print(
        f"[bold {colour}]{r.action.value}[/] {shown(evaluation.service)} "
        f"{shown(r.candidate)} (baseline {shown(r.baseline)}, policy {evaluation.policy.value})"
    )
    if evaluation.baseline_description:
        out.print(f"baseline: {shown(evaluation.baseline_description)}")
    out.print(f"reason: {shown(r.reason)}")
    if evaluation.candidate_window and evaluation.baseline_window:
        b, c = evaluation.baseline_window, evaluation.candidate_window
        out.print(f"windows: baseline {format_seconds(b.start)}..{format_seconds(b.end)}, candidate {format_seconds(c.start)}..{format_seconds(c.end)}")
    if evaluation.score:
        score = evaluation.score.score
        out.print(f"score: {score_text(score)}")
        for v in evaluation.score.verdicts:
            out.print(f"  {v.classification.value:<7} {shown(v.reason)}")
            out.print(f"          baseline: {shown(v.baseline.detail)}; candidate: {shown(v.candidate.detail)}")
    print_logs(evaluation)
    for note in evaluation.notes:
        out.print(f"[yellow]note:[/] {shown(note)}")
    if r.action is Action.ROLLBACK:
        out.print(f"rollback: {shown(catalogue.rollback(evaluation.service, r.candidate, r.baseline))}")
    out.print("queries:" if verbose else "queries (Elasticsearch bodies with --verbose):")
    for q in evaluation.queries:
        out.print(f"  {shown(f'[{q.template}]')} {shown(q.text if verbose else query_line(q))}")


def print_logs(evaluation: Evaluation) -> None:
    """The log findings: NEW and INCREASED signatures with an example each, then a count of the rest."""
    logs = evaluation.logs
    if logs is None:
        return
    if logs.error:
        out.print(f"logs: [red]{shown(logs.error)}[/]")
        return
    per = "1k requests" if logs.rate_basis == "requests" else "1k log lines"
    out.print(f"log signatures (rates per {per}):")
    if logs.blast_radius:
        out.print(f"  {shown(logs.blast_radius)}")
    notable = [s for s in logs.signatures if s.status in NOTABLE_SIGNATURES]
    for s in notable:
        rates = f"{per_thousand(s.baseline_rate)} -> {per_thousand(s.candidate_rate)}"
        flags = (" not-a-risk" if s.ignored else "") + ("" if s.credible else " (not credible yet)")
        out.print(
            f"  {s.status.value:<9} {s.level:<5} {shown(s.template)}  [{s.baseline_count:.0f} -> {s.candidate_count:.0f}"
            f" lines, {rates}{flags}]"
        )
        if s.examples:
            out.print(f"            e.g. {shown(s.examples[0][:300])}")
    rest = len(logs.signatures) - len(notable)
    if rest:
        out.print(f"  ... and {plural(rest, 'known or gone signature')}")




def versions_from(service: Service) -> str:
    """Where a service's versions come from: its version label, Kubernetes, or events and records only."""
    k8s = f"kubernetes deployment {service.kubernetes.deployment}" if service.kubernetes else ""
    if service.labels.version:
        return f"label {service.labels.version}" + (f" (checked against {k8s})" if k8s else "")
    return k8s or "deploy events and recorded deploys"
