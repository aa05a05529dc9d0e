"""The simulated fleet: deterministic services, releases and faults for the demo, tests and benchmarks."""

from releasehealth.simulator.fleet import (
    Fleet,
    ReleaseLabel,
    SimulatedRelease,
    SimulatedService,
    simulate,
)

__all__ = ["Fleet", "ReleaseLabel", "SimulatedRelease", "SimulatedService", "simulate"]
