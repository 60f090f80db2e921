"""API discovery: aggregated (apidiscovery.k8s.io/v2) and legacy, from the resource table.

The aggregated form is chosen only when the client asks for it in Accept, and it must be
answered with its own Content-Type, or kubectl reads it as legacy and sees nothing.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from ..api import errors, resources
from ..api.resources import Resource
from . import bodies

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-podling",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-11-27T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
           "platform": "linux/amd64"}


def _aggregated_version(wanted: str) -> str | None:
    for part in wanted.split(","):
        params = {p.strip() for p in part.split(";")}
        if {"g=apidiscovery.k8s.io", "as=APIGroupDiscoveryList"} <= params:
            if "v=v2" in params:
                return "v2"
            if "v=v2beta1" in params:
                return "v2beta1"
    return None


def _resource_entry(resource: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource.name,
        "responseKind": {"group": resource.group, "version": resource.version,
                         "kind": resource.kind},
        "scope": "Namespaced" if resource.namespaced else "Cluster",
        "singularResource": resource.singular,
        "verbs": sorted(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    if resource.subresources:
        entry["subresources"] = [
            {"subresource": s.name,
             "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
             "verbs": sorted(s.verbs)} for s in resource.subresources]
    return entry


def _group_name(group_version: str) -> str:
    return group_version.split("/")[0] if "/" in group_version else ""


@functools.cache
def _aggregated(core: bool, version: str) -> dict[str, Any]:
    items = []
    for group_version in resources.DISCOVERY_GROUP_VERSIONS:
        if (group_version == "v1") != core:
            continue
        group = _group_name(group_version)
        item: dict[str, Any] = {"metadata": {"creationTimestamp": None}, "versions": [{
            "version": group_version.split("/")[-1], "freshness": "Current",
            "resources": [_resource_entry(r) for r in resources.in_group_version(group_version)],
        }]}
        if group:
            item["metadata"]["name"] = group
        items.append(item)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": items}


def _legacy_resource_list(group_version: str) -> dict[str, Any]:
    entries = []
    for resource in resources.in_group_version(group_version):
        entry = {"name": resource.name, "singularName": resource.singular,
                 "namespaced": resource.namespaced, "kind": resource.kind,
                 "verbs": sorted(resource.verbs)}
        if resource.short_names:
            entry["shortNames"] = list(resource.short_names)
        if resource.categories:
            entry["categories"] = list(resource.categories)
        entries.append(entry)
        for sub in resource.subresources:
            entry = {"name": f"{resource.name}/{sub.name}", "singularName": "",
                     "namespaced": resource.namespaced, "kind": sub.kind,
                     "verbs": sorted(sub.verbs)}
            if sub.group:  # another group's kind (pods/eviction): kubectl drain looks for it
                entry.update(group=sub.group, version=sub.version)
            entries.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": entries}


def _legacy_groups() -> dict[str, Any]:
    groups = []
    for group_version in resources.DISCOVERY_GROUP_VERSIONS:
        group = _group_name(group_version)
        if not group:
            continue
        version = {"groupVersion": group_version, "version": group_version.split("/")[1]}
        groups.append({"name": group, "versions": [version], "preferredVersion": version})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


async def api(request: web.Request) -> web.Response:
    """GET /api"""
    version = _aggregated_version(request.headers.get("Accept", ""))
    if version:
        return bodies.respond(_aggregated(True, version), content_type=_content_type(version))
    host = request.host or "127.0.0.1"
    return bodies.respond({"kind": "APIVersions", "versions": ["v1"],
                           "serverAddressByClientCIDRs": [
                               {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})


async def apis(request: web.Request) -> web.Response:
    """GET /apis"""
    version = _aggregated_version(request.headers.get("Accept", ""))
    if version:
        return bodies.respond(_aggregated(False, version), content_type=_content_type(version))
    return bodies.respond(_legacy_groups())


async def group_version(request: web.Request) -> web.Response:
    """GET /api/v1 and /apis/{group}/{version}: the legacy APIResourceList."""
    group, version = request.match_info.get("group", ""), request.match_info["version"]
    wanted = f"{group}/{version}" if group else version
    if wanted not in resources.DISCOVERY_GROUP_VERSIONS:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                              {})
    return bodies.respond(_legacy_resource_list(wanted))


async def group(request: web.Request) -> web.Response:
    """GET /apis/{group}: an APIGroup."""
    for entry in _legacy_groups()["groups"]:
        if entry["name"] == request.match_info["group"]:
            return bodies.respond({"kind": "APIGroup", "apiVersion": "v1", **entry})
    raise errors.ApiError(404, "NotFound", "the server could not find the requested resource", {})


async def version(request: web.Request) -> web.Response:
    return bodies.respond(VERSION)


def _content_type(version: str) -> str:
    return AGGREGATED_V2 if version == "v2" else AGGREGATED_V2BETA1
