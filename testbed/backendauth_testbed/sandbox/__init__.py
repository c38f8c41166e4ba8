"""The local sandbox: an emulated Kubernetes API (on kmock) with CRD admission, for dev and tests.

See :mod:`backendauth_testbed.sandbox.emulator` for what it emulates and its known gaps.
"""

from backendauth_testbed.sandbox.cluster import EmulatedCluster, EmulatedClusterThread
from backendauth_testbed.sandbox.emulator import ApiError, Kind, KubernetesAPI

__all__ = ["ApiError", "EmulatedCluster", "EmulatedClusterThread", "Kind", "KubernetesAPI"]
