"""release-health: compares each release of each microservice with the one it replaced."""

__version__ = "0.1.0"
