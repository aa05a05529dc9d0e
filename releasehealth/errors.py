"""The project's one exception tree; collectors translate client-library errors into it.

    ReleaseHealthError
    ├── ConfigError            the catalogue is invalid (every problem listed, with file and path)
    ├── NotFoundError          an unknown service, version or preset
    ├── TemplateError          a query template cannot be rendered (missing or invalid variable)
    ├── SourceError            a data source failed
    │   ├── SourceUnavailable  unreachable, timed out or 5xx: worth retrying, with backoff
    │   ├── QueryRejected      the source refused the query (4xx, bad PromQL): retrying cannot help
    │   ├── InvalidResponse    the source answered with something that is not its API's format
    │   └── PartialResponse    the source answered with part of the data (Prometheus/Thanos warnings,
    │                          Elasticsearch shard failures): what it affects is no data, not a verdict
    ├── DeliveryError          a notification channel did not take a message (watch mode retries it)
    ├── StoreError             the history store failed (releasehealth.store)
    └── UnreadableNotice       a queued message this release-health cannot read (releasehealth.notify)
"""

from __future__ import annotations

from collections.abc import Sequence

from releasehealth.format import plural, printable, redact_secrets


class ReleaseHealthError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ReleaseHealthError):
    def __init__(self, file: str, problems: Sequence[str]) -> None:
        self.file = file
        # A problem quotes what the file says: its line breaks and control characters are shown, not
        # obeyed, and a URL's credentials are not shown at all (a secret pasted under a misspelt key).
        self.problems = [printable(redact_secrets(problem)) for problem in problems]
        lines = "\n".join(f"  {printable(redact_secrets(file))}: {problem}" for problem in self.problems)
        super().__init__(f"invalid configuration ({plural(len(self.problems), 'problem')}):\n{lines}")


class NotFoundError(ReleaseHealthError):
    pass


class TemplateError(ReleaseHealthError):
    pass


class SourceError(ReleaseHealthError):
    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")

    def about(self, what: str) -> SourceError:
        """The same error, saying which query (or step) it stopped: "deploy detection (first_seen): ..."."""
        return type(self)(self.source, f"{what}: {self.message}")


class SourceUnavailable(SourceError):
    pass


class QueryRejected(SourceError):
    pass


class InvalidResponse(SourceError):
    """The source answered, but not with what its API promises (a proxy's HTML page, bad JSON)."""


class PartialResponse(SourceError):
    """The source answered, but with part of the data only: not to be judged as if it were whole."""


class DeliveryError(ReleaseHealthError):
    """A message was not delivered (refused, unreachable, timed out): watch mode's outbox tries again later."""
