"""serviceaccounts/{name}/token (TokenRequest) and the authentication of the tokens it issues.

    POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token
    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
     "spec": {"audiences": [...]?, "expirationSeconds": 3600?,
              "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name", "uid"?}?}}
    → 201 the TokenRequest with status {"token", "expirationTimestamp"}

As Kubernetes 1.32's TokenREST: a name or namespace in the body must match the URL (422);
the ServiceAccount must exist (404); audiences default to the server's
(:data:`.satokens.AUDIENCES`), expirationSeconds to 3600 and must lie in [600, 2^32] (422);
a bound Pod, Secret or Node must exist (404) with the given uid (409), and a bound pod must
run as this ServiceAccount (400). A pod-bound token also names the pod's node. A pod-bound
request for 3607 s (what projected volumes ask) is signed for a year and warns after 3607 s,
as kube-apiserver's --service-account-extend-token-expiration does; the answer still says
3607 s. A node (``system:node:<n>``) gets a token only bound to a pod on itself, with its uid
(Kubernetes' NodeRestriction messages, 403).

A token authenticates (:meth:`TokenRequests.authenticate`) as
``system:serviceaccount:<ns>:<name>`` in groups ``system:serviceaccounts``,
``system:serviceaccounts:<ns>`` and ``system:authenticated`` while its signature, issuer,
audience and lifetime hold (:mod:`.satokens`) and the ServiceAccount and the bound object
still exist with the uids in the token (not deleted more than 60 s ago); else it is unknown
(401).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from ..api import errors, schema, validation
from ..api.resources import AUTHENTICATION_GROUP, Resource
from ..api.serviceaccounts import GROUP, user_name
from ..api.types import Obj
from ..util.timefmt import epoch_rfc3339, parse_rfc3339
from .auth import User
from .authz import node_name_of
from .registry.store import RegistryStore
from .satokens import (AUDIENCES, EXTENDED_SECONDS, KUBERNETES_CLAIM, LEEWAY_SECONDS, Ref,
                       TokenError, TokenSigner, claims)

#: Only for decoding request bodies; served solely as the serviceaccounts/token subresource.
TOKEN_REQUESTS = Resource(AUTHENTICATION_GROUP, "v1", "tokenrequests", "tokenrequest",
                          "TokenRequest", True, schema.TOKEN_REQUEST, verbs=("create",))
DEFAULT_SECONDS = 3600
WARN_ONLY_SECONDS = 3607
EXTRA_PREFIX = "authentication.kubernetes.io/"
#: boundObjectRef kinds → (store, namespaced)
_BOUND_KINDS = {"Pod": ("pods", True), "Secret": ("secrets", True), "Node": ("nodes", False)}


class TokenRequests:
    """Issues and checks the tokens of the ServiceAccounts in ``stores``."""

    def __init__(self, stores: dict[str, RegistryStore], signer: TokenSigner, *,
                 audiences: tuple[str, ...] = AUDIENCES) -> None:
        self.stores = stores
        self.signer = signer
        self.audiences = audiences

    # -- issuing -------------------------------------------------------------------------

    async def create(self, user: Any, namespace: str, name: str, request: Obj) -> Obj:
        """Answer a decoded TokenRequest for ServiceAccount ``namespace/name``."""
        meta = request.setdefault("metadata", {})
        _check_names(meta, namespace, name)
        sa = await self.stores["serviceaccounts"].get(namespace, name)
        spec = request.setdefault("spec", {})
        spec["audiences"] = list(spec.get("audiences") or self.audiences)
        if spec.get("expirationSeconds") is None:
            spec["expirationSeconds"] = DEFAULT_SECONDS
        now = time.time()
        meta.update(name=name, namespace=namespace, creationTimestamp=epoch_rfc3339(now))
        request.pop("status", None)
        causes = validation.validate_token_request(request)
        if causes:
            raise errors.invalid_object("TokenRequest", "", causes, AUTHENTICATION_GROUP)
        node = node_name_of(user)
        if node is not None and not getattr(user, "admin", False):
            await self._restrict_node(node, namespace, name, spec.get("boundObjectRef"))
        bound = await self._bound(namespace, name, spec.get("boundObjectRef"))
        seconds = spec["expirationSeconds"]
        exp, warn_after = seconds, 0
        if bound.get("pod") and seconds == WARN_ONLY_SECONDS and \
                set(spec["audiences"]) <= set(self.audiences):
            exp, warn_after = EXTENDED_SECONDS, seconds
        payload = claims(namespace, Ref(name, sa["metadata"]["uid"]),
                         audiences=spec["audiences"], expiration_seconds=exp,
                         warn_after_seconds=warn_after, now=now, **bound)
        request["status"] = {"token": self.signer.sign(payload),
                             "expirationTimestamp": epoch_rfc3339(now + seconds)}
        request["apiVersion"], request["kind"] = f"{AUTHENTICATION_GROUP}/v1", "TokenRequest"
        return request

    async def _bound(self, namespace: str, sa_name: str, ref: Any) -> dict[str, Ref]:
        """The claims' pod / secret / node references of a boundObjectRef."""
        if not isinstance(ref, dict):
            return {}
        kind, api_version = ref.get("kind") or "", ref.get("apiVersion") or ""
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        if group or kind not in _BOUND_KINDS:
            version = api_version.rsplit("/", 1)[-1]
            raise errors.bad_request(f"cannot bind token to object of type "
                                     f"{group}/{version}, Kind={kind}")
        store, namespaced = _BOUND_KINDS[kind]
        obj = await self.stores[store].get(namespace if namespaced else None,
                                           ref.get("name") or "")
        uid = obj["metadata"]["uid"]
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.conflict(kind, ref.get("name") or "",
                                  f"the UID in the bound object reference ({ref['uid']}) does "
                                  "not match the UID in record. The object might have been "
                                  "deleted and then recreated")
        found = Ref(obj["metadata"]["name"], uid)
        if kind == "Pod":
            if ((obj.get("spec") or {}).get("serviceAccountName") or "") != sa_name:
                raise errors.bad_request(f'cannot bind token for serviceaccount "{sa_name}" to '
                                         "pod running with different serviceaccount name.")
            return {"pod": found, **await self._pod_node(obj)}
        return {"secret" if kind == "Secret" else "node": found}

    async def _pod_node(self, pod: Obj) -> dict[str, Ref]:
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if not node:
            return {}
        try:
            return {"node": Ref(node, (await self.stores["nodes"].get(None, node))
                                ["metadata"]["uid"])}
        except errors.ApiError as exc:
            if exc.code != 404:
                raise
            return {"node": Ref(node, "")}

    async def _restrict_node(self, node: str, namespace: str, name: str, ref: Any) -> None:
        """NodeRestriction: a node's token must be bound (with uid) to a pod on that node."""
        if not isinstance(ref, dict) or ref.get("apiVersion") != "v1" or \
                ref.get("kind") != "Pod" or not ref.get("name"):
            raise _node_forbidden(name, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise _node_forbidden(name, "node requested token with a pod binding without a uid")
        pod = await self.stores["pods"].get(namespace, ref["name"])
        if pod["metadata"]["uid"] != ref["uid"]:
            raise _node_forbidden(name, f"the UID in the bound object reference ({ref['uid']}) "
                                  "does not match the UID in record. The object might have "
                                  "been deleted and then recreated")
        if ((pod.get("spec") or {}).get("nodeName") or "") != node:
            raise _node_forbidden(name, "node requested token bound to a pod scheduled on a "
                                  "different node")

    # -- authentication ------------------------------------------------------------------

    async def authenticate(self, token: str) -> User | None:
        """The service account a token stands for, or None (not ours, or no longer valid)."""
        if token.count(".") != 2:
            return None
        try:
            payload = self.signer.verify(token, audiences=self.audiences)
        except TokenError:
            return None
        private = payload[KUBERNETES_CLAIM]
        namespace = str(private.get("namespace") or "")
        sa = private["serviceaccount"]
        if not await self._still_there("serviceaccounts", namespace, sa):
            return None
        extra: list[tuple[str, tuple[str, ...]]] = []
        for kind, store, scope in (("pod", "pods", namespace), ("secret", "secrets", namespace),
                                   ("node", "nodes", None)):
            ref = private.get(kind)
            if not isinstance(ref, dict):
                continue
            if (kind != "node" or "pod" not in private) and \
                    not await self._still_there(store, scope, ref):
                return None
            if kind != "secret":
                extra += [(f"{EXTRA_PREFIX}{kind}-name", (str(ref.get("name") or ""),)),
                          (f"{EXTRA_PREFIX}{kind}-uid", (str(ref.get("uid") or ""),))]
        if payload.get("jti"):
            extra.append((f"{EXTRA_PREFIX}credential-id", (f"JTI={payload['jti']}",)))
        return User(user_name(namespace, str(sa.get("name") or "")),
                    (GROUP, f"{GROUP}:{namespace}", "system:authenticated"), extra=tuple(extra),
                    uid=str(sa.get("uid") or ""))

    async def _still_there(self, store: str, namespace: str | None, ref: dict) -> bool:
        """Whether the object a claim names exists with the claim's uid and was not deleted
        more than the leeway ago."""
        try:
            obj = await self.stores[store].get(namespace, str(ref.get("name") or ""))
        except errors.ApiError as exc:
            if exc.code == 404:
                return False
            raise
        meta = obj["metadata"]
        if meta.get("uid") != ref.get("uid"):
            return False
        deleted = meta.get("deletionTimestamp")
        limit = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=LEEWAY_SECONDS)
        return not deleted or parse_rfc3339(deleted) >= limit


def _check_names(meta: Obj, namespace: str, name: str) -> None:
    if meta.get("name") and meta["name"] != name:
        raise errors.invalid_object("TokenRequest", name, [errors.invalid(
            "metadata.name", meta["name"], "must match the service account name if specified")],
            AUTHENTICATION_GROUP)
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.invalid_object("TokenRequest", name, [errors.invalid(
            "metadata.namespace", meta["namespace"],
            "must match the service account namespace if specified")], AUTHENTICATION_GROUP)


def _node_forbidden(name: str, message: str) -> errors.ApiError:
    return errors.ApiError(403, "Forbidden", f'serviceaccounts "{name}" is forbidden: {message}',
                           {"name": name, "kind": "serviceaccounts"})
