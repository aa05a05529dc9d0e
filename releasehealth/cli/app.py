"""The command line's application: its options, the wiring it opens, and one error handler for every command.

Exit codes (for pipelines): 0 PROMOTE, 1 error, 2 usage, 3 ROLLBACK, 4 HOLD or INCONCLUSIVE.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from releasehealth import config
from releasehealth.errors import ConfigError, ReleaseHealthError
from releasehealth.format import printable, redact_secrets
from releasehealth.model import Action

if TYPE_CHECKING:  # the wiring brings the collectors, scipy and SQLAlchemy: only the commands that judge
    from releasehealth.store import Store
    from releasehealth.wiring import Wiring

EXIT_CODES = {Action.PROMOTE: 0, Action.ROLLBACK: 3, Action.HOLD: 4, Action.INCONCLUSIVE: 4}
EXIT_ERROR = 1
MAX_SEED = 2**32 - 1  # what numpy's generators take
DEFAULT_SEED = 7

class _Group(TyperGroup):
    """The command group, whose usage errors ("unexpected extra argument (...)", "no such command")
    quote the command line with its control and bidi characters escaped and without the credentials of a
    URL typed into it: a CI log keeps what it prints."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _redacted_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _redacted_usage_errors():
            return super().invoke(ctx)


@contextmanager
def _redacted_usage_errors() -> Iterator[None]:
    try:
        yield
    except ClickException as exc:  # Typer 0.29 vendors Click: its exceptions live in typer._click
        exc.message = printable(redact_secrets(exc.message))
        raise


app = typer.Typer(
    cls=_Group,
    help="Compare each release of each microservice with the one it replaced; recommend promote, hold or rollback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


@dataclass
class Context:
    config_path: str
    demo: bool
    seed: int
    demo_end: datetime | None = None
    store_url: str | None = None  # --store: overrides the config's store.url

    def command(self, *words: str) -> str:
        """A release-health command line to copy: `words` with the global options this one ran with (the demo
        and its seed and end, or the config file; the store), quoted for a POSIX shell."""
        options: list[str] = []
        if self.demo:
            options.append("--demo")
            if self.seed != DEFAULT_SEED:
                options += ["--seed", str(self.seed)]
            if self.demo_end is not None:
                options += ["--demo-end", self.demo_end.isoformat()]
        elif self.config_path != config.DEFAULT_PATH:
            options += ["--config", self.config_path]
        if self.store_url:
            options += ["--store", self.store_url]
        return shlex.join(["release-health", *options, *words])

    def open(self, create_store: bool = False) -> Wiring:
        """The catalogue and its sources, through the one wiring every front end uses: the embedded demo
        fleet, or the config file's real sources; the history store created when `create_store` (the
        commands that write), otherwise opened when it exists."""
        if self.demo:
            from releasehealth.simulator import demo as embedded_demo

            end = utc_option(self.demo_end, "--demo-end")
            return embedded_demo.build(self.seed, end, store=self.store_url).wire(create_store)
        from releasehealth import wiring

        return wiring.from_file(self.config_path, store_url=self.store_url, create_store=create_store)


def store_of(opened: Wiring) -> Store:
    """The store of a wiring opened with create_store (always there, unless the catalogue names none)."""
    if opened.sources.store is None:
        raise ConfigError(opened.catalogue.path, ["no history store is configured (store.url)"])
    return opened.sources.store


EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


def utc_option(at: datetime | None, option: str) -> datetime | None:
    """A time from the command line in UTC (a time without an offset is UTC), between 1970 and 9000: a
    window or a lookback reaching before year 1 is no date to compute with."""
    if at is None:
        return None
    at = at.replace(tzinfo=at.tzinfo or UTC)
    if not EARLIEST <= at < LATEST:
        raise ConfigError(option, [f"{at.isoformat()} is out of range: a time between 1970 and 9000"])
    return at


def shown(text: str, lines: bool = False) -> str:
    """External text as the terminal gets it: control and bidi characters escaped (they could clear the
    screen or reverse what is read), Rich's markup brackets escaped, URL credentials left out; with `lines`, a message of several
    lines (a configuration's problems) keeps its line breaks."""
    text = redact_secrets(text)  # a URL with credentials typed as a service name or a config path
    if lines:
        return "\n".join(escape(printable(line)) for line in text.split("\n"))
    return escape(printable(text))


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """One error handler for every command: our exceptions become a message on stderr and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ReleaseHealthError as exc:
            err.print(f"[bold red]error:[/] {shown(str(exc), lines=True)}")
            raise typer.Exit(EXIT_ERROR) from exc

    return wrapper


@app.callback()
def main_options(
    ctx: typer.Context,
    config_path: Annotated[
        str, typer.Option("--config", "-c", envvar="RELEASE_HEALTH_CONFIG", help="The YAML catalogue.")
    ] = config.DEFAULT_PATH,
    demo: Annotated[bool, typer.Option("--demo", help="Use the embedded simulated fleet instead of the config.")] = False,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the demo fleet.")] = DEFAULT_SEED,
    demo_end: Annotated[
        datetime | None, typer.Option(help="End the demo fleet's history at this UTC time (default: now), to reproduce it.")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(envvar="RELEASE_HEALTH_STORE", help="History store URL (default: the config's store.url)."),
    ] = None,
) -> None:
    ctx.obj = Context(config_path, demo, seed, demo_end, store)
