"""The test bed of the operator: an emulated Kubernetes API (``sandbox``) and an AmplifyBackend
simulator (``simulator``), for ``backendauth-operator dev`` and the tests. Not shipped."""
