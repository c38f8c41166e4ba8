"""The pure core: the decision (``decide.py``), its types, the spec and status models, what the
operator remembers on an object, and the import variant; nothing here imports an I/O library.

Nothing in this package imports boto3, botocore, kubernetes, kopf, aiohttp or prometheus_client,
nor a module of this project that does (not even ``config`` or ``metrics``): the decision is
built on these modules alone, so that it is tested as tables and read without knowing the
clients. ``tests/test_core_purity.py`` proves it by importing each module here in a fresh
interpreter; ``tests/test_layers.py`` keeps the other layers' imports pointing down to it.
"""
