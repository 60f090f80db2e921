"""Manifest media types and choosing this node's platform from an index / manifest list.

Pure functions; :func:`host_platform` reads ``platform.machine()`` only.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any, Mapping

from podling.images.errors import NoMatchingPlatform, RegistryError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
ACCEPT_MANIFESTS = ", ".join([OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

_MACHINE_MAP: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v7"), "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "i386": ("386", ""), "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform: ``os``, ``architecture`` and optional ``variant``."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform(machine: str | None = None) -> Platform:
    """This node's platform (``machine`` defaults to ``platform.machine()``)."""
    machine = (machine or _platform.machine()).lower()
    arch, variant = _MACHINE_MAP.get(machine, (machine, ""))
    return Platform(os="linux", architecture=arch, variant=variant)


def _acceptable_variants(p: Platform) -> list[str]:
    """Variants this platform runs, best first ("" = the index entry names none)."""
    if p.architecture == "arm64":
        return ["v8", ""]
    if p.architecture == "arm":
        order = ["v8", "v7", "v6", "v5"]
        start = order.index(p.variant) if p.variant in order else 1
        return order[start:] + [""]
    return [p.variant, ""] if p.variant else [""]


def select_manifest(index: Mapping[str, Any], want: Platform) -> dict[str, Any]:
    """The descriptor in ``index["manifests"]`` for ``want``; the best variant wins, then the
    first entry. Raises NoMatchingPlatform listing the platforms the index offers."""
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise RegistryError("image index has no 'manifests' list")
    variants = _acceptable_variants(want)
    best: tuple[int, dict[str, Any]] | None = None
    for desc in manifests:
        p = desc.get("platform") if isinstance(desc, Mapping) else None
        if not isinstance(p, Mapping) or desc.get("mediaType") not in MANIFEST_TYPES | {None}:
            continue
        if p.get("os") != want.os or p.get("architecture") != want.architecture:
            continue
        variant = p.get("variant") or ""
        if variant not in variants:
            continue
        rank = variants.index(variant)
        if best is None or rank < best[0]:
            best = (rank, dict(desc))
    if best is None:
        raise NoMatchingPlatform(
            f"no manifest for platform {want} in the image index (it has: "
            f"{', '.join(_describe(manifests)) or 'none'})")
    return best[1]


def _describe(manifests: list[Any]) -> list[str]:
    out = []
    for desc in manifests:
        p = desc.get("platform") if isinstance(desc, Mapping) else None
        if isinstance(p, Mapping):
            out.append("/".join(str(p.get(k)) for k in ("os", "architecture", "variant")
                                if p.get(k)))
    return out


def media_type_of(content_type: str, body: Mapping[str, Any]) -> str:
    """The manifest's media type: the ``mediaType`` field, else the Content-Type, else
    inferred (``manifests`` → OCI index, ``layers`` → OCI manifest)."""
    declared = body.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    ctype = content_type.split(";")[0].strip().lower()
    if ctype and ctype not in ("application/json", "text/plain", "application/octet-stream"):
        return ctype
    if body.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1[0]
    if "manifests" in body:
        return OCI_INDEX
    if "layers" in body:
        return OCI_MANIFEST
    return ctype
