"""The project's one exception tree; collectors translate client-library errors into it.

    ReleaseHealthError
    ├── ConfigError            the catalogue is invalid (every problem listed, with file and path)
    ├── NotFoundError          an unknown service, version or preset
    ├── TemplateError          a query template cannot be rendered (missing or invalid variable)
    └── SourceError            a data source failed
        ├── SourceUnavailable  unreachable, timed out or 5xx: worth retrying, with backoff
        ├── QueryRejected      the source refused the query (4xx, bad PromQL): retrying cannot help
        └── InvalidResponse    the source answered with something that is not its API's format
"""

from __future__ import annotations

from collections.abc import Sequence


class ReleaseHealthError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ReleaseHealthError):
    def __init__(self, file: str, problems: Sequence[str]) -> None:
        self.file = file
        self.problems = list(problems)
        lines = "\n".join(f"  {file}: {problem}" for problem in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class NotFoundError(ReleaseHealthError):
    pass


class TemplateError(ReleaseHealthError):
    pass


class SourceError(ReleaseHealthError):
    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class SourceUnavailable(SourceError):
    pass


class QueryRejected(SourceError):
    pass


class InvalidResponse(SourceError):
    """The source answered, but not with what its API promises (a proxy's HTML page, bad JSON)."""
