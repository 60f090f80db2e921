"""Request bodies in, responses out: size limits, content types, strict decoding, Tables."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..api import decode, errors, protobuf, tables
from ..api.resources import Resource
from .encoding import dumps

MAX_BODY = 3 * 1024 * 1024
JSON = "application/json"
TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
TABLE_RESOURCES = ("pods", "nodes", "namespaces", "configmaps", "secrets",
                   "serviceaccounts", "events", "leases", "roles", "clusterroles",
                   "rolebindings", "clusterrolebindings")


@dataclass
class Decoded:
    """A decoded body and the Warning texts its decoding produced."""

    obj: Any
    warnings: list[str] = field(default_factory=list)


BODY_KEY = web.RequestKey("body", bytes)  # the body read_body read


async def read_body(request: web.Request) -> bytes:
    """The raw body, or 413 past 3 MiB (checked before and while reading); kept as
    :data:`BODY_KEY` for the audit log."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large()
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.too_large()
        chunks.append(chunk)
    request[BODY_KEY] = body = b"".join(chunks)
    return body


def media_type(request: web.Request) -> str:
    return (request.headers.get("Content-Type") or JSON).split(";")[0].strip().lower()


YAML_TYPES = ("application/yaml", "application/apply-patch+yaml", "text/yaml")
JSON_TYPES = ("application/json", "application/json-patch+json", "application/merge-patch+json",
              "application/strategic-merge-patch+json")


def parse_document(body: bytes, content_type: str) -> tuple[Any, list[str]]:
    """JSON or YAML into a value and the paths of duplicate fields.

    400 when malformed; 415 for other media types (protobuf is read only for the kinds
    kubectl sends no other way: see :func:`parse_protobuf`)."""
    if content_type not in YAML_TYPES + JSON_TYPES:
        raise errors.unsupported_media_type(
            f'the body of the request was in an unknown format - accepted media types include: '
            f'{", ".join(("application/json",) + YAML_TYPES[:1] + JSON_TYPES[1:])}')
    try:
        if content_type in YAML_TYPES:
            return decode.decode_yaml(body)
        return decode.decode_json(body)
    except decode.DecodeError as exc:
        raise errors.bad_request(str(exc)) from None


def parse_protobuf(body: bytes, kind: str) -> tuple[Any, list[str]]:
    """A protobuf body of one of the kinds in :data:`protobuf.DECODERS`; 415 for others."""
    decoder = protobuf.DECODERS.get(kind)
    if decoder is None:
        raise errors.unsupported_media_type(
            f"{protobuf.MEDIA_TYPE} is not supported for {kind}; send application/json")
    try:
        return decoder(body), []
    except protobuf.ProtobufError as exc:
        raise errors.bad_request(str(exc)) from None


def validation_mode(request: web.Request) -> str:
    """fieldValidation: Strict, Warn (the default, as in Kubernetes) or Ignore."""
    mode = request.query.get("fieldValidation", "Warn") or "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", '
            f'"Strict", "Warn"')
    return mode


def check_object(obj: Any, resource: Resource, type_name: str, kind: str,
                 duplicates: list[str], mode: str) -> tuple[dict, list[str]]:
    """Check a decoded object against its type.

    Returns the object without unknown fields (Kubernetes never stores them) and the
    warnings to send; raises 400 for wrong types, a wrong kind, and, under Strict, unknown
    or duplicate fields."""
    if not isinstance(obj, dict):
        raise errors.bad_request(decode.decode_error_message(
            kind, "expected a JSON object", version=resource.version))
    found = decode.inspect(obj, type_name)  # one walk; also normalises timestamps
    if found.type_errors:
        raise errors.bad_request(decode.decode_error_message(kind, found.type_errors[0],
                                                             version=resource.version))
    _check_kind(obj, resource.group_version, kind)
    unknown = found.unknown
    warnings: list[str] = []
    if mode == "Strict" and (unknown or duplicates):
        raise errors.bad_request(decode.strict_error_message(
            kind, unknown, duplicates, version=resource.version, obj=obj))
    if mode == "Warn" and (unknown or duplicates):
        warnings = decode.field_warnings(unknown, duplicates, obj=obj)
    if unknown:
        obj = decode.prune_unknown(obj, type_name)
    return obj, warnings


def _check_kind(obj: dict, version: str, kind: str) -> None:
    """A missing kind or apiVersion is taken from the URL, as Kubernetes does; a different
    one is a 400."""
    got_version = obj.setdefault("apiVersion", version) or version
    got_kind = obj.setdefault("kind", kind) or kind
    obj["apiVersion"], obj["kind"] = got_version, got_kind
    if got_version != version:
        raise errors.bad_request(f"the API version in the data ({got_version}) does not match "
                                 f"the expected API version ({version})")
    if got_kind != kind:
        raise errors.bad_request(f"the kind in the data ({got_kind}) does not match the "
                                 f"expected kind ({kind})")


# -- responses -------------------------------------------------------------------------------

def respond(obj: Any, status: int = 200, warnings: list[str] | None = None,
            content_type: str = JSON, *, encoded: bytes | None = None) -> web.Response:
    """A JSON answer; ``encoded`` is ``obj`` already serialised (see :mod:`.encoding`)."""
    body = encoded if encoded is not None else dumps(obj)
    response = web.Response(body=body, status=status, content_type=None)
    response.headers["Content-Type"] = content_type
    for text in warnings or []:
        if _sendable(text):
            response.headers.add("Warning", warning_header(text))
    return response


def _sendable(text: str) -> bool:
    """Whether a warning can be a header: Kubernetes drops one with control characters (a
    field name from the body may hold any) rather than fail the response."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


def warning_header(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def wants_table(request: web.Request, resource: Resource) -> bool:
    """Whether the client asked for a meta.k8s.io Table it can get (kubectl's human output)."""
    accept = request.headers.get("Accept", "")
    if resource.name not in TABLE_RESOURCES:
        return False
    for part in accept.split(","):
        params = [p.strip() for p in part.split(";")]
        if "as=Table" in params and "g=meta.k8s.io" in params and "v=v1" in params:
            return True
    return False


def check_acceptable(request: web.Request) -> None:
    """406 when the client accepts neither JSON nor anything."""
    accept = request.headers.get("Accept", "")
    if not accept:
        return
    for part in accept.split(","):
        mime = part.split(";")[0].strip().lower()
        if mime in ("application/json", "*/*", "application/*", "application/yaml"):
            return
    raise errors.not_acceptable(
        "only the following media types are accepted: application/json, application/yaml")


def as_table(request: web.Request, resource: Resource, objects: list[dict],
             resource_version: str, with_columns: bool = True) -> dict:
    include = request.query.get("includeObject", "Metadata")
    if include not in ("None", "Metadata", "Object"):
        raise errors.bad_request(f'includeObject: Unsupported value: "{include}": supported '
                                 f'values: "Metadata", "None", "Object"')
    return tables.table(resource.name, objects, now=dt.datetime.now(dt.timezone.utc),
                        include_object=include, resource_version=resource_version,
                        with_columns=with_columns)
