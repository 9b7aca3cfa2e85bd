"""Maintained tables of search engines, social networks and webmail hosts.

Keys are registrable domains or hosts (matched against the referrer host and its parents, so
``www.google.co.uk`` finds ``google.co.uk`` and ``google``). Search engines map to their
display name and the query parameters that carry the keyword (most engines stopped passing
it; those that still do are listed first).
"""

#: name → (domains, keyword parameters)
SEARCH_ENGINES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "google": (("google", "googleadservices.com", "googlesyndication.com"), ("q",)),
    "bing": (("bing.com", "msn.com", "cn.bing.com"), ("q",)),
    "yahoo": (("search.yahoo.com", "yahoo.com", "search.yahoo.co.jp", "yahoo.co.jp"), ("p", "q")),
    "yandex": (("yandex", "ya.ru"), ("text",)),
    "duckduckgo": (("duckduckgo.com", "ddg.gg"), ("q",)),
    "baidu": (("baidu.com", "m.baidu.com"), ("wd", "word", "kw")),
    "ecosia": (("ecosia.org",), ("q",)),
    "ask": (("ask.com",), ("q",)),
    "aol": (("search.aol.com", "aol.com"), ("q", "query")),
    "naver": (("naver.com", "search.naver.com"), ("query",)),
    "seznam": (("seznam.cz", "search.seznam.cz"), ("q",)),
    "qwant": (("qwant.com",), ("q",)),
    "startpage": (("startpage.com",), ("query", "q")),
    "brave": (("search.brave.com",), ("q",)),
    "sogou": (("sogou.com",), ("query",)),
    "so.com": (("so.com",), ("q",)),
    "daum": (("daum.net", "search.daum.net"), ("q",)),
    "mail.ru": (("go.mail.ru",), ("q",)),
    "rambler": (("nova.rambler.ru",), ("query",)),
    "yahoo japan": (("search.yahoo.co.jp",), ("p",)),
    "kagi": (("kagi.com",), ("q",)),
    "perplexity": (("perplexity.ai",), ("q",)),
    "chatgpt": (("chatgpt.com", "chat.openai.com"), ()),
}

#: name → domains
SOCIAL_NETWORKS: dict[str, tuple[str, ...]] = {
    "facebook": ("facebook.com", "fb.com", "fb.me", "messenger.com"),
    "instagram": ("instagram.com",),
    "twitter": ("twitter.com", "t.co", "x.com"),
    "linkedin": ("linkedin.com", "lnkd.in"),
    "pinterest": ("pinterest", "pin.it"),
    "reddit": ("reddit.com", "redd.it"),
    "youtube": ("youtube.com", "youtu.be"),
    "tiktok": ("tiktok.com",),
    "snapchat": ("snapchat.com",),
    "vk": ("vk.com", "vk.ru"),
    "ok.ru": ("ok.ru",),
    "tumblr": ("tumblr.com",),
    "quora": ("quora.com",),
    "whatsapp": ("whatsapp.com", "wa.me"),
    "telegram": ("t.me", "telegram.org", "web.telegram.org"),
    "threads": ("threads.net", "threads.com"),
    "bluesky": ("bsky.app",),
    "mastodon": ("mastodon.social",),
    "nextdoor": ("nextdoor.com",),
    "discord": ("discord.com", "discord.gg"),
    "weibo": ("weibo.com",),
    "line": ("line.me",),
}

#: Webmail hosts: a click from an email read in the browser.
WEBMAIL_HOSTS: tuple[str, ...] = (
    "mail.google.com",
    "outlook.live.com",
    "outlook.office.com",
    "outlook.office365.com",
    "mail.yahoo.com",
    "mail.aol.com",
    "mail.yandex.ru",
    "e.mail.ru",
    "mail.proton.me",
    "mail.zoho.com",
    "webmail",
    "email.t-online.de",
    "navigator-bs.gmx.com",
)

#: Click ids and the (source, medium, channel) they imply when no utm parameters are present.
CLICK_ID_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "gclid": ("google", "cpc", "paid_search"),
    "gbraid": ("google", "cpc", "paid_search"),
    "wbraid": ("google", "cpc", "paid_search"),
    "msclkid": ("bing", "cpc", "paid_search"),
    "yclid": ("yandex", "cpc", "paid_search"),
    "ttclid": ("tiktok", "paid_social", "paid_social"),
    "li_fat_id": ("linkedin", "paid_social", "paid_social"),
    # Facebook appends fbclid to every outbound link, ads and organic posts alike.
    "fbclid": ("facebook", "social", "organic_social"),
}


def _build_index(table):
    index = {}
    for name, domains in table.items():
        for domain in domains:
            index[domain] = name
    return index


_SEARCH_INDEX = _build_index({name: domains for name, (domains, _) in SEARCH_ENGINES.items()})
_SOCIAL_INDEX = _build_index(SOCIAL_NETWORKS)


def _host_candidates(host: str):
    """``www.google.co.uk`` → www.google.co.uk, google.co.uk, co.uk, uk, and the labels
    themselves (so a bare key "google" matches google.<any tld>)."""
    labels = host.split(".")
    for i in range(len(labels)):
        yield ".".join(labels[i:])
    yield from labels


def search_engine_for(host: str):
    """(name, keyword parameters) of the search engine at ``host``, or None."""
    host = host.lower()
    for candidate in _host_candidates(host):
        name = _SEARCH_INDEX.get(candidate)
        if name:
            # "google" as a bare label must not match e.g. mail.google.com (webmail) or
            # docs.google.com: only hosts whose first non-www label is the engine.
            if candidate == name and "." not in candidate:
                first = host.removeprefix("www.").split(".")[0]
                if first != candidate:
                    continue
            return name, SEARCH_ENGINES[name][1]
    return None


def social_network_for(host: str):
    host = host.lower()
    for candidate in _host_candidates(host):
        name = _SOCIAL_INDEX.get(candidate)
        if name:
            if "." not in candidate:
                first = host.removeprefix("www.").split(".")[0]
                if first != candidate:
                    continue
            return name
    return None


def is_webmail(host: str) -> bool:
    host = host.lower()
    return any(host == h or host.startswith(h + ".") or host.endswith("." + h) for h in WEBMAIL_HOSTS)
