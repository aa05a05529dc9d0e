"""The configuration, defined once: the file's schema, the presets, the credentials, and the catalogue they
resolve into (every service with its merged templates, units and settings).

Validated where it enters, every problem reported at once with the file and its path; the rest of the
code receives the resolved `Catalogue` and the frozen types of `releasehealth.model`. Credentials are read
from environment variables named in the file, never from the file itself.
"""

from releasehealth.config.catalogue import (
    CONCURRENT_NEEDS_A_VERSION,
    DEFAULT_PATH,
    Catalogue,
    catalogue_for,
    load,
    parse,
    parse_option_duration,
    store_settings,
    with_baseline,
)
from releasehealth.config.presets import load_preset, log_metrics, preset_names
from releasehealth.config.schema import (
    ElasticsearchSettings,
    LogsPolicy,
    Preset,
    PrometheusSettings,
    RollbackHookSettings,
    StoreSettings,
    WatchSettings,
)

__all__ = [
    "CONCURRENT_NEEDS_A_VERSION",
    "DEFAULT_PATH",
    "Catalogue",
    "ElasticsearchSettings",
    "LogsPolicy",
    "Preset",
    "PrometheusSettings",
    "RollbackHookSettings",
    "StoreSettings",
    "WatchSettings",
    "catalogue_for",
    "load",
    "load_preset",
    "log_metrics",
    "parse",
    "parse_option_duration",
    "preset_names",
    "store_settings",
    "with_baseline",
]
