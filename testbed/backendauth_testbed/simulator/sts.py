"""The simulator's STS: ``AssumeRole`` and ``GetCallerIdentity`` over the query protocol.

Only what is needed to tell accounts apart: a request is a form (``Action=AssumeRole&...``)
posted to ``/``, an answer is the XML that botocore's ``sts`` client parses. The issued keys are
remembered by ``Backend``; an AmplifyBackend call is put in the account of the key it is signed
with (read from the SigV4 ``Authorization`` header, no signature check).
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
ACTIONS = ("AssumeRole", "GetCallerIdentity")

ACCOUNT_RE = re.compile(r"^\d{12}$")
ROLE_ARN_RE = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:iam::(\d{12}):role/((?:[\w+=,.@-]+/)*)([\w+=,.@-]{1,64})$"
)
SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/")
_SCOPE_RE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/")
_KEY_ALPHABET = string.ascii_uppercase + string.digits

DURATION_MIN, DURATION_MAX = 900, 43200  # STS's bounds for DurationSeconds


class StsError(Exception):
    """An STS error answer: HTTP status, code, message (the query protocol's ErrorResponse)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Role:
    """A parsed role ARN."""

    arn: str
    account: str
    name: str  # the last path segment, as in an assumed-role ARN


@dataclass
class IssuedKey:
    """What the simulator remembers of credentials it issued (the secret is not kept)."""

    access_key_id: str
    account: str
    role_arn: str
    session_name: str
    expires: float  # wall clock, as the Expiration the client compares with its own clock


def parse_role_arn(value: str) -> Role:
    """The role of ``arn:aws:iam::<12 digits>:role/[path/]<name>``; StsError 400 otherwise."""
    match = ROLE_ARN_RE.match(value)
    if match is None:
        raise StsError(
            400,
            "ValidationError",
            f"{value!r} is not a valid role ARN; expected arn:aws:iam::<12-digit account>:role/<name>",
        )
    return Role(value, match.group(1), match.group(3))


def access_key_of(authorization: str | None) -> str | None:
    """The access key id in a SigV4 ``Authorization`` header, None without one."""
    if not authorization:
        return None
    match = _CREDENTIAL_RE.search(authorization)
    return match.group(1) if match else None


def region_of(authorization: str | None) -> str | None:
    """The region of a SigV4 ``Authorization`` header's credential scope, None without one."""
    if not authorization:
        return None
    match = _SCOPE_RE.search(authorization)
    return match.group(1) if match else None


def new_access_key_id() -> str:
    """``ASIA`` and 16 random upper-case letters and digits, as STS's temporary keys look."""
    return "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))


def role_id(role_arn: str) -> str:
    """A stable ``AROA...`` unique id for a role (made up from its ARN)."""
    digest = uuid.uuid5(uuid.NAMESPACE_URL, role_arn).hex.upper()
    return "AROA" + digest[:17]


def iso(wall: float) -> str:
    """ISO 8601 in UTC with milliseconds, as STS's ``Expiration``."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _element(name: str, value: str) -> str:
    return f"<{name}>{escape(value)}</{name}>"


def response_xml(action: str, result: dict[str, str | dict[str, str]]) -> str:
    """``<{action}Response><{action}Result>...`` with nested members, and the request id."""

    def members(values: dict[str, str | dict[str, str]]) -> str:
        parts = []
        for name, value in values.items():
            if isinstance(value, dict):
                parts.append(f"<{name}>{members(dict(value))}</{name}>")
            else:
                parts.append(_element(name, value))
        return "".join(parts)

    return (
        f'<{action}Response xmlns="{XMLNS}"><{action}Result>{members(result)}</{action}Result>'
        f"<ResponseMetadata>{_element('RequestId', str(uuid.uuid4()))}</ResponseMetadata>"
        f"</{action}Response>"
    )


def error_xml(err: StsError) -> str:
    """The query protocol's ``ErrorResponse``; ``Type`` is Sender for 4xx, Receiver otherwise."""
    kind = "Sender" if err.status < 500 else "Receiver"
    return (
        f'<ErrorResponse xmlns="{XMLNS}"><Error>{_element("Type", kind)}{_element("Code", err.code)}'
        f"{_element('Message', err.message)}</Error>{_element('RequestId', str(uuid.uuid4()))}"
        "</ErrorResponse>"
    )
