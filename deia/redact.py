"""Credentials out of text: URLs with a password, and libpq's password=... pairs; and
the names of fields that hold a secret (a password, a key, a token or their hashes).

Every text that leaves a process for people or storage (log lines, errors shown on
/health and by diagnose, Bot.last_error, one-line configuration errors) goes through
redact(), so a DATABASE_URL or REDIS_URL with a password in it never shows it.
"""

from __future__ import annotations

import re

MASK = "***"
# scheme://user:password@ -> scheme://user:***@. The password runs to the last "@" of the
# authority (a raw "@" in a password is common enough); "/" and whitespace end it.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):(?P<password>[^\s/]*)@")
# password=secret or password='secret' in conninfo strings and option dumps.
_KEY_VALUE = re.compile(r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)(?P<password>'[^']*'|\"[^\"]*\"|[^\s,;&]+)", re.I)

# Field names whose values are never shown: password, chat_secret, digest, key_hash, token...
_SECRET_NAME = re.compile(r"pass(word|wd)|pwd|secret|digest|hash|(^|_)(key|token)($|_)", re.I)


def is_secret_name(name: str) -> bool:
    """A field or setting called `name` holds a credential (or a hash of one)."""
    return bool(_SECRET_NAME.search(name))


def redact(text: str) -> str:
    """text with every URL password and password=... value replaced by ***."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['head']}{MASK}", text)
