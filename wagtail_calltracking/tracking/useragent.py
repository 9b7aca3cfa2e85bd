"""Bots and browsers. The cheap pre-check runs on every request; the full parse (user-agents)
runs once per session."""

from __future__ import annotations

from ..models.choices import DeviceType
from .text import clean_text

# Substrings of the lower-cased header that mark a bot, checked before any parsing. Plain
# substring tests (C speed) rather than one big alternation regex: this runs on every request.
# Headless browsers are treated as bots: scrapers use them, and every leased number they hold
# is one a real visitor cannot get.
_BOT_TOKENS = (
    "bot/", "bot)", "bot;", "bot ", "bot-", "bot.", "crawl", "spider", "slurp", "scrap", "fetch",
    "preview", "monitor", "check", "scan", "headless", "phantom", "lighthouse", "pagespeed",
    "facebookexternalhit", "embedly", "quora link", "whatsapp", "telegram", "python-", "python/",
    "curl/", "wget/", "httpclient", "okhttp", "java/", "go-http", "libwww", "axios", "node-fetch",
    "postman", "insomnia", "feedparser", "rss", "mediapartners", "adsbot", "bingpreview", "ahrefs",
    "semrush", "mj12", "dotbot", "petalbot", "bytespider", "gptbot", "claudebot", "ccbot",
    "applebot", "baiduspider", "yandexbot", "yandeximages", "yandexmetrika", "yandexmobilebot",
)


def looks_like_bot(user_agent: str | None) -> bool:
    """Cheap pre-check: empty or bot-like user agents are not tracked."""
    if not user_agent or len(user_agent) < 10:
        return True
    ua = user_agent[:512].lower()
    if ua.endswith("bot"):
        return True
    return any(map(ua.__contains__, _BOT_TOKENS))  # no Python frame per token


def parse_user_agent(user_agent: str) -> dict:
    """Browser, OS and device fields for ``VisitorSession`` (never raises)."""
    fields = {
        "user_agent": clean_text(user_agent, 512),
        "browser": "",
        "browser_version": "",
        "os": "",
        "os_version": "",
        "device_type": DeviceType.OTHER,
        "is_bot": False,
    }
    try:
        import user_agents

        ua = user_agents.parse(user_agent[:1024])
    except Exception:  # a malformed header must not break the page
        return fields
    fields.update(
        browser=clean_text(ua.browser.family, 64),
        browser_version=clean_text(ua.browser.version_string, 32),
        os=clean_text(ua.os.family, 64),
        os_version=clean_text(ua.os.version_string, 32),
        is_bot=bool(ua.is_bot),
    )
    if ua.is_tablet:
        fields["device_type"] = DeviceType.TABLET
    elif ua.is_mobile:
        fields["device_type"] = DeviceType.MOBILE
    elif ua.is_pc:
        fields["device_type"] = DeviceType.DESKTOP
    return fields
