"""A local simulator of the AWS AmplifyBackend API, for tests and the dev sandbox.

It serves CreateBackendAuth, GetBackendAuth, UpdateBackendAuth, DeleteBackendAuth,
GetBackendJob, ListBackendJobs, UpdateBackendJob and GetBackend over rest-json, with routes, wire names and
input validation taken from the botocore service model, so plain boto3 talks to it through
``endpoint_url``. Test control lives under ``/_sim/`` (see ``server.py``).

Known differences from real AWS (where AWS's documentation leaves the real behaviour open):

- Jobs report ``RUNNING`` until done, then ``COMPLETED`` or ``FAILED``; real jobs may use other
  non-terminal values. Timestamps are ISO 8601 strings; the real format is unknown.
- An auth resource exists once its create job has COMPLETED (a running or failed create leaves
  nothing); an update takes effect, and a delete removes it, when their job completes. Effects
  are applied lazily, when the next request arrives.
- An update deep-merges the sent ``resourceConfig`` into the stored one (lists are replaced);
  AWS may replace it whole.
- A duplicate create is answered 400 ``BadRequestException`` "... already exists"; AWS's answer
  is undocumented. GetBackendAuth of a missing resource is 404 ``NotFoundException``.
- GetBackendAuth returns the stored config including secrets (whether AWS echoes them is
  unknown); the call log and the log lines never contain request bodies.
- Validation is stricter than AWS may be: unknown members are rejected, and every problem is
  reported in one 400 ``BadRequestException`` naming the field path.
- GetBackend's amplify-meta holds only the ``auth`` category, with made-up but stable ids.
- No authentication or SigV4 check, no regions, no ``/prod`` stage prefix; other operations of
  the model answer 404 ``UnknownOperationException``.
"""

from backendauth_testbed.simulator.server import Simulator, SimulatorThread
from backendauth_testbed.simulator.state import Backend, SimulatorConfig

__all__ = ["Backend", "Simulator", "SimulatorConfig", "SimulatorThread"]
