"""Which AWS account a BackendAuth acts in, and under which role, as plain values.

The Namespace annotation :data:`OWNER_ACCOUNT` names the account; the account map names the
:class:`Role` assumed there. Parsing the map and watching Namespaces is ``kube/accounts.py``'s work;
the decision needs only these names. ``accounts`` re-exports both for the modules that still
import them from there; new code imports them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backendauth_operator import GROUP

OWNER_ACCOUNT = f"{GROUP}/owner-account-id"
DEFAULT_SESSION_NAME = "backendauth-operator"


@dataclass(frozen=True)
class Role:
    """The role assumed for one account. ``external_id`` is never shown (status, events, logs)."""

    arn: str
    account: str
    external_id: str | None = field(default=None, repr=False)
    session_name: str = DEFAULT_SESSION_NAME
