"""Consent, privacy signals and IP minimisation, applied before anything is stored."""

from __future__ import annotations

import functools
import ipaddress
import logging

from django.utils.module_loading import import_string

from .conf import ct_settings

logger = logging.getLogger(__name__)


@functools.cache
def _consent_callable(path: str):
    return import_string(path)


def has_consent(request) -> bool:
    """True when the visitor may be tracked (cookie + journey).

    ``CONSENT`` is None (no gate), ``{"cookie": "name", "accepted": [...]}``, or a dotted path
    to a callable ``(request) -> bool``. ``HONOUR_GPC`` / ``HONOUR_DNT`` turn the browser's
    Global Privacy Control / Do-Not-Track signals into a refusal.
    """
    meta = request.META
    if ct_settings.HONOUR_GPC and meta.get("HTTP_SEC_GPC", "").strip() == "1":
        return False
    if ct_settings.HONOUR_DNT and meta.get("HTTP_DNT", "").strip() == "1":
        return False
    gate = ct_settings.CONSENT
    if not gate:
        return True
    if isinstance(gate, str):
        try:
            return bool(_consent_callable(gate)(request))
        except Exception:
            logger.exception("Consent callable %s failed; treating the visitor as not consenting", gate)
            return False
    if isinstance(gate, dict):
        value = request.COOKIES.get(gate.get("cookie") or "")
        if value is None:
            return False
        accepted = gate.get("accepted") or ("1", "true", "yes", "accepted", "granted", "all")
        return value.strip().lower() in {str(v).lower() for v in accepted}
    return False


def minimise_ip(ip: str | None) -> str | None:
    """Apply ``IP_STORAGE``: "full", "anonymised" (IPv4 /24, IPv6 /48) or "none"."""
    if not ip:
        return None
    mode = ct_settings.IP_STORAGE
    if mode == "none":
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if mode == "anonymised":
        prefix = 24 if address.version == 4 else 48
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        return str(network.network_address)
    return str(address)
