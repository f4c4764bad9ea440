"""Checks of a server setting (`model.url`, `index.embedding_url` and their API keys) before
the first request: a bad value would otherwise fail as a traceback from deep inside http.client,
in a worker thread."""

from __future__ import annotations

import urllib.parse

from assistant.errors import AssistError

_URL_HINT = "set it like http://127.0.0.1:8080 (the server's base URL)"


def server_url(url: str, key: str) -> urllib.parse.SplitResult:
    """`url` split, or an AssistError naming `key`: a port out of range, a broken IPv6
    address, a space or control character or an unencodable host name would otherwise fail
    as a traceback from deep inside http.client at the first request."""
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # parsed on access: raises for `:99999`, `:abc`
        (parts.hostname or "").encode("idna")
    except UnicodeError:
        raise AssistError(f"{key} {url!r} has an invalid host name", _URL_HINT) from None
    except ValueError as exc:
        raise AssistError(f"{key} {url!r} is not a usable URL: {exc}", _URL_HINT) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AssistError(f"{key} {url!r} is not an http(s) URL", _URL_HINT)
    if any(c.isspace() or not c.isprintable() for c in url):
        raise AssistError(f"{key} {url!r} holds a space or control character", _URL_HINT)
    return parts


def bearer(api_key: str | None, key: str) -> str | None:
    """The `Authorization` header for `api_key`, or None. Whitespace around the key (a key
    file's newline) is dropped; one with a line break or other control character inside, or
    a non-ASCII one, is refused (http.client would raise, and a line break would inject a
    header). The error never repeats the key."""
    token = (api_key or "").strip()
    if not token:
        return None
    if not all(" " <= c < "\x7f" for c in token):
        raise AssistError(
            f"{key} holds a line break, control or non-ASCII character",
            "set it to the key alone, on one line",
        )
    return f"Bearer {token}"
