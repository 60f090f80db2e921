"""API auditing as kube-apiserver does it (``--audit-policy-file`` with ``--audit-log-path``):
each request the policy (:mod:`podling.api.auditpolicy`) gives a level other than ``None``
is recorded in the audit log (:mod:`.auditlog`) as ``audit.k8s.io/v1`` Events:

    RequestReceived ──▶ [ResponseStarted: watch, proxy, log, exec, attach, portforward] ──▶
    ResponseComplete          (a 401: a single ResponseStarted, evaluated without a user)

Every response carries an ``Audit-Id`` header, the client's own ``Audit-ID`` if it sent one.
``user`` is the authenticated user, ``impersonatedUser`` the one impersonated; ``objectRef``
comes from the URL, and for creates and updates also from the body (a generated name stays
empty). Code below the handlers adds ``annotations`` with :func:`annotate`: the
authorization decision and reason, Pod Security's verdicts. Levels ``Request`` and
``RequestResponse`` add the request body as decoded (without Kubernetes' defaults, which
podling adds later) and the JSON response body.
"""

from __future__ import annotations

import contextvars
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from ..api import auditpolicy
from ..api.resources import find
from . import bodies
from .auth import USER_KEY
from .auditlog import AuditLog, micro_time
from .auditrequest import REF_ORDER, describe, source_ips, user_info

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AUDITOR_KEY = web.AppKey("auditor", object)
_ID_KEY = web.RequestKey("audit_id", str)
_RECORD_KEY = web.RequestKey("audit_record", object)
_current: contextvars.ContextVar[Record | None] = contextvars.ContextVar("audit", default=None)
LONG_RUNNING = ("attach", "exec", "proxy", "log", "portforward")
_BODY_VERBS = ("create", "update", "patch")


def annotate(key: str, value: str) -> None:
    """Add an annotation to the audit event of the request being served (the first value
    of a key stays); nothing when it is not audited."""
    record = _current.get()
    if record is not None:
        record.annotations.setdefault(key, value)


def annotate_decision(allowed: bool, reason: str) -> None:
    """The authorizer's annotations: ``authorization.k8s.io/decision`` (allow / forbid)
    and ``authorization.k8s.io/reason`` (also when empty)."""
    annotate("authorization.k8s.io/decision", "allow" if allowed else "forbid")
    annotate("authorization.k8s.io/reason", reason)


@dataclass
class Record:
    """One audited request: its decision and what its events share."""

    decision: auditpolicy.Decision
    base: dict[str, Any]  # kind … objectRef, in the event's key order
    received: float
    user: Any
    long_running: bool
    annotations: dict[str, str] = field(default_factory=dict)
    started: web.StreamResponse | None = None  # a long-running one's, once it started
    request_object: Any = None  # the decoded body of a create, update or patch


@dataclass(frozen=True)
class AuditOptions:
    """kube-apiserver's flags: ``--audit-policy-file``, ``--audit-log-path`` (``-``:
    standard output), ``--audit-log-maxsize`` (MB, 0: 100), ``--audit-log-maxbackup`` and
    ``--audit-log-maxage`` (days; 0: no limit). Both a policy and a path audit; a path
    alone creates the log and records nothing, as in Kubernetes."""

    policy_file: str = ""
    log_path: str = ""
    max_size_mb: int = 0
    max_backups: int = 0
    max_age_days: int = 0

    def policy(self) -> auditpolicy.Policy | None:
        """The policy (None without a file); ValueError with kube-apiserver's text."""
        if not self.policy_file:
            return None
        try:
            return auditpolicy.load_file(self.policy_file)
        except auditpolicy.PolicyError as exc:
            raise ValueError(f"loading audit policy file: {exc}") from None


class Auditor:
    """Writes the events of the requests ``policy`` selects to ``log``."""

    def __init__(self, policy: auditpolicy.Policy, log: AuditLog) -> None:
        self.policy, self.log = policy, log

    @classmethod
    def open(cls, options: AuditOptions) -> Auditor | None:
        """The auditor the options ask for, or None (no log path, or no policy)."""
        if not options.log_path:
            options.policy()  # a bad policy fails the start all the same
            return None
        log = AuditLog(options.log_path, max_size_mb=options.max_size_mb,
                       max_backups=options.max_backups, max_age_days=options.max_age_days)
        policy = options.policy()
        if policy is None:
            log.close()
            return None
        return cls(policy, log)

    async def close(self, _app: object = None) -> None:
        self.log.close()

    def emit(self, record: Record, stage: str, response: web.StreamResponse | None,
             *, request: web.Request | None = None) -> None:
        if stage in record.decision.omit_stages:
            return
        event = {**record.base, "stage": stage}
        if request is not None and request.get(USER_KEY) not in (None, record.user):
            event = _after(event, "user", "impersonatedUser", user_info(request[USER_KEY]))
        if response is not None:
            event["responseStatus"] = _response_status(response)
        if response is not None and record.decision.level != "Metadata":
            _add_bodies(event, record, response)
        event["requestReceivedTimestamp"] = micro_time(record.received)
        event["stageTimestamp"] = micro_time(time.time() if stage != "RequestReceived"
                                             else record.received)
        if record.annotations and stage != "RequestReceived":
            event["annotations"] = dict(sorted(record.annotations.items()))
        self.log.write(event)


def _after(event: dict[str, Any], key: str, new_key: str, value: Any) -> dict[str, Any]:
    """``event`` with ``new_key`` inserted right after ``key``."""
    out: dict[str, Any] = {}
    for k, v in event.items():
        out[k] = v
        if k == key:
            out[new_key] = value
    return out


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: the request's audit ID, then (after the whole chain) its
    ResponseComplete event, or the single event of a 401."""
    request[_ID_KEY] = request.headers.get("Audit-Id") or str(uuid.uuid4())
    auditor = request.app.get(AUDITOR_KEY)
    if auditor is None:
        return await handler(request)
    received = time.time()
    try:
        response = await handler(request)
    except BaseException:  # the client went away (a watch, logs): the stream ended
        record = request.get(_RECORD_KEY)
        if isinstance(record, Record) and record.started is not None:
            auditor.emit(record, "ResponseComplete", record.started, request=request)
        raise
    record = request.get(_RECORD_KEY)
    if isinstance(record, Record):
        _note_request_object(record, request)
        if record.long_running and record.started is None:
            auditor.emit(record, "ResponseStarted", response, request=request)
        auditor.emit(record, "ResponseComplete", response, request=request)
    elif response.status == 401:
        record = _new_record(auditor, request, None, received)
        if record is not None:
            auditor.emit(record, "ResponseStarted", response)
    return response


@web.middleware
async def received_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Right after authentication: the policy's decision, and the RequestReceived event."""
    auditor = request.app.get(AUDITOR_KEY)
    if auditor is None:
        return await handler(request)
    record = _new_record(auditor, request, request[USER_KEY], time.time())
    if record is None:
        return await handler(request)
    request[_RECORD_KEY] = record
    auditor.emit(record, "RequestReceived", None)
    token = _current.set(record)
    try:
        return await handler(request)
    finally:
        _current.reset(token)


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """As headers go out: the ``Audit-Id`` header; a long-running request's
    ResponseStarted event."""
    audit_id = request.get(_ID_KEY)
    if audit_id and "Audit-Id" not in response.headers:
        response.headers["Audit-Id"] = audit_id
    record = request.get(_RECORD_KEY)
    auditor = request.app.get(AUDITOR_KEY)
    if isinstance(record, Record) and record.long_running and record.started is None and \
            auditor:
        record.started = response
        auditor.emit(record, "ResponseStarted", response)


def _new_record(auditor: Auditor, request: web.Request, user: Any,
                received: float) -> Record | None:
    """The request's record, or None when the policy says level None."""
    described = describe(request)
    decision = auditor.policy.decide(auditpolicy.Request(
        user=None if user is None else user.name,
        groups=tuple(user.groups) if user is not None else (), verb=described.verb,
        path=request.path, resource=described.resource, subresource=described.subresource,
        group=described.group, namespace=described.namespace, name=described.name))
    if decision.level == "None":
        return None
    base: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": decision.level,
        "auditID": request[_ID_KEY], "stage": "", "requestURI": request.raw_path,
        "verb": described.verb, "user": user_info(user) if user is not None else {}}
    ips = source_ips(request)
    if ips:
        base["sourceIPs"] = ips
    agent = request.headers.get("User-Agent", "")
    if agent:
        base["userAgent"] = agent if len(agent) <= 1024 else agent[:1024] + "...TRUNCATED"
    if described.resource:
        base["objectRef"] = described.object_ref()
    long_running = described.verb in ("watch", "proxy") or described.subresource in LONG_RUNNING
    return Record(decision, base, received, user, long_running)


def _response_status(response: web.StreamResponse) -> dict[str, Any]:
    """``{"metadata": {}, "code": N}``, with the status, message, reason and details of a
    Status the response carries (errors, some deletes)."""
    status: dict[str, Any] = {"metadata": {}}
    body = _json_body(response) if _is_status(response) else None
    if isinstance(body, dict) and body.get("kind") == "Status":
        status.update({k: body[k] for k in ("status", "message", "reason", "details")
                       if body.get(k)})
    status["code"] = response.status
    return status


def _is_status(response: web.StreamResponse) -> bool:
    """Whether the body is a Status (its kind comes first), without decoding a list."""
    body = response.body if isinstance(response, web.Response) else None
    return isinstance(body, bytes) and b'"kind":"Status"' in body[:64]


def _json_body(response: web.StreamResponse | None) -> Any:
    """The decoded JSON body of an ordinary response, else None."""
    if not isinstance(response, web.Response) or not isinstance(response.body, bytes) or \
            "json" not in (response.content_type or ""):
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def _add_bodies(event: dict[str, Any], record: Record, response: web.StreamResponse) -> None:
    """requestObject (level Request and up) and responseObject (RequestResponse)."""
    if "objectRef" not in event:
        return
    if record.request_object is not None:
        event["requestObject"] = _without_managed_fields(record.request_object, record.decision)
    if record.decision.level == "RequestResponse":
        answered = _json_body(response)
        if answered is not None:
            event["responseObject"] = _without_managed_fields(answered, record.decision)


def _note_request_object(record: Record, request: web.Request) -> None:
    """Decode the body of a create, update or patch as the handler read it (JSON, YAML or
    protobuf); a create's or update's fills the empty parts of ``objectRef`` from its
    metadata, as Kubernetes' LogRequestObject does."""
    ref = record.base.get("objectRef")
    verb = record.base["verb"]
    body = request.get(bodies.BODY_KEY)
    if ref is None or verb not in _BODY_VERBS or not body:
        return
    try:
        media = bodies.media_type(request)
        if media.endswith("protobuf"):
            resource = find(ref.get("apiGroup", ""), ref.get("apiVersion", ""), ref["resource"])
            decoded = bodies.parse_protobuf(body, resource.kind)[0] if resource else None
        elif media.endswith("yaml"):
            decoded = bodies.parse_document(body, "application/yaml")[0]
        else:
            decoded = json.loads(body)
    except Exception:  # a body the handler refused: recorded without it
        return
    record.request_object = decoded
    meta = decoded.get("metadata") if isinstance(decoded, dict) else None
    if verb == "patch" or not isinstance(meta, dict):
        return
    for key in ("namespace", "name", "uid", "resourceVersion"):
        if not ref.get(key) and isinstance(meta.get(key), str) and meta[key]:
            ref[key] = meta[key]
    record.base["objectRef"] = {k: ref[k] for k in REF_ORDER if ref.get(k)}


def _without_managed_fields(obj: Any, decision: auditpolicy.Decision) -> Any:
    if not decision.omit_managed_fields or not isinstance(obj, dict):
        return obj
    items = obj.get("items")
    if isinstance(items, list):
        return {**obj, "items": [_without_managed_fields(i, decision) for i in items]}
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj
