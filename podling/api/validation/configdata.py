"""ConfigMap and Secret validation (``ValidateConfigMap``, ``ValidateSecret`` and their
updates in pkg/apis/core/validation, 1.32).

The objects are already prepared (:mod:`podling.api.configdata`): a Secret's stringData is
merged into ``data`` and its type defaulted; ``[]byte`` values are canonical base64.
"""

from __future__ import annotations

import json
from typing import Any

from podling.api import configdata
from podling.api.errors import Cause, forbidden, invalid, required, too_long
from podling.api.validation import _formats as fmt
from podling.api.validation._util import IMMUTABLE_MSG, as_dict, as_str, key
from podling.api.validation.meta import validate_object_meta, validate_object_meta_update

#: the most a ConfigMap's or a Secret's data may hold, in bytes (core.MaxSecretSize)
MAX_SIZE = 1024 * 1024
IMMUTABLE_SET_MSG = "field is immutable when `immutable` is set"
REDACTED = "<secret contents redacted>"

SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
SERVICE_ACCOUNT_NAME_KEY = "kubernetes.io/service-account.name"
DOCKERCFG, DOCKERCFG_KEY = "kubernetes.io/dockercfg", ".dockercfg"
DOCKER_CONFIG_JSON, DOCKER_CONFIG_JSON_KEY = "kubernetes.io/dockerconfigjson", ".dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH, SSH_PRIVATE_KEY = "kubernetes.io/ssh-auth", "ssh-privatekey"
TLS, TLS_CERT_KEY, TLS_PRIVATE_KEY = "kubernetes.io/tls", "tls.crt", "tls.key"


def _keys(values: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for k in values:
        errs += [invalid(key(path, k), k, m) for m in fmt.is_config_map_key(k)]
    return errs


# --- ConfigMap -------------------------------------------------------------------------


def validate_config_map(cm: dict[str, Any]) -> list[Cause]:
    """Name a DNS subdomain; keys config keys, none in both data and binaryData; at most
    1 MiB of values altogether (reported on the whole object, field ``[]``)."""
    errs = validate_object_meta(as_dict(cm.get("metadata")), namespaced=True)
    data, binary = as_dict(cm.get("data")), as_dict(cm.get("binaryData"))
    errs += _keys(data, "data")
    errs += [invalid(key("data", k), k, "duplicate of key present in binaryData")
             for k in data if k in binary]
    errs += _keys(binary, "binaryData")
    size = sum(len(as_str(v).encode()) for v in data.values())
    size += sum(configdata.byte_sizes(binary).values())
    if size > MAX_SIZE:
        errs.append(too_long("[]", "", MAX_SIZE))
    return errs


def validate_config_map_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """Metadata update rules; once ``immutable`` is true nothing of the payload changes."""
    errs = validate_object_meta_update(as_dict(new.get("metadata")),
                                       as_dict(old.get("metadata")))
    if old.get("immutable") is True:
        errs += _immutable(new, old, ("data", "binaryData"))
    return errs + [c for c in validate_config_map(new) if not c.field.startswith("metadata")]


def _immutable(new: dict[str, Any], old: dict[str, Any], fields: tuple[str, ...]) -> list[Cause]:
    errs: list[Cause] = []
    if new.get("immutable") is not True:
        errs.append(forbidden("immutable", IMMUTABLE_SET_MSG))
    for field in fields:
        if as_dict(new.get(field)) != as_dict(old.get(field)):
            errs.append(forbidden(field, IMMUTABLE_SET_MSG))
    return errs


# --- Secret ----------------------------------------------------------------------------


def validate_secret(secret: dict[str, Any]) -> list[Cause]:
    """Name a DNS subdomain; data keys config keys, at most 1 MiB; the keys (and
    annotation) each built-in type requires."""
    meta = as_dict(secret.get("metadata"))
    errs = validate_object_meta(meta, namespaced=True)
    data = as_dict(secret.get("data"))
    errs += _keys(data, "data")
    sizes = configdata.byte_sizes(data)
    if sum(sizes.values()) > MAX_SIZE:
        errs.append(too_long("data", "", MAX_SIZE))
    return errs + _type_rules(as_str(secret.get("type")), data, sizes,
                              as_dict(meta.get("annotations")))


def _type_rules(kind: str, data: dict[str, Any], sizes: dict[str, int],
                annotations: dict[str, Any]) -> list[Cause]:
    if kind == SERVICE_ACCOUNT_TOKEN and not as_str(annotations.get(SERVICE_ACCOUNT_NAME_KEY)):
        return [required(key("metadata.annotations", SERVICE_ACCOUNT_NAME_KEY))]
    if kind in (DOCKERCFG, DOCKER_CONFIG_JSON):
        name = DOCKERCFG_KEY if kind == DOCKERCFG else DOCKER_CONFIG_JSON_KEY
        if name not in data:
            return [required(key("data", name))]
        problem = go_json_object_problem(configdata.decode(as_str(data[name])))
        return [invalid(key("data", name), REDACTED, problem)] if problem else []
    if kind == BASIC_AUTH and "username" not in data and "password" not in data:
        return [required(key("data", "username")), required(key("data", "password"))]
    if kind == SSH_AUTH and not sizes.get(SSH_PRIVATE_KEY):
        return [required(key("data", SSH_PRIVATE_KEY))]
    if kind == TLS:
        return [required(key("data", k)) for k in (TLS_CERT_KEY, TLS_PRIVATE_KEY)
                if k not in data]
    return []


def validate_secret_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """Metadata update rules; ``type`` never changes; once ``immutable`` is true neither it
    nor ``data`` changes."""
    errs = validate_object_meta_update(as_dict(new.get("metadata")),
                                       as_dict(old.get("metadata")))
    if as_str(new.get("type")) != as_str(old.get("type")):
        errs.append(invalid("type", as_str(new.get("type")), IMMUTABLE_MSG))
    if old.get("immutable") is True:
        errs += _immutable(new, old, ("data",))
    return errs + [c for c in validate_secret(new) if not c.field.startswith("metadata.")
                   or c.field.startswith("metadata.annotations[")]


# --- Go's JSON errors ------------------------------------------------------------------


def go_json_object_problem(raw: bytes) -> str | None:
    """None when ``raw`` is a JSON object (what ``json.Unmarshal`` into a
    ``map[string]interface{}`` accepts, or ``null``), else an error worded like Go's."""
    try:
        value = json.loads(raw.decode("utf-8", errors="replace"), parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        return _go_syntax_error(exc)
    except ValueError as exc:  # NaN / Infinity, which Go's JSON does not know
        return str(exc)
    if value is None or isinstance(value, dict):
        return None
    kind = {bool: "bool", str: "string", list: "array"}.get(type(value), "number")
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"


def _no_constant(name: str) -> Any:
    if name.startswith("-"):
        raise ValueError("invalid character 'I' in numeric literal")
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _go_syntax_error(exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(exc.doc.rstrip()):
        return "unexpected end of JSON input"
    char = exc.doc[exc.pos]
    shown = "'\\''" if char == "'" else f"'{char}'"
    context = {
        "Extra data": "after top-level value",
        "Expecting property name enclosed in double quotes":
            "looking for beginning of object key string",
        "Expecting ':' delimiter": "after object key",
        "Expecting ',' delimiter": "after object key:value pair"
        if _innermost_open(exc.doc[:exc.pos]) == "{" else "after array element",
    }.get(exc.msg, "looking for beginning of value")
    return f"invalid character {shown} {context}"


def _innermost_open(prefix: str) -> str:
    """The innermost bracket still open at the end of ``prefix`` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in prefix:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""
