"""Log hygiene: inline secret values never reach a log line.

With ``--verbose`` Kopf logs whole object bodies at DEBUG (the spec, and kubectl's
last-applied-configuration annotation). Inline ``clientSecret`` / ``privateKey`` values are
replaced by ``***`` in every record, whatever logger wrote it; references (``clientSecretRef``)
are kept, since they hold only a Secret's name and key.
"""

from __future__ import annotations

import logging
import re

from backendauth_operator.core.models import SECRET_FIELDS

# "clientSecret": "value", 'privateKey': 'value', clientSecret=value ... in dict reprs, JSON
# (also JSON inside a repr'd string) and key=value text. The key must end right there, so
# clientSecretRef is left alone.
_NAMES = "|".join(
    name
    for f in SECRET_FIELDS
    for name in (f.inline, re.sub(r"(?<!^)(?=[A-Z])", "_", f.inline).lower(), f.boto)
)
_SECRET = re.compile(
    rf"""(?P<key>\\?["']?(?:{_NAMES})\\?["']?"""
    r"""\s*[:=]\s*)(?P<quote>\\?["'])(?P<value>(?:\\.|(?!(?P=quote)).)*?)(?P=quote)""",
    re.DOTALL,
)


def redact(text: str) -> str:
    """``text`` with every inline secret value replaced by ``***``."""
    return _SECRET.sub(lambda m: f"{m.group('key')}{m.group('quote')}***{m.group('quote')}", text)


class RedactSecrets(logging.Filter):
    """A handler filter: rewrites a record's message when it holds an inline secret value."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install() -> None:
    """Put the filter on every handler of the root logger (where Kopf's records end up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
