"""The botocore service model of AmplifyBackend, loaded once.

The CRD takes its field descriptions from it, and the simulator of the test bed its routes,
wire names and validation, so both follow the botocore that is installed.
"""

from __future__ import annotations

import functools

import botocore.session
from botocore.model import ServiceModel

SERVICE = "amplifybackend"


@functools.cache
def service_model() -> ServiceModel:
    """The botocore service model of AmplifyBackend (loaded once: it takes a while)."""
    return botocore.session.get_session().get_service_model(SERVICE)
