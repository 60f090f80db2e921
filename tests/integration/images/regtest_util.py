"""Helpers for the registry client tests: in-test images, a token server, a fake registry.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import secrets
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


@dataclass
class TestImage:
    """A one-layer image built in memory: ``blobs`` maps digest → bytes."""

    __test__ = False
    manifest: bytes
    config: bytes
    layer: bytes
    arch: str
    variant: str = ""
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    @property
    def layer_digest(self) -> str:
        return sha(self.layer)


def layer_tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzipped layer tar and its diff ID (digest of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha(tar_bytes)


def build_image(arch: str = "amd64", variant: str = "", text: str = "hello") -> TestImage:
    layer, diff_id = layer_tar_gz({"hello.txt": f"{text} from {arch}{variant}\n".encode(),
                                   "filler.bin": os.urandom(200_000)})
    cfg: dict[str, Any] = {"architecture": arch, "os": "linux",
                           "config": {"Cmd": ["/bin/sh"]},
                           "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    if variant:
        cfg["variant"] = variant
    config = json.dumps(cfg).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": descriptor(OCI_CONFIG, config),
                           "layers": [descriptor(OCI_LAYER_GZIP, layer)]}).encode()
    img = TestImage(manifest=manifest, config=config, layer=layer, arch=arch, variant=variant)
    img.blobs = {sha(config): config, sha(layer): layer}
    return img


def build_index(images: list[TestImage]) -> bytes:
    entries = []
    for img in images:
        platform = {"os": "linux", "architecture": img.arch}
        if img.variant:
            platform["variant"] = img.variant
        entries.append(descriptor(OCI_MANIFEST, img.manifest, platform=platform))
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": entries}).encode()


def write_oci_layout(root: str, img: TestImage, tag: str = "v1") -> None:
    """An OCI image layout directory holding ``img`` tagged ``tag``."""
    blob_dir = os.path.join(root, "blobs", "sha256")
    os.makedirs(blob_dir, exist_ok=True)
    for data in [img.manifest, *img.blobs.values()]:
        with open(os.path.join(blob_dir, sha(data).split(":")[1]), "wb") as f:
            f.write(data)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index = {"schemaVersion": 2, "manifests": [descriptor(
        OCI_MANIFEST, img.manifest, annotations={"org.opencontainers.image.ref.name": tag})]}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)


# ---- token server ----------------------------------------------------------------------

def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenIssuer:
    """Signs docker-registry bearer tokens (ES256 JWTs with an x5c header)."""

    def __init__(self, cert_path: str, issuer: str = "podling-test-issuer",
                 service: str = "podling-test-registry") -> None:
        self.issuer, self.service = issuer, service
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podling test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))
        with open(cert_path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))

    def token(self, subject: str, access: list[dict[str, Any]]) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "."
                         + _b64url(json.dumps(claims).encode()))
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(),
                                                  ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def make_token_app(issuer: TokenIssuer, users: dict[str, str],
                   log: list[dict[str, Any]]) -> web.Application:
    """``GET /token?service=&scope=`` with Basic auth; grants what is asked to valid users."""

    async def token(request: web.Request) -> web.Response:
        user = ""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            if users.get(user) != pw:
                return web.json_response({"details": "bad credentials"}, status=401)
        elif users:
            return web.json_response({"details": "credentials required"}, status=401)
        access = []
        for scope in request.query.getall("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        log.append({"user": user, "scopes": request.query.getall("scope", []),
                    "service": request.query.get("service")})
        tok = issuer.token(user, access)
        return web.json_response({"token": tok, "access_token": tok, "expires_in": 300})

    app = web.Application()
    app.router.add_get("/token", token)
    return app


# ---- fake registry ---------------------------------------------------------------------

@dataclass
class Faults:
    """What the fake registry does wrong."""

    fail_503: int = 0  # answer this many requests with 503 first
    corrupt: set[str] = field(default_factory=set)  # blob/manifest digests served altered
    truncate: set[str] = field(default_factory=set)  # blob digests cut off half-way
    wrong_digest_header: bool = False


class FakeRegistry:
    """A minimal read-only OCI registry in aiohttp with fault injection and a request log."""

    def __init__(self, repo: str) -> None:
        self.repo = repo
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # tag or digest → (type, bytes)
        self.faults = Faults()
        self.requests: list[str] = []

    def add_image(self, img: TestImage, tag: str) -> None:
        self.blobs.update(img.blobs)
        self.manifests[tag] = self.manifests[img.digest] = (OCI_MANIFEST, img.manifest)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/", self._ping)
        app.router.add_get("/v2/{repo:.+}/manifests/{obj}", self._manifest)
        app.router.add_get("/v2/{repo:.+}/blobs/{digest}", self._blob)
        app.middlewares.append(self._faults)
        return app

    @web.middleware
    async def _faults(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(request.path)
        if self.faults.fail_503 > 0:
            self.faults.fail_503 -= 1
            return web.json_response({"errors": [{"code": "UNAVAILABLE"}]}, status=503)
        return await handler(request)

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.Response:
        obj = request.match_info["obj"]
        if request.match_info["repo"] != self.repo or obj not in self.manifests:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN",
                                                  "message": "manifest unknown"}]}, status=404)
        media_type, data = self.manifests[obj]
        digest = sha(data)
        if digest in self.faults.corrupt:
            data = data.replace(b"schemaVersion", b"schemaversion")
        header = "sha256:" + "0" * 64 if self.faults.wrong_digest_header else digest
        return web.Response(body=data, content_type=media_type,
                            headers={"Docker-Content-Digest": header})

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        if digest not in self.blobs:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        data = self.blobs[digest]
        if digest in self.faults.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if digest not in self.faults.truncate:
            return web.Response(body=data, content_type="application/octet-stream")
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = len(data)
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        assert request.transport is not None
        request.transport.close()
        return resp


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run ``app`` on 127.0.0.1 and a free port; returns (runner, "127.0.0.1:PORT")."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    port = server.sockets[0].getsockname()[1]
    return runner, f"127.0.0.1:{port}"
