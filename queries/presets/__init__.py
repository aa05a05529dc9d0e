"""Metric catalogues per ecosystem (YAML files read by releasehealth.config)."""
