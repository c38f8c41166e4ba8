"""A local simulator of the AWS AmplifyBackend API, for tests and the dev sandbox.

It serves CreateBackendAuth, GetBackendAuth, UpdateBackendAuth, DeleteBackendAuth,
ImportBackendAuth, GetBackendJob, ListBackendJobs, UpdateBackendJob and GetBackend over
rest-json, with routes, wire names and input validation taken from the botocore service model, so
plain boto3 talks to it through ``endpoint_url``. The model's other operations are answered 404
``UnknownOperationException`` (and recorded). Test control lives under ``/_sim/`` (below).

It answers the Cognito reads behind an auth resource on the same port (botocore's JSON 1.1
protocol, told apart by ``X-Amz-Target``): cognito-idp DescribeUserPool, DescribeUserPoolClient,
DescribeUserPoolDomain, ListIdentityProviders, DescribeIdentityProvider, ListUserPoolClients,
GetUserPoolMfaConfig; cognito-identity DescribeIdentityPool, GetIdentityPoolRoles. The pools are
the ones a completed CreateBackendAuth job made (with ids in the region the job's call was signed
for), those seeded as "made outside Amplify", and nothing else; every other Cognito operation is
refused (400 ``UnsupportedOperationException``) and recorded as mutating. ``cognito.py`` says
what is modelled.

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
- GetBackend's amplify-meta holds only the ``auth`` category: per auth resource its
  ``serviceType`` (``managed`` or ``imported``) and the Cognito ids in ``output``
  (``UserPoolId``, ``AppClientIDWeb``, ``AppClientID``, ``IdentityPoolId``).
- ImportBackendAuth links an auth resource named ``importedAuth`` (``IMPORTED_RESOURCE_NAME``;
  the name AWS gives it is not documented). Its job fails, with the reason in ``error``, when the
  pools cannot be linked as given (a pool or client that does not exist in the call's account and
  region, a web client with a secret, an identity pool that does not list both clients); an app/env
  that already has an auth resource gets 400 ``BadRequestException``. The pools stay as they are:
  DeleteBackendAuth of an imported resource only unlinks, UpdateBackendAuth is refused (400).
  Whether GetBackendAuth answers for an imported resource is unknown at AWS: the runtime setting
  ``imported_get_backend_auth`` chooses, ``not_found`` (the default: 404 ``NotFoundException``)
  or ``config`` (a resourceConfig read back from the pools).
- No signature check (only the access key id and the credential scope's region are read), no
  ``/prod`` stage prefix. AmplifyBackend state is per account, not per region; a job remembers
  the region its call was signed for (us-east-1 when unsigned), and Cognito ids carry it.

Control (``/_sim/...``, JSON bodies; ``account`` defaults to ``base_account``):

- ``GET /_sim/calls[?account=A]``: the call log. Every key is camelCase::

    {"calls": [CALL, ...],                       # the calls made in account A, oldest first
     "byOperation": {"<Operation>": count},
     "byResource": {"<appId>/<env>/<resourceName>": {"<Operation>": count}},
     "mutating": [CALL, ...],                     # the calls among them that change something
     "byAccount": {"<account>": {"calls", "byOperation", "byResource", "mutating"}}}

  where a CALL is ``{"seq": int, "time": float (epoch seconds), "service": "amplifybackend" |
  "cognito-idp" | "cognito-identity" | "sts", "operation": str, "mutating": bool, "account": str,
  "region": str | null (the SigV4 scope's), "appId", "backendEnvironmentName", "resourceName",
  "resourceId" (the user pool, identity pool or domain a Cognito call names), "httpStatus": int,
  "errorCode": str | null, "jobId": str | null, "fault": str | null}`` (unused members null).
  ``mutating`` is true for every AmplifyBackend operation but the Get and List ones (served or
  not: a DeleteBackend is recorded too) and every Cognito operation that is not a read; a
  mutating call is listed whatever its answer was. Request bodies are never recorded.
- ``POST /_sim/cognito/seed``: a user pool made outside Amplify, ``{"account"?, "region"?,
  "userPoolName"?, "clients"?: [{"name", "secret": bool}], "identityPool"?: {"name"?,
  "clients"?: [client names], "allowUnauthenticated"?}}`` (default clients: ``web`` without and
  ``native`` with a secret; no identity pool unless given) → ``{"account", "region",
  "userPoolId", "clients": {name: id}, "identityPoolId": str | null}``.
- ``POST /_sim/resources``: put (or with ``resourceConfig`` null remove) an auth resource behind
  the operator's back, with its Cognito resources (``region`` optional).
- ``GET /_sim/state[?account=A]``: apps, jobs, resources (secrets redacted), ``links`` (each auth
  resource's ids, region and whether it is imported) and ``cognito`` (pools and clients, no
  secrets).
- ``POST /_sim/config``, ``/_sim/faults``, ``/_sim/faults/clear``, ``/_sim/apps``,
  ``/_sim/jobs/{jobId}``, ``/_sim/hold``, ``/_sim/deny_role``, ``/_sim/require_external_id``,
  ``/_sim/reset``; ``GET /_sim/config``, ``/_sim/access``: see ``server.py`` and ``state.py``.
  Queued faults may name a Cognito read (``throttle`` → 400 ``TooManyRequestsException``,
  ``access_denied`` → 400 ``AccessDeniedException`` naming the action, ``timeout`` and
  ``internal`` → 500 ``InternalErrorException``); the configured ``throttle_rate`` and
  ``timeout_rate`` apply to Cognito reads too, ``rate_limit`` does not.
- STS: any well-formed role can be assumed unless ``/_sim/deny_role`` or
  ``/_sim/require_external_id`` says otherwise; no trust policies, session policies, tags or
  role chaining limits. Only ``AssumeRole`` and ``GetCallerIdentity`` are served.
"""

from backendauth_testbed.simulator.server import Simulator, SimulatorThread
from backendauth_testbed.simulator.state import IMPORTED_RESOURCE_NAME, Backend, SimulatorConfig

__all__ = ["IMPORTED_RESOURCE_NAME", "Backend", "Simulator", "SimulatorConfig", "SimulatorThread"]
