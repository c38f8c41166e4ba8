"""Kubernetes operator for AWS Amplify backend authentication (the ``BackendAuth`` resource)."""

GROUP = "amplifybackend.gitops.dev"
VERSION = "v1alpha1"
KIND = "BackendAuth"
PLURAL = "backendauths"
SINGULAR = "backendauth"
SHORT_NAME = "bauth"
CATEGORIES = ("amplify", "aws")
PREFIX = GROUP  # the prefix of our annotations and of Kopf's state on each object
FINALIZER = f"{GROUP}/finalizer"
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_PATH = f"crds/{CRD_NAME}.yaml"

__version__ = "0.1.0"
