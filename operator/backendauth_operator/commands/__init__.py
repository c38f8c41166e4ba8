"""The ``backendauth-operator`` command and its sub-commands (plan, export, crd)."""
