"""Just enough of Kubernetes' protobuf encoding to read what kubectl only sends that way.

``kubectl auth can-i`` posts its SelfSubjectAccessReview (``--list``: its
SelfSubjectRulesReview) and ``kubectl create namespace``, ``create configmap``, ``create
secret``, ``create serviceaccount``, ``create token``, ``create role`` / ``clusterrole`` /
``rolebinding`` / ``clusterrolebinding`` their objects, and ``kubectl auth whoami`` its
SelfSubjectReview, as
``application/vnd.kubernetes.protobuf``, and none falls back to JSON. A Kubernetes protobuf
body is the magic ``k8s\\x00`` followed by a ``runtime.Unknown`` message:
``{1: TypeMeta{1: apiVersion, 2: kind}, 2: raw (the object's own message)}``.
Responses are always JSON.
"""

from __future__ import annotations

import base64
import functools
from typing import Any, Callable

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """A body that is not valid Kubernetes protobuf."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def encode_varint(n: int) -> bytes:
    """``n`` (≥ 0) as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fields(data: bytes) -> dict[int, list[Any]]:
    """The top-level fields of one message: number → values (ints or raw bytes)."""
    found: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos:pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(data):
                raise ProtobufError("truncated field")
            value, pos = data[pos:pos + width], pos + width
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        found.setdefault(number, []).append(value)
    return found


def _strings(message: bytes, names: dict[int, str]) -> dict[str, str]:
    values = fields(message)
    return {name: values[number][-1].decode() for number, name in names.items()
            if number in values}


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw object message) of a Kubernetes protobuf body."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    unknown = fields(body[len(MAGIC):])
    type_meta = _strings(unknown.get(1, [b""])[-1], {1: "apiVersion", 2: "kind"})
    return type_meta.get("apiVersion", ""), type_meta.get("kind", ""), unknown.get(2, [b""])[-1]


_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
                        6: "subresource", 7: "name"}
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def decode_self_subject_access_review(body: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview (authorization.k8s.io/v1) as its JSON form."""
    try:
        api_version, kind, raw = unwrap(body)
        review = fields(raw)
        spec = fields(review.get(2, [b""])[-1])
        decoded: dict[str, Any] = {}
        if 1 in spec:
            decoded["resourceAttributes"] = _strings(spec[1][-1], _RESOURCE_ATTRIBUTES)
        if 2 in spec:
            decoded["nonResourceAttributes"] = _strings(spec[2][-1], _NON_RESOURCE_ATTRIBUTES)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed SelfSubjectAccessReview: {exc}") from None
    return {"apiVersion": api_version or "authorization.k8s.io/v1",
            "kind": kind or "SelfSubjectAccessReview", "metadata": {}, "spec": decoded}


_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}


def _string_map(entries: list[bytes]) -> dict[str, str]:
    """A protobuf map<string, string>: repeated {1: key, 2: value} entries."""
    result = {}
    for entry in entries:
        pair = _strings(entry, {1: "key", 2: "value"})
        result[pair.get("key", "")] = pair.get("value", "")
    return result


def _object_meta(message: bytes) -> dict[str, Any]:
    """The ObjectMeta fields a client sets on create (others are the server's)."""
    values = fields(message)
    # gogo-protobuf writes empty strings too; JSON (omitempty) has no such fields
    meta: dict[str, Any] = {k: v for k, v in _strings(message, _META_STRINGS).items() if v}
    if 11 in values:
        meta["labels"] = _string_map(values[11])
    if 12 in values:
        meta["annotations"] = _string_map(values[12])
    if 14 in values:
        meta["finalizers"] = [v.decode() for v in values[14]]
    return meta


def decode_namespace(body: bytes) -> dict[str, Any]:
    """A core/v1 Namespace as its JSON form (metadata and spec.finalizers)."""
    try:
        api_version, kind, raw = unwrap(body)
        namespace = fields(raw)
        decoded: dict[str, Any] = {"apiVersion": api_version or "v1", "kind": kind or "Namespace",
                                   "metadata": _object_meta(namespace.get(1, [b""])[-1])}
        spec = fields(namespace.get(2, [b""])[-1])
        if 1 in spec:
            decoded["spec"] = {"finalizers": [v.decode() for v in spec[1]]}
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed Namespace: {exc}") from None
    return decoded


def _bytes_map(entries: list[bytes]) -> dict[str, str]:
    """A protobuf map<string, bytes> as JSON has it: values base64."""
    result = {}
    for entry in entries:
        pair = fields(entry)
        key = pair.get(1, [b""])[-1].decode()
        result[key] = base64.b64encode(pair.get(2, [b""])[-1]).decode()
    return result


def decode_config_map(body: bytes) -> dict[str, Any]:
    """A core/v1 ConfigMap (``kubectl create configmap``): metadata, data, binaryData,
    immutable."""
    try:
        api_version, kind, raw = unwrap(body)
        cm = fields(raw)
        decoded: dict[str, Any] = {"apiVersion": api_version or "v1", "kind": kind or "ConfigMap",
                                   "metadata": _object_meta(cm.get(1, [b""])[-1])}
        if 2 in cm:
            decoded["data"] = _string_map(cm[2])
        if 3 in cm:
            decoded["binaryData"] = _bytes_map(cm[3])
        if 4 in cm:
            decoded["immutable"] = bool(cm[4][-1])
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed ConfigMap: {exc}") from None
    return decoded


def decode_secret(body: bytes) -> dict[str, Any]:
    """A core/v1 Secret (``kubectl create secret``): metadata, data, type, stringData,
    immutable."""
    try:
        api_version, kind, raw = unwrap(body)
        secret = fields(raw)
        decoded: dict[str, Any] = {"apiVersion": api_version or "v1", "kind": kind or "Secret",
                                   "metadata": _object_meta(secret.get(1, [b""])[-1])}
        if 2 in secret:
            decoded["data"] = _bytes_map(secret[2])
        if 3 in secret:
            decoded["type"] = secret[3][-1].decode()
        if 4 in secret:
            decoded["stringData"] = _string_map(secret[4])
        if 5 in secret:
            decoded["immutable"] = bool(secret[5][-1])
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed Secret: {exc}") from None
    return decoded


_OBJECT_REFERENCE = {1: "kind", 2: "namespace", 3: "name", 4: "uid", 5: "apiVersion",
                     6: "resourceVersion", 7: "fieldPath"}
_BOUND_OBJECT_REFERENCE = {1: "kind", 2: "apiVersion", 3: "name", 4: "uid"}


def decode_service_account(body: bytes) -> dict[str, Any]:
    """A core/v1 ServiceAccount (``kubectl create serviceaccount``): metadata, secrets,
    imagePullSecrets, automountServiceAccountToken."""
    try:
        api_version, kind, raw = unwrap(body)
        sa = fields(raw)
        decoded: dict[str, Any] = {"apiVersion": api_version or "v1",
                                   "kind": kind or "ServiceAccount",
                                   "metadata": _object_meta(sa.get(1, [b""])[-1])}
        if 2 in sa:
            decoded["secrets"] = [_strings(ref, _OBJECT_REFERENCE) for ref in sa[2]]
        if 3 in sa:
            decoded["imagePullSecrets"] = [_strings(ref, {1: "name"}) for ref in sa[3]]
        if 4 in sa:
            decoded["automountServiceAccountToken"] = bool(sa[4][-1])
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed ServiceAccount: {exc}") from None
    return decoded


def decode_token_request(body: bytes) -> dict[str, Any]:
    """An authentication.k8s.io/v1 TokenRequest (``kubectl create token``): metadata and
    spec (audiences, expirationSeconds, boundObjectRef)."""
    try:
        api_version, kind, raw = unwrap(body)
        request = fields(raw)
        values = fields(request.get(2, [b""])[-1])
        spec: dict[str, Any] = {}
        if 1 in values:
            spec["audiences"] = [v.decode() for v in values[1]]
        if 4 in values:
            spec["expirationSeconds"] = _int64(values[4][-1])
        if 3 in values:
            spec["boundObjectRef"] = _strings(values[3][-1], _BOUND_OBJECT_REFERENCE)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed TokenRequest: {exc}") from None
    return {"apiVersion": api_version or "authentication.k8s.io/v1",
            "kind": kind or "TokenRequest",
            "metadata": _object_meta(request.get(1, [b""])[-1]), "spec": spec}


def decode_self_subject_review(body: bytes) -> dict[str, Any]:
    """An authentication.k8s.io/v1 SelfSubjectReview (``kubectl auth whoami``): metadata."""
    try:
        api_version, kind, raw = unwrap(body)
        meta = _object_meta(fields(raw).get(1, [b""])[-1])
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed SelfSubjectReview: {exc}") from None
    return {"apiVersion": api_version or "authentication.k8s.io/v1",
            "kind": kind or "SelfSubjectReview", "metadata": meta}


def _int64(value: Any) -> int:
    """A varint field as Go's int64 (two's complement)."""
    if not isinstance(value, int):
        raise ProtobufError("expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value


_POLICY_RULE = {1: "verbs", 2: "apiGroups", 3: "resources", 4: "resourceNames",
                5: "nonResourceURLs"}


def _repeated_strings(message: bytes, names: dict[int, str]) -> dict[str, list[str]]:
    values = fields(message)
    return {name: [v.decode() for v in values[number]] for number, name in names.items()
            if number in values}


def _label_selector(message: bytes) -> dict[str, Any]:
    values = fields(message)
    selector: dict[str, Any] = {}
    if 1 in values:
        selector["matchLabels"] = _string_map(values[1])
    if 2 in values:
        selector["matchExpressions"] = [
            {**_strings(e, {1: "key", 2: "operator"}), **_repeated_strings(e, {3: "values"})}
            for e in values[2]]
    return selector


def decode_rbac(body: bytes, expected: str) -> dict[str, Any]:
    """A rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding or ClusterRoleBinding
    (``kubectl create role`` and the others); ``expected``: the kind when the body names
    none."""
    try:
        api_version, kind, raw = unwrap(body)
        kind = kind or expected
        obj = fields(raw)
        decoded: dict[str, Any] = {"apiVersion": api_version or "rbac.authorization.k8s.io/v1",
                                   "kind": kind, "metadata": _object_meta(obj.get(1, [b""])[-1])}
        if kind.endswith("Binding"):
            if 2 in obj:
                decoded["subjects"] = [_strings(s, {1: "kind", 2: "apiGroup", 3: "name",
                                                    4: "namespace"}) for s in obj[2]]
            if 3 in obj:
                decoded["roleRef"] = _strings(obj[3][-1], {1: "apiGroup", 2: "kind", 3: "name"})
            return decoded
        decoded["rules"] = [_repeated_strings(rule, _POLICY_RULE) for rule in obj.get(2, [])]
        if 3 in obj:
            decoded["aggregationRule"] = {"clusterRoleSelectors": [
                _label_selector(s) for s in fields(obj[3][-1]).get(1, [])]}
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed {kind or 'RBAC object'}: {exc}") from None
    return decoded


def decode_self_subject_rules_review(body: bytes) -> dict[str, Any]:
    """An authorization.k8s.io/v1 SelfSubjectRulesReview (``kubectl auth can-i --list``)."""
    try:
        api_version, kind, raw = unwrap(body)
        review = fields(raw)
        spec = _strings(review.get(2, [b""])[-1], {1: "namespace"})
    except (IndexError, UnicodeDecodeError) as exc:
        raise ProtobufError(f"malformed SelfSubjectRulesReview: {exc}") from None
    return {"apiVersion": api_version or "authorization.k8s.io/v1",
            "kind": kind or "SelfSubjectRulesReview", "metadata": {}, "spec": spec}


DECODERS: dict[str, Callable[[bytes], dict[str, Any]]] = {
    "Namespace": decode_namespace, "ConfigMap": decode_config_map, "Secret": decode_secret,
    "ServiceAccount": decode_service_account, "TokenRequest": decode_token_request,
    "SelfSubjectReview": decode_self_subject_review,
    "SelfSubjectAccessReview": decode_self_subject_access_review,
    "SelfSubjectRulesReview": decode_self_subject_rules_review,
    **{kind: functools.partial(decode_rbac, expected=kind)
       for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")}}
