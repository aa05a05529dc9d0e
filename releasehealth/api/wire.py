"""The API's wire format: what it takes and what it answers, as pydantic models (the OpenAPI schema)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from releasehealth.format import label_problem
from releasehealth.model import Action, DeploySourceKind


def _label(text: str) -> str:
    problem = label_problem(text)
    if problem:
        raise ValueError(problem)
    return text


# Label values (a version, a commit) are untrusted: printable text only, at most what the store keeps.
Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Label = Annotated[str, StringConstraints(min_length=1), AfterValidator(_label)]


class Problem(BaseModel):
    detail: str
    known: list[str] | None = Field(None, description="The known services, when the service asked for is not one.")


class LatestVerdict(BaseModel):
    version: str
    action: Action
    score: float | None
    evaluated_at: datetime


class ServiceSummary(BaseModel):
    name: str
    team: str
    latest: LatestVerdict | None = Field(description="The newest stored verdict of the service; null if none.")


class ServiceList(BaseModel):
    services: list[ServiceSummary]


class Verdict(BaseModel):
    service: str
    version: str
    baseline: str = Field(description='The baseline version, or "(none)".')
    action: Action
    final: bool = Field(
        description="True for a ROLLBACK, and for a PROMOTE once the candidate was watched for the whole window: "
        "the gate passes only a final PROMOTE."
    )
    score: float | None
    reason: str
    reasons: list[str] = Field(description="One per failing or unjudged metric.")
    evaluated_at: datetime
    evaluation: dict[str, Any] = Field(description="The whole evaluation: windows, verdicts, queries, logs.")


def _utc(at: datetime | None) -> datetime | None:
    """A naive time is UTC (as on the command line); an aware one is converted to UTC."""
    if at is None:
        return None
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range once converted to UTC") from exc


def _deploy_time(at: datetime | None) -> datetime | None:
    """A deploy time in UTC, between 1970 and 9000 (an epoch of -1, year 1: no deploy was ever then)."""
    at = _utc(at)
    if at is not None and not 1970 <= at.year < 9000:
        raise ValueError("a deploy time is between 1970 and 9000")
    return at


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Name
    version: Label
    commit: Annotated[str, AfterValidator(_label)] = ""
    deployed_at: Annotated[datetime | None, AfterValidator(_deploy_time)] = Field(
        None, description="When it was deployed (default: now); a time without an offset is UTC, between 1970 and 9000."
    )


class DeployOut(BaseModel):
    service: str
    version: str
    commit: str
    deployed_at: datetime
    source: DeploySourceKind


class Health(BaseModel):
    status: str
    store: str
    detail: str | None = None


def finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return value if value is not None and math.isfinite(value) else None
