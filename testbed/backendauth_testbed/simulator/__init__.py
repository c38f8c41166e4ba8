"""A local simulator of the AWS AmplifyBackend API, for tests and the dev sandbox.

It serves CreateBackendAuth, GetBackendAuth, UpdateBackendAuth, DeleteBackendAuth,
GetBackendJob, ListBackendJobs, UpdateBackendJob and GetBackend over rest-json, with routes, wire names and
input validation taken from the botocore service model, so plain boto3 talks to it through
``endpoint_url``. Test control lives under ``/_sim/`` (see ``server.py``).

It also answers STS ``AssumeRole`` and ``GetCallerIdentity`` (query protocol, ``POST /`` on the
same port; boto3 reaches it through ``AWS_ENDPOINT_URL_STS``). AmplifyBackend state is kept per
AWS account: a call acts in the account of the credentials it is signed with, read from the
SigV4 ``Authorization`` header (keys AssumeRole issued act in the role's account, any other key
in ``base_account``). Issued credentials expire after ``credential_ttl_seconds`` (at most);
a call signed with expired ones is answered 403 ``ExpiredTokenException``.

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
- No signature check (only the access key id is read), no regions, no ``/prod`` stage prefix;
  other operations of the model answer 404 ``UnknownOperationException``.
- STS: any well-formed role can be assumed unless ``/_sim/deny_role`` or
  ``/_sim/require_external_id`` says otherwise; no trust policies, session policies, tags or
  role chaining limits. Only ``AssumeRole`` and ``GetCallerIdentity`` are served.
"""

from backendauth_testbed.simulator.server import Simulator, SimulatorThread
from backendauth_testbed.simulator.state import Backend, SimulatorConfig

__all__ = ["Backend", "Simulator", "SimulatorConfig", "SimulatorThread"]
