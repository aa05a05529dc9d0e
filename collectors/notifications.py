"""Posting watch mode's messages (releasehealth.notify shapes and signs them): one HTTP POST each, its
failures translated into DeliveryError here, at the boundary, naming the channel and never its URL (a
webhook's URL is its secret)."""

from __future__ import annotations

from collections.abc import Mapping

import requests

from releasehealth.errors import DeliveryError


def post(
    url: str, body: bytes, headers: Mapping[str, str], *, what: str, timeout: float, session: requests.Session | None = None,
) -> None:
    """POST `body` to `url`; raise DeliveryError saying `what` (the channel) failed and how."""
    try:
        response = (session or requests).post(url, data=body, headers=dict(headers), timeout=timeout)
    except requests.Timeout:
        raise DeliveryError(f"{what}: no answer within {timeout:.0f} s") from None
    except requests.RequestException as exc:
        raise DeliveryError(f"{what}: unreachable ({type(exc).__name__})") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"{what}: HTTP {response.status_code}")
