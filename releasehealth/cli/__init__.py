"""The `release-health` command line: a thin Typer shell. Every command opens its sources through
releasehealth.wiring (the embedded demo through releasehealth.simulator.demo) and calls one core function.

Exit codes (for pipelines): 0 PROMOTE, 1 error, 2 usage, 3 ROLLBACK, 4 HOLD or INCONCLUSIVE.
"""

from releasehealth.cli import backtesting, commands, serving, simulate  # noqa: F401  (each registers its commands on app)
from releasehealth.cli.app import EXIT_CODES, EXIT_ERROR, app
from releasehealth.cli.printing import print_evaluation

__all__ = ["EXIT_CODES", "EXIT_ERROR", "app", "main", "print_evaluation"]


def main() -> None:
    app()
