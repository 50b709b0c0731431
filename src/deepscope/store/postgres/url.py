"""PostgreSQL URLs: recognise them, connect with them, and never show their password.

`mask(url)` replaces the password (and any ``password=`` query parameter) with ``***``;
`scrub(text, url)` removes the password from any message (a driver error may quote its
connection string). Every repr, log line and error of the PostgreSQL backend goes through
them. Imports the standard library only (psycopg on `connect`).
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from deepscope.errors import OptionalDependencyError, StoreError

__all__ = ["is_postgres_url", "mask", "password_of", "scrub", "connect"]

SCHEMES = ("postgresql://", "postgres://")
_PASSWORD_PARAM = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def is_postgres_url(target: object) -> bool:
    """Whether `target` is a ``postgresql://`` (or ``postgres://``) URL."""
    return isinstance(target, str) and target.lower().startswith(SCHEMES)


def password_of(url: str) -> str | None:
    """The password in `url` (user info or ``password=`` parameter), or None."""
    parts = urlsplit(url)
    if parts.password:
        return unquote(parts.password)
    for key, value in parse_qsl(parts.query):
        if key.lower() == "password" and value:
            return value
    return None


def mask(url: str) -> str:
    """`url` with its password replaced by ``***`` (safe to print and log)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        query = _PASSWORD_PARAM.sub(r"\1***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "postgresql://***"


def scrub(text: str, url: str) -> str:
    """`text` without the password of `url` in any form it may appear in."""
    secret = password_of(url)
    if secret:
        for form in {secret, _quoted(url)}:
            if form:
                text = text.replace(form, "***")
    return _PASSWORD_PARAM.sub(r"\1***", text.replace(url, mask(url)))


def _quoted(url: str) -> str | None:
    raw = urlsplit(url).netloc.rsplit("@", 1)[0] if "@" in url else ""
    return raw.split(":", 1)[1] if ":" in raw else None


def connect(url: str, *, timeout: float = 10.0, application: str = "deepscope", **kw: Any) -> Any:
    """A psycopg connection to `url` (`StoreError` with the password scrubbed if it fails)."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the [postgres] extra is missing
        raise OptionalDependencyError(
            "a postgresql:// store needs psycopg: pip install 'deepscope[postgres]'"
        ) from exc
    try:
        return psycopg.connect(
            url,
            connect_timeout=max(1, int(timeout)),
            application_name=application,
            **kw,
        )
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to the PostgreSQL store {mask(url)}: {scrub(str(exc), url)}"
        ) from None


def env_store() -> str | None:
    """The store named by ``DEEPSCOPE_STORE`` (a log directory or a database URL), if set."""
    value = os.environ.get("DEEPSCOPE_STORE", "").strip()
    return value or None
