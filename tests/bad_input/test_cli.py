"""Odd command lines: whatever the arguments, the CLI answers with its output or a clear error, exit code
0-4 (1 our error, 2 a usage error), never a traceback, never a control character or a secret on the
terminal. Fuzzed over the commands that return at once (a config whose Prometheus refuses connections),
and literal cases over every command, the servers' and the simulator's included."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import typer.main
import typer.testing
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from releasehealth.cli import app
from testing.configs import example_config
from testing.servers import free_port
from tests.bad_input.values import FUZZ, HOSTILE, SECRET, unprintable_in

# Commands that return at once on this config (servers, the simulator and --demo are literal cases only).
COMMANDS = ["services", "deploys", "evaluate", "check", "record-deploy", "history", "report", "not-a-risk", "gate", "backtest"]
OPTIONS = [
    "--config", "-c", "--seed", "--demo-end", "--store", "--version", "--format", "-f", "--at", "--baseline", "--save",
    "--no-save", "--service", "--commit", "--limit", "--out", "-o", "--wait", "--interval", "--help", "--", "-",
    "--since", "--until", "--step", "--max-queries", "--pairs-per-day", "--incidents", "--compare",
]
LIKELY = ["user-service", "3.12.1", "json", "table", "md", "html", "1m", "30s", "2026-12-01T00:00:00", "previous",
          "time-shifted:7d", "pinned:1.0", "concurrent", "last-good", "10", "report.html", "sqlite:///fuzz.db"]

arguments = st.lists(
    st.one_of(st.sampled_from(OPTIONS), st.sampled_from(HOSTILE), st.sampled_from(LIKELY), st.text(max_size=20)),
    max_size=7,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder to run in (reports and stores the arguments name land there), holding a config whose
    Prometheus and Elasticsearch refuse connections and whose store is a file of its own."""
    folder = tmp_path_factory.mktemp("cli")
    raw = example_config(f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}", retries=0)
    raw["sources"]["elasticsearch"]["retries"] = 0
    raw["store"] = {"url": f"sqlite:///{folder / 'history.db'}"}
    (folder / "release-health.yaml").write_text(yaml.safe_dump(raw))
    with contextlib.chdir(folder):
        yield folder


@pytest.fixture(scope="module")
def runner() -> Iterator[CliRunner]:
    """A runner that builds the CLI's command once (Typer rebuilds it on every invoke: 30 ms each)."""
    command = typer.main.get_command(app)
    with mock.patch.object(typer.testing, "_get_command", lambda _: command):
        yield CliRunner()


def run(runner: CliRunner, args: list[str]) -> Result:
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert result.exit_code in (0, 1, 2, 3, 4), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    assert not unprintable_in(result.output), (args, result.output)
    assert SECRET not in result.output, (args, result.output)
    return result


@FUZZ
@given(st.sampled_from(COMMANDS), arguments, st.booleans())
def test_any_arguments_give_an_answer_or_a_clear_error(
    workdir: Path, runner: CliRunner, command: str, args: list[str], global_first: bool
) -> None:
    prefix = ["--seed", args[0]] if global_first and args else []
    run(runner, [*prefix, command, *args])


@FUZZ
@given(arguments)
def test_any_global_options_give_an_answer_or_a_clear_error(workdir: Path, runner: CliRunner, args: list[str]) -> None:
    run(runner, [*args, "services"])


# ---- literal cases: arguments a careless user or a broken pipeline passes, and the exit code expected ---

BAD = 1  # our error: a message on stderr
USAGE = 2  # the command line itself is wrong: usage and the problem

LITERAL: list[tuple[list[str], int, str]] = [
    ([], USAGE, "Usage"),
    (["nonsense"], USAGE, "No such command"),
    (["\x1b[2Jbogus"], USAGE, "No such command"),
    (["--config"], USAGE, "requires an argument"),
    (["--config", "/nonexistent/release-health.yaml", "services"], BAD, "cannot read the file"),
    (["--config", "/", "services"], BAD, "cannot read the file"),
    (["--config", "/dev/null", "services"], BAD, "top level must be a mapping"),
    (["--seed", "seven", "services"], USAGE, "--seed"),
    (["--seed", "99999999999999999999999", "--demo", "services"], USAGE, "--seed"),
    (["--seed", "-1", "--demo", "services"], USAGE, "--seed"),
    (["--demo-end", "0001-01-01", "--demo", "services"], BAD, "--demo-end"),
    (["--demo-end", "9999-12-31T23:59:59", "--demo", "services"], BAD, "--demo-end"),
    (["--demo-end", "yesterday", "--demo", "services"], USAGE, "--demo-end"),
    (["--store", "mysql://db/rh", "services"], BAD, "--store"),
    (["--store", "not a url", "history", "user-service"], BAD, "--store"),
    (["--store", f"postgresql://rh:{SECRET}@127.0.0.1:1/rh", "history", "user-service"], BAD, "history store"),
    (["deploys"], USAGE, "Missing argument"),
    (["deploys", "no-such-service"], BAD, "unknown service"),
    (["deploys", "\u202eecivres-resu"], BAD, "unknown service"),
    (["deploys", "user-service"], BAD, "127.0.0.1"),
    (["evaluate", "user-service", "--format", "yaml"], USAGE, "--format"),
    (["evaluate", "user-service", "--at", "0001-01-01"], BAD, "--at"),
    (["evaluate", "user-service", "--at", "1969-12-31"], BAD, "--at"),
    (["evaluate", "user-service", "--at", "2026-13-45"], USAGE, "--at"),
    (["evaluate", "user-service", "--baseline", "yesterday"], BAD, "--baseline"),
    (["evaluate", "user-service", "--baseline", "pinned"], BAD, "--baseline"),
    (["evaluate", "user-service", "--baseline", "time-shifted:99999999999d"], BAD, "--baseline"),
    (["evaluate", "user-service", "--baseline", "previous:1"], BAD, "--baseline"),
    (["evaluate", "user-service", "--version", "\x1b[2J\x1b[HPROMOTE"], BAD, "127.0.0.1"),
    (["evaluate", "user-service"], BAD, "127.0.0.1"),
    (["check"], BAD, "127.0.0.1"),
    (["record-deploy", "--service", "user-service"], USAGE, "--version"),
    (["record-deploy", "--service", "nope", "--version", "1"], BAD, "unknown service"),
    (["record-deploy", "--service", "user-service", "--version", "1", "--at", "0001-01-01"], BAD, "--at"),
    (["record-deploy", "--service", "user-service", "--version", "\x1b]0;pwned\x07"], BAD, "version"),
    (["record-deploy", "--service", "user-service", "--version", "x" * 5000], BAD, "version"),
    (["history", "user-service", "--limit", "-1"], USAGE, "--limit"),
    (["history", "user-service", "--limit", "lots"], USAGE, "--limit"),
    (["history", "user-service", "--limit", "99999999999999999999999"], USAGE, "--limit"),
    (["report", "--service", "user-service", "--version", "never-evaluated"], BAD, "no stored evaluation"),
    (["report", "--service", "user-service", "--format", "pdf"], USAGE, "--format"),
    (["report", "--service", "user-service", "--version", "x", "--out", "/nonexistent/folder/r.html"], BAD, "no stored"),
    (["not-a-risk"], USAGE, "Missing argument"),
    (["gate", "--service", "user-service", "--version", "1", "--wait", "forever"], BAD, "--wait"),
    (["gate", "--service", "user-service", "--version", "1", "--interval", "0s"], BAD, "--interval"),
    (["gate", "--service", "user-service", "--version", "1", "--interval", "99999999999d"], BAD, "--interval"),
    (["serve", "--port", "99999"], USAGE, "--port"),
    (["serve", "--port", "0"], USAGE, "--port"),
    (["serve", "--port", "http"], USAGE, "--port"),
    (["demo", "--port", "-1"], USAGE, "--port"),
    (["dashboard", "--port", "65536"], USAGE, "--port"),
    (["simulate", "--hours", "-5"], USAGE, "--hours"),
    (["simulate", "--hours", "nan"], USAGE, "--hours"),
    (["simulate", "--services", "0"], USAGE, "--services"),
    (["simulate", "--services", "100000"], USAGE, "--services"),
    (["simulate", "--serve", "--speed", "0"], USAGE, "--speed"),
    (["simulate", "--serve", "--port", "99999"], USAGE, "--port"),
    (["simulate", "--preset", "nginx"], BAD, "nginx"),
    (["simulate", "--service-preset", "no-equals-sign"], BAD, "--service-preset"),
    (["simulate", "--serve", "--schedule", "garbage"], BAD, "schedule"),
    (["simulate", "--serve", "--scrape-interval", "never"], BAD, "--scrape-interval"),
]


@pytest.mark.parametrize(("args", "code", "says"), LITERAL, ids=[" ".join(a)[:60] or "(none)" for a, _, _ in LITERAL])
def test_an_odd_command_line_exits_with_a_clear_error(
    workdir: Path, runner: CliRunner, args: list[str], code: int, says: str
) -> None:
    result = run(runner, args)
    assert result.exit_code == code, (result.exit_code, result.output)
    assert says in result.output, result.output
