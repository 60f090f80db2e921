"""Image references: parsing and normalisation the way Kubernetes (and docker) do it.

Grammar (docker distribution's reference grammar, which the kubelet uses)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := host [ ":" port ]          (a first component is a domain only if it
                                               contains "." or ":", is "localhost", or
                                               has an upper-case letter)
    path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex          (sha256: 64, sha384: 96, sha512: 128 hex digits)

Normalisation: no domain → ``docker.io``; ``index.docker.io`` → ``docker.io``; a one-component
docker.io name gets ``library/``; no tag and no digest → tag ``latest``. A reference with both
a tag and a digest keeps both (the digest is what gets pulled).

``parse_reference`` is pure; it raises :class:`InvalidImageName` with a user-facing message.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from podling.images.errors import InvalidImageName

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io"})
NAME_TOTAL_MAX = 255

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?\Z")
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}\Z", re.ASCII)
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")
_HEX64_RE = re.compile(r"[a-f0-9]{64}\Z")
_DIGEST_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A normalised image reference. ``tag`` and ``digest`` may both be set (or one, never
    neither: a bare name is normalised to tag ``latest``)."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``registry/repository``, e.g. ``docker.io/library/nginx``."""
        return f"{self.registry}/{self.repository}"

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        return self.digest or self.tag

    def with_digest(self, digest: str) -> "Reference":
        """This reference pinned to ``digest`` (the tag is dropped): ``name@digest``."""
        validate_digest(digest)
        return dataclasses.replace(self, tag="", digest=digest)

    def with_tag(self, tag: str) -> "Reference":
        """This name with ``tag`` and no digest."""
        if not _TAG_RE.match(tag):
            raise InvalidImageName(f"invalid tag {tag!r}")
        return dataclasses.replace(self, tag=tag, digest="")

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def validate_digest(digest: str) -> None:
    """Raise InvalidImageName unless ``digest`` is ``algorithm:hex`` with a known algorithm
    (sha256, sha384, sha512) and the right number of lower-case hex digits."""
    m = _DIGEST_RE.match(digest)
    if not m:
        raise InvalidImageName(f"invalid digest {digest!r}: want algorithm:hex")
    algorithm, hexpart = m.groups()
    want = _DIGEST_HEX_LEN.get(algorithm)
    if want is None:
        raise InvalidImageName(f"invalid digest {digest!r}: unsupported algorithm {algorithm!r}")
    if len(hexpart) != want or not re.fullmatch(r"[a-f0-9]+", hexpart):
        raise InvalidImageName(
            f"invalid digest {digest!r}: {algorithm} needs {want} lower-case hex digits")


def parse_reference(text: str) -> Reference:
    """Parse and normalise an image reference (``nginx`` → ``docker.io/library/nginx:latest``).

    Raises InvalidImageName, whose message says what is wrong with ``text``."""
    if not isinstance(text, str) or not text:
        raise InvalidImageName("invalid reference format: empty image name")
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidImageName(f"invalid reference format {text!r}: contains whitespace")
    remainder, digest = _split_digest(text)
    name, tag = _split_tag(remainder, text)
    if _HEX64_RE.match(name):
        raise InvalidImageName(
            f"invalid repository name {name!r}: cannot specify 64-byte hexadecimal strings")
    registry, repository = _split_domain(name, text)
    _check_repository(repository, text)
    if len(name) > NAME_TOTAL_MAX:
        raise InvalidImageName(
            f"invalid reference format {text!r}: repository name must not be more than "
            f"{NAME_TOTAL_MAX} characters")
    if not tag and not digest:
        tag = "latest"
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def _split_digest(text: str) -> tuple[str, str]:
    if "@" not in text:
        return text, ""
    remainder, _, digest = text.partition("@")
    if not remainder:
        raise InvalidImageName(f"invalid reference format {text!r}: missing name")
    validate_digest(digest)
    return remainder, digest


def _split_tag(remainder: str, text: str) -> tuple[str, str]:
    slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon <= slash:
        return remainder, ""
    name, tag = remainder[:colon], remainder[colon + 1:]
    if not _TAG_RE.match(tag):
        raise InvalidImageName(
            f"invalid reference format {text!r}: invalid tag {tag!r} (want [A-Za-z0-9_]"
            f" then up to 127 of [A-Za-z0-9_.-])")
    return name, tag


def _split_domain(name: str, text: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    is_domain = sep and (any(c in first for c in ".:") or first == "localhost"
                         or first.lower() != first)
    if not is_domain:
        registry, repository = DOCKER_HUB, name
    else:
        if not _DOMAIN_RE.match(first):
            raise InvalidImageName(f"invalid reference format {text!r}: invalid registry "
                                   f"host {first!r}")
        registry, repository = first, rest
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in repository:
            repository = f"library/{repository}"
    return registry, repository


def _check_repository(repository: str, text: str) -> None:
    if not repository:
        raise InvalidImageName(f"invalid reference format {text!r}: missing repository")
    for component in repository.split("/"):
        if _PATH_COMPONENT_RE.match(component):
            continue
        if component.lower() != component and _PATH_COMPONENT_RE.match(component.lower()):
            raise InvalidImageName(
                f"invalid reference format {text!r}: repository name must be lowercase")
        raise InvalidImageName(
            f"invalid reference format {text!r}: invalid repository path component "
            f"{component!r} (lower-case letters, digits and separators . _ __ -)")
