"""The RBAC authorizer: Roles, ClusterRoles and their bindings, kept in memory.

:class:`RbacAuthorizer` lists every object of ``rbac.authorization.k8s.io`` from the
datastore at start and then follows a watch of them, as Kubernetes' authorizer follows its
informers: a role or binding written through any server applies on every server once the
watch brings it (at once on the server that wrote it: :meth:`RbacAuthorizer.caught_up`).

A user is allowed a request when a rule of a role bound to them allows it (:mod:`podling.api.
rbac`): ClusterRoleBindings first, then the RoleBindings of the request's namespace. A
binding whose role does not exist grants nothing; the refusal then says why, as Kubernetes
does: ``RBAC: clusterrole.rbac.authorization.k8s.io "x" not found``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterator, Mapping

from ..api import errors, rbac, selectors
from ..api.types import Obj
from ..storage.interface import Storage, StorageError, WatchStream
from .authz import Attributes, Subject

log = logging.getLogger(__name__)

PREFIX = f"/{rbac.GROUP}/"
RESYNC_BACKOFF = 1.0


def request_of(attrs: Attributes) -> rbac.Request:
    """What RBAC matches; a list or watch of one object by ``metadata.name=<name>`` names it
    (``kubectl get pod x -w``), as Kubernetes' RequestInfo does."""
    name = attrs.name or ""
    if not name and attrs.verb in ("list", "watch") and attrs.field_selector:
        name = _selected_name(attrs.field_selector)
    return rbac.Request(verb=attrs.verb, group=attrs.group, resource=attrs.resource,
                        subresource=attrs.subresource or "", name=name, path=attrs.path)


def _selected_name(field_selector: str) -> str:
    try:
        selector = selectors.parse_field_selector(field_selector)
    except selectors.SelectorError:
        return ""
    return selector.requires_exact_match("metadata.name") or ""


class RbacAuthorizer:
    """RBAC decisions over an in-memory copy of the stored roles and bindings."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._objects: dict[str, Obj] = {}  # storage key → object
        self._buckets: dict[str, dict[str, Obj]] = {}  # key without its name → key → object
        self._revision = 0
        self._advanced = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stream: WatchStream | None = None

    # -- keeping the copy --------------------------------------------------------------

    async def start(self) -> None:
        """Load the stored objects (before the first decision) and follow their changes."""
        await self._load()
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _load(self) -> None:
        items, revision = await self._storage.list(PREFIX)
        self._objects, self._buckets = {}, {}
        for obj in items:
            self._put(_key(obj), obj)
        await self._advance(revision)

    async def _follow(self) -> None:
        while True:
            try:
                stream = self._stream = await self._storage.watch(PREFIX, self._revision)
                await self._advance(self._revision)
                try:
                    async for event in stream:
                        if event.type == "DELETED":
                            self._drop(_key(event.obj))
                        else:
                            self._put(_key(event.obj), event.obj)
                        await self._advance(event.rev)
                finally:
                    stream.close()
            except asyncio.CancelledError:
                raise
            except StorageError as exc:
                log.warning("RBAC watch ended (%s); listing again", exc)
            except Exception:  # a bug: logged, and the copy is listed again
                log.exception("RBAC watch failed; listing again")
            await asyncio.sleep(RESYNC_BACKOFF)
            try:
                await self._load()
            except StorageError as exc:
                log.warning("RBAC list failed: %s", exc)

    def _put(self, key: str, obj: Obj) -> None:
        self._objects[key] = obj
        self._buckets.setdefault(key.rpartition("/")[0] + "/", {})[key] = obj

    def _drop(self, key: str) -> None:
        self._objects.pop(key, None)
        self._buckets.get(key.rpartition("/")[0] + "/", {}).pop(key, None)

    async def _advance(self, revision: int) -> None:
        async with self._advanced:
            self._revision = max(self._revision, revision)
            self._advanced.notify_all()

    async def caught_up(self, revision: int, timeout: float = 2.0) -> None:
        """Return once the copy holds every change of the datastore up to ``revision``
        (or after ``timeout``: the watch is late, and the change applies when it arrives)."""
        def current() -> bool:
            return self._stream is not None and self._stream.bookmark_revision() >= revision
        async with self._advanced:
            try:
                await asyncio.wait_for(self._advanced.wait_for(current), timeout)
            except asyncio.TimeoutError:
                log.warning("RBAC copy not at revision %d after %.0f s", revision, timeout)

    # -- decisions ---------------------------------------------------------------------

    def _of(self, resource: str, namespace: str | None = None) -> Iterator[Obj]:
        """The objects of ``resource`` (in ``namespace``): one bucket, not a scan."""
        prefix = f"{PREFIX}{resource}/" + (f"{namespace}/" if namespace else "")
        return iter(self._buckets.get(prefix, {}).values())

    def role_rules(self, role_ref: Mapping[str, Any], namespace: str) -> list[rbac.Rule]:
        """The rules of the role a roleRef names (a Role in ``namespace``, or a ClusterRole);
        raises :class:`RoleNotFound` when it does not exist."""
        kind, name = str(role_ref.get("kind") or ""), str(role_ref.get("name") or "")
        if kind == "Role":
            key = f"{PREFIX}roles/{namespace}/{name}"
        elif kind == "ClusterRole":
            key = f"{PREFIX}clusterroles/{name}"
        else:
            raise LookupError(f"unsupported role reference kind: {rbac.quoted(kind)}")
        role = self._objects.get(key)
        if role is None:
            raise RoleNotFound(kind, name)
        return [r for r in role.get("rules") or [] if isinstance(r, dict)]

    def _bound_rules(self, user: Subject, namespace: str | None
                     ) -> Iterator[tuple[list[rbac.Rule], LookupError | None, str]]:
        """(rules, None, grant) of each role bound to ``user`` that applies in ``namespace``
        (None: cluster-wide only), ``grant`` naming the binding and subject that bind it
        (:func:`rbac.describe_grant`); ([], why, grant) for a binding whose role is missing."""
        scopes = [("clusterrolebindings", None)]
        if namespace:
            scopes.append(("rolebindings", namespace))
        for resource, scope in scopes:
            for binding in self._of(resource, scope):
                subject = rbac.applying_subject(binding, user.name, user.groups)
                if subject is None:
                    continue
                grant = rbac.describe_grant(binding, subject)
                try:
                    yield self.role_rules(binding.get("roleRef") or {}, scope or ""), None, grant
                except LookupError as exc:
                    yield [], exc, grant

    def decide(self, user: Subject, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason): Kubernetes' ``RBAC: allowed by <grant>`` when allowed; when
        not, the roles that bindings of the user refer to but that do not exist, if any."""
        request = request_of(attrs)
        problems: list[str] = []
        for rules, problem, grant in self._bound_rules(user, attrs.namespace):
            if any(rbac.rule_allows(rule, request) for rule in rules):
                return True, f"RBAC: allowed by {grant}"
            if problem is not None:
                problems.append(str(problem))
        return False, "RBAC: " + errors.aggregate(problems) if problems else ""

    def rules_for(self, user: Subject, namespace: str | None
                  ) -> tuple[list[rbac.Rule], list[LookupError]]:
        """Every rule the user holds in ``namespace`` (cluster-wide ones included), and the
        problems met (missing roles)."""
        rules: list[rbac.Rule] = []
        problems: list[LookupError] = []
        for found, problem, _ in self._bound_rules(user, namespace):
            rules += found
            if problem is not None:
                problems.append(problem)
        return rules, problems


class RoleNotFound(LookupError):
    """A binding's role that does not exist. ``str()`` is the authorizer's text
    (``role.rbac.authorization.k8s.io "x" not found``); :attr:`stored_text` the registry's
    (``roles.rbac…``), which escalation checks report."""

    def __init__(self, kind: str, name: str) -> None:
        self.resource = kind.lower()
        self.name = name
        super().__init__(f"{self.resource}.{rbac.GROUP} {rbac.quoted(name)} not found")

    @property
    def stored_text(self) -> str:
        return f"{self.resource}s.{rbac.GROUP} {rbac.quoted(self.name)} not found"


def _key(obj: Obj) -> str:
    """The storage key of an RBAC object (as :func:`.registry.store.object_key` makes it)."""
    meta = obj.get("metadata") or {}
    resource = obj.get("kind", "").lower() + "s"
    namespace = meta.get("namespace")
    return f"{PREFIX}{resource}/{namespace}/{meta['name']}" if namespace else \
        f"{PREFIX}{resource}/{meta['name']}"
