"""The simulated fleet: deterministic services, releases and faults for the demo, tests and benchmarks."""

from releasehealth.simulator.fleet import (
    FLEET_SIZE,
    Fleet,
    ReleaseLabel,
    SimulatedRelease,
    SimulatedService,
    service_name,
    simulate,
)

__all__ = ["FLEET_SIZE", "Fleet", "ReleaseLabel", "SimulatedRelease", "SimulatedService", "service_name", "simulate"]
