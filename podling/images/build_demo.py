"""Build the offline demo images (busybox, nginx) from Debian packages, as OCI archives.

Nothing is fetched from a container registry: ``busybox`` comes from the host's
``busybox-static`` package and ``nginx`` from Debian's ``nginx`` + ``nginx-common`` .debs
(fetched with ``apt-get download`` when no ``deb_dir`` is given) plus the shared libraries the
binary needs, copied from the host's installed Debian packages (resolved with ``ldd``).

Output is an *OCI image-layout archive*: a tar holding ``oci-layout``, ``index.json`` and
``blobs/sha256/<hex>``. Each image in ``index.json`` carries both the
``org.opencontainers.image.ref.name`` and ``io.containerd.image.name`` annotations, set to the
full reference (``docker.io/library/busybox:latest``), which ``podman load``, ``skopeo`` and
:func:`podling.images.archive.read_archive` all understand.

Builds are reproducible: fixed mtimes (:data:`EPOCH`), sorted tar entries, owner 0:0 (except
nginx's ``/var/lib/nginx/*`` which belong to ``www-data``), gzip without a name or time stamp.
The same inputs give byte-identical archives.

Layers are assembled in memory (the images are a few MB); this module is meant for tests,
benchmarks and the demo, not for arbitrary image building.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from podling.util.files import atomic_write

EPOCH = 1686355200  # 2023-06-10T00:00:00Z, Debian 12 "bookworm" release day
CREATED = "2023-06-10T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
WWW_DATA = 33  # Debian's fixed uid/gid for www-data
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
SUBPROCESS_TIMEOUT = 120


class BuildError(Exception):
    """A demo image cannot be built on this host (a package or tool is missing)."""


# ---------------------------------------------------------------------------- layers


@dataclass
class _Entry:
    info: tarfile.TarInfo
    data: bytes = b""


@dataclass
class LayerBuilder:
    """An in-memory layer: add directories, files and symlinks, then :meth:`build`.

    Paths are image paths (``/etc/passwd`` or ``etc/passwd``). Parent directories are added
    implicitly (0755, root). Adding a path twice replaces the earlier entry.
    """

    entries: dict[str, _Entry] = field(default_factory=dict)

    def add_dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        """Add a directory (idempotent for an existing directory: mode/owner are updated)."""
        self._put(path, tarfile.DIRTYPE, mode, uid=uid, gid=gid)

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file with ``data``."""
        self._put(path, tarfile.REGTYPE, mode, data=data)

    def add_symlink(self, path: str, target: str) -> None:
        """Add a symbolic link ``path -> target`` (target stored verbatim)."""
        self._put(path, tarfile.SYMTYPE, 0o777, linkname=target)

    def add_host_file(self, host_path: str, path: str | None = None) -> None:
        """Copy a regular host file (mode kept) to ``path`` (default: the same path)."""
        st = os.stat(host_path)
        self.add_file(path or host_path, Path(host_path).read_bytes(), st.st_mode & 0o7777)

    def add_host_path(self, host_path: str, _depth: int = 0) -> None:
        """Copy ``host_path`` keeping its real location: every symlink met on the way
        (``/lib -> usr/lib``, ``libz.so.1 -> libz.so.1.2.13``) is added as a symlink and
        followed, and the file it finally names is copied."""
        if _depth > 40:
            raise BuildError(f"too many symlinks resolving {host_path}")
        parts = Path(os.path.normpath(host_path)).parts[1:]
        current = "/"
        for i, part in enumerate(parts):
            current = os.path.join(current, part)
            if os.path.islink(current):
                target = os.readlink(current)
                self.add_symlink(current, target)
                resolved = os.path.normpath(os.path.join(os.path.dirname(current), target))
                rest = os.path.join(resolved, *parts[i + 1:])
                self.add_host_path(rest, _depth + 1)
                return
        if not os.path.isfile(current):
            raise BuildError(f"{host_path} is not a regular file")
        self.add_host_file(current)

    def add_tree(self, src_root: str, rel: str) -> None:
        """Copy ``src_root/rel`` recursively to ``/rel`` (files, dirs, symlinks)."""
        top = os.path.join(src_root, rel)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            image_dir = "/" + os.path.relpath(dirpath, src_root)
            self.add_dir(image_dir, os.stat(dirpath).st_mode & 0o7777)
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(
                    os.path.join(dirpath, d))]):
                host = os.path.join(dirpath, name)
                if os.path.islink(host):
                    self.add_symlink(f"{image_dir}/{name}", os.readlink(host))
                elif os.path.isfile(host):
                    self.add_host_file(host, f"{image_dir}/{name}")

    def _put(self, path: str, kind: bytes, mode: int, *, data: bytes = b"",
             linkname: str = "", uid: int = 0, gid: int = 0) -> None:
        name = _clean(path)
        self._ensure_parents(name)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, EPOCH
        info.uid, info.gid, info.linkname = uid, gid, linkname
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        self.entries[name] = _Entry(info, data)

    def _ensure_parents(self, name: str) -> None:
        parent = os.path.dirname(name)
        chain = []
        while parent:
            chain.append(parent)
            parent = os.path.dirname(parent)
        for p in reversed(chain):
            existing = self.entries.get(p)
            if existing is None:
                info = tarfile.TarInfo(p)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
                self.entries[p] = _Entry(info)
            elif existing.info.type != tarfile.DIRTYPE:
                raise BuildError(f"{name}: parent {p} is not a directory in this layer")

    def tar_bytes(self) -> bytes:
        """The uncompressed layer tar: entries sorted by path, PAX format."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(self.entries):
                entry = self.entries[name]
                tar.addfile(entry.info, io.BytesIO(entry.data) if entry.data else None)
        return buf.getvalue()

    def build(self) -> "Blob":
        """Compress the layer; returns the blob with its ``diff_id`` set."""
        raw = self.tar_bytes()
        packed = _gzip(raw)
        return Blob(MT_LAYER_GZIP, packed, diff_id=_digest(raw))


def _clean(path: str) -> str:
    name = os.path.normpath("/" + path).lstrip("/")
    if not name or name == ".":
        raise BuildError(f"invalid image path {path!r}")
    return name


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- OCI layout


@dataclass(frozen=True)
class Blob:
    """Content plus its media type; ``diff_id`` only for layers."""

    media_type: str
    data: bytes
    diff_id: str = ""

    @property
    def digest(self) -> str:
        return _digest(self.data)

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def oci_arch() -> str:
    """This host's architecture in OCI/GOARCH spelling (``amd64``, ``arm64``…)."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine)


def image_blobs(layers: list[Blob], config: dict, history: list[str]) -> tuple[Blob, Blob]:
    """The (manifest, config) blobs for ``layers`` (base first) and a container ``config``."""
    doc = {
        "architecture": oci_arch(), "os": "linux", "created": CREATED, "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": CREATED, "created_by": h} for h in history],
    }
    config_blob = Blob(MT_CONFIG, _json(doc))
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": config_blob.descriptor(),
                "layers": [layer.descriptor() for layer in layers]}
    return Blob(MT_MANIFEST, _json(manifest)), config_blob


def write_oci_archive(out_path: str | os.PathLike, ref: str, layers: list[Blob],
                      config: dict, history: list[str]) -> Path:
    """Write a one-image OCI layout archive to ``out_path`` atomically; returns the path."""
    manifest, config_blob = image_blobs(layers, config, history)
    desc = manifest.descriptor()
    desc["annotations"] = {"org.opencontainers.image.ref.name": ref,
                           "io.containerd.image.name": ref}
    desc["platform"] = {"architecture": oci_arch(), "os": "linux"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [desc]}
    files: dict[str, bytes] = {
        "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
        "index.json": _json(index),
    }
    for blob in [manifest, config_blob, *layers]:
        files["blobs/sha256/" + blob.digest.split(":", 1)[1]] = blob.data
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(str(out), _tar_of(files), 0o644)
    return out


def _tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


# ---------------------------------------------------------------------------- busybox

PASSWD_BASE = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP_BASE = "root:x:0:\nnobody:x:65534:\n"


def find_busybox() -> str:
    """The host's statically linked busybox (package ``busybox-static``)."""
    for candidate in BUSYBOX_CANDIDATES:
        if os.path.isfile(candidate) and _is_static(candidate):
            return candidate
    raise BuildError("no static busybox found: apt-get install -y busybox-static")


def _is_static(path: str) -> bool:
    """True for an ELF executable without a PT_INTERP program header (64-bit LE only)."""
    with open(path, "rb") as f:
        head = f.read(65536)
    if not head.startswith(b"\x7fELF\x02\x01"):
        return False
    phoff = int.from_bytes(head[0x20:0x28], "little")
    phentsize = int.from_bytes(head[0x36:0x38], "little")
    phnum = int.from_bytes(head[0x38:0x3A], "little")
    for i in range(phnum):
        off = phoff + i * phentsize
        if int.from_bytes(head[off:off + 4], "little") == 3:  # PT_INTERP
            return False
    return True


def _run(argv: list[str], cwd: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BuildError(f"{argv[0]}: {e}") from e
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed: {proc.stderr.strip() or proc.stdout}")
    return proc.stdout


def busybox_layer(busybox: str | None = None) -> LayerBuilder:
    """The base layer: /bin/busybox, its applet symlinks and a minimal filesystem."""
    busybox = busybox or find_busybox()
    layer = LayerBuilder()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "home", "var", "var/spool",
              "proc", "sys", "dev", "run", "mnt"):
        layer.add_dir(d)
    layer.add_dir("root", 0o700)
    layer.add_dir("tmp", 0o1777)
    layer.add_dir("var/tmp", 0o1777)
    layer.add_symlink("var/run", "../run")
    layer.add_host_file(busybox, "bin/busybox")
    for applet in _run([busybox, "--list-full"]).split():
        if "/" in applet and applet != "bin/busybox":
            layer.add_symlink(applet, "/bin/busybox")
    layer.add_file("etc/passwd", PASSWD_BASE.encode())
    layer.add_file("etc/group", GROUP_BASE.encode())
    return layer


def build_busybox(out_path: str | os.PathLike,
                  tag: str = "docker.io/library/busybox:latest") -> Path:
    """Build the busybox image (one gzip layer) as an OCI archive at ``out_path``."""
    layer = busybox_layer().build()
    config = {"Env": [PATH_ENV], "Cmd": ["sh"]}
    return write_oci_archive(out_path, tag, [layer], config,
                             ["busybox-static from Debian (podling build-demo)"])


# ---------------------------------------------------------------------------- nginx

NGINX_CONF = """\
user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log notice;
include /etc/nginx/modules-enabled/*.conf;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" "$http_user_agent"';
    access_log /var/log/nginx/access.log main;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
"""

DEFAULT_SITE = """\
server {
    listen 80 default_server;
    server_name localhost;
    root /usr/share/nginx/html;
    index index.html index.htm;

    location / {
        try_files $uri $uri/ =404;
    }
}
"""

NGINX_KEEP = ("etc/nginx", "usr/sbin/nginx", "usr/share/nginx", "usr/share/doc/nginx",
              "usr/share/doc/nginx-common")


def fetch_nginx_debs(dest: str) -> list[str]:
    """Run ``apt-get download nginx nginx-common`` into ``dest``; returns the .deb paths."""
    _run(["apt-get", "download", "-q", "nginx", "nginx-common"], cwd=dest)
    return _find_debs(dest)


def _find_debs(deb_dir: str) -> list[str]:
    names = sorted(os.listdir(deb_dir))
    debs = [n for n in names if re.match(r"nginx(-common)?_.*\.deb$", n)]
    if not any(n.startswith("nginx_") for n in debs) or \
            not any(n.startswith("nginx-common_") for n in debs):
        raise BuildError(f"{deb_dir}: need nginx_*.deb and nginx-common_*.deb")
    return [os.path.join(deb_dir, n) for n in debs]


def shared_libraries(binary: str) -> list[str]:
    """Host paths of the libraries ``binary`` loads (ldd), the ELF interpreter included."""
    libs = []
    for line in _run(["ldd", binary]).splitlines():
        line = line.strip()
        if "not found" in line:
            raise BuildError(f"{binary}: missing host library: {line}")
        m = re.match(r"(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$", line)
        if m:
            libs.append(m.group(1))
    if not libs:
        raise BuildError(f"ldd found no libraries for {binary}")
    return libs


def nginx_layer(deb_root: str) -> LayerBuilder:
    """The nginx layer from an extracted ``deb_root`` (``dpkg-deb -x`` of both .debs)."""
    layer = LayerBuilder()
    for rel in NGINX_KEEP:
        src = os.path.join(deb_root, rel)
        if os.path.isdir(src):
            layer.add_tree(deb_root, rel)
        elif os.path.isfile(src):
            layer.add_host_file(src, rel)
    for lib in shared_libraries(os.path.join(deb_root, "usr/sbin/nginx")):
        layer.add_host_path(lib)
    layer.add_file("etc/nginx/nginx.conf", NGINX_CONF.encode())
    layer.add_file("etc/nginx/conf.d/default.conf", DEFAULT_SITE.encode())
    layer.add_dir("etc/nginx/modules-enabled")
    layer.add_file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    layer.add_file("etc/passwd", (PASSWD_BASE +
                   "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n").encode())
    layer.add_file("etc/group", (GROUP_BASE + "www-data:x:33:\n").encode())
    layer.add_dir("var/log/nginx")
    layer.add_symlink("var/log/nginx/access.log", "/dev/stdout")
    layer.add_symlink("var/log/nginx/error.log", "/dev/stderr")
    layer.add_dir("var/lib/nginx")
    for sub in ("body", "fastcgi", "proxy", "scgi", "uwsgi"):
        layer.add_dir(f"var/lib/nginx/{sub}", 0o700, uid=WWW_DATA, gid=WWW_DATA)
    layer.add_dir("var/www/html")
    return layer


def build_nginx(out_path: str | os.PathLike, tag: str = "docker.io/library/nginx:latest",
                *, deb_dir: str | None = None) -> Path:
    """Build the nginx image (busybox base + Debian nginx) as an OCI archive.

    ``deb_dir`` holds ``nginx_*.deb`` and ``nginx-common_*.deb``; without it they are
    fetched with ``apt-get download`` (Debian's mirror, the only network used). The
    config mirrors the official image: Cmd ``nginx -g 'daemon off;'``, port 80/tcp,
    StopSignal SIGQUIT (no Entrypoint, so a pod's ``command`` replaces nginx cleanly)."""
    with tempfile.TemporaryDirectory(prefix="podling-nginx-") as tmp:
        debs = _find_debs(deb_dir) if deb_dir else fetch_nginx_debs(tmp)
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        for deb in debs:
            _run(["dpkg-deb", "-x", deb, root])
        version = _deb_version(debs)
        top = nginx_layer(root).build()
    base = busybox_layer().build()
    config = {"Env": [PATH_ENV], "Cmd": ["nginx", "-g", "daemon off;"],
              "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT",
              "Labels": {"org.opencontainers.image.version": version,
                         "org.opencontainers.image.source": "debian:bookworm nginx"}}
    history = ["busybox-static from Debian (podling build-demo)",
               f"nginx {version} from Debian with host libraries (podling build-demo)"]
    return write_oci_archive(out_path, tag, [base, top], config, history)


def _deb_version(debs: list[str]) -> str:
    for deb in debs:
        m = re.match(r"nginx_([^_]+)_", os.path.basename(deb))
        if m:
            return m.group(1).replace("%3a", ":")
    return "unknown"


def build_all(out_dir: str | os.PathLike, *, deb_dir: str | None = None) -> list[Path]:
    """Build ``busybox.tar`` and ``nginx.tar`` in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [build_busybox(out / "busybox.tar"),
            build_nginx(out / "nginx.tar", deb_dir=deb_dir)]


if __name__ == "__main__":  # pragma: no cover - manual use: python -m podling.images.build_demo DIR
    import sys

    for p in build_all(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(p, p.stat().st_size)
