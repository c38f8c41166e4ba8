"""What an AWS error means for a BackendAuth, as the decision sees it.

The AWS edge (``aws.classify``) makes a :class:`Failure` from an exception; the decision reads
only its fields, so it never needs botocore. ``aws`` re-exports it for the modules that still
import it from there; new code imports it from here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failure:
    """What an AWS error means for the BackendAuth: a condition reason and whether to retry.

    ``ambiguous`` is true when the request may have been carried out anyway (5xx, timeouts).
    """

    reason: str
    retryable: bool
    message: str
    ambiguous: bool = False
