"""Kubernetes operator for AWS Amplify backend authentication (the ``BackendAuth`` resource)."""

GROUP = "amplifybackend.gitops.dev"
VERSION = "v1alpha1"
KIND = "BackendAuth"
PLURAL = "backendauths"
SINGULAR = "backendauth"
SHORT_NAME = "bauth"
CATEGORIES = ("amplify", "aws")
PREFIX = GROUP  # annotation and Kopf-state prefix (CONTRACT §1)
FINALIZER = f"{GROUP}/finalizer"
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_PATH = f"crds/{CRD_NAME}.yaml"

__version__ = "0.1.0"
