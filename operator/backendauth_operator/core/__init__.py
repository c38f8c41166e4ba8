"""The pure core: value types and decisions that import no I/O library.

Nothing in this package imports boto3, botocore, kubernetes, kopf, aiohttp or prometheus_client,
nor a module of this project that does: the decision (``reconcile.py``) is built on these types
alone, so that it is tested as tables and read without knowing the clients.
``tests/test_core_purity.py`` proves it by importing the decision in a fresh interpreter.
"""
