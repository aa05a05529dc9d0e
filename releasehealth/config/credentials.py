"""Credentials, read from the environment variables the config names (never from the file itself)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from releasehealth.config.schema import (
    ElasticsearchSettings,
    PrometheusSettings,
    StoreSettings,
)
from releasehealth.errors import ConfigError


def _require(where: str, names: Sequence[str | None], environ: Mapping[str, str]) -> None:
    missing = [v for v in names if v and not environ.get(v)]
    if missing:
        raise ConfigError(where, [f"environment variable {v} is named in the config but not set" for v in missing])


def prometheus_credentials(
    settings: PrometheusSettings, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Return (headers, basic auth) for Prometheus from the environment variables the config names.

    Raises ConfigError naming every variable that is configured but not set.
    """
    environ = os.environ if environ is None else environ
    _require("sources.prometheus", [settings.bearer_token_env, settings.username_env, settings.password_env], environ)
    headers = dict(settings.headers)
    if settings.bearer_token_env:
        headers["Authorization"] = f"Bearer {environ[settings.bearer_token_env]}"
    auth = None
    if settings.username_env and settings.password_env:
        auth = (environ[settings.username_env], environ[settings.password_env])
    return headers, auth


def elasticsearch_credentials(
    settings: ElasticsearchSettings, environ: Mapping[str, str] | None = None
) -> tuple[str | None, tuple[str, str] | None]:
    """Return (API key, basic auth) for Elasticsearch from the environment variables the config names.

    Raises ConfigError naming every variable that is configured but not set.
    """
    environ = os.environ if environ is None else environ
    _require("sources.elasticsearch", [settings.api_key_env, settings.username_env, settings.password_env], environ)
    api_key = environ[settings.api_key_env] if settings.api_key_env else None
    auth = None
    if settings.username_env and settings.password_env:
        auth = (environ[settings.username_env], environ[settings.password_env])
    return api_key, auth


def store_password(settings: StoreSettings, where: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The history store's password from the environment variable the config names (None when it names
    none); raise ConfigError naming the variable when it is not set."""
    if not settings.password_env:
        return None
    password = (os.environ if environ is None else environ).get(settings.password_env)
    if not password:
        raise ConfigError(where, [f"store.password_env: set the environment variable {settings.password_env}"])
    return password
