"""A corpus of malicious layers: each is refused with an error naming the entry, or confined.

For every case a full listing + lstat snapshot of the sandbox around the layer directory
(canary files, the layers root, the blob) is taken before and after: nothing may be added,
removed or modified anywhere but inside the new layer directory. Host paths the cases aim
at (``/tmp/PWNED-…``, ``/etc/PWNED-…``) must not appear either.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import Callable

import pytest
import zstandard
from layerkit import GZIP, ZSTD, E, build_tar, header, pad, write_blob

from podling.images.errors import LayerTooLarge, UnsafeLayer
from podling.images.unpack import DevicePolicy, unpack_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod)")

MARK = f"PWNED-{os.getpid()}"
UP = "../" * 3  # from <sandbox>/layers/tmp/unpack-x to <sandbox>
DEEP = "../" * 40  # to the host's /
HOST_TARGETS = [f"/tmp/{MARK}", f"/etc/{MARK}", f"/{MARK}", f"/tmp/{MARK}-dir"]
MB = 1 << 20


@dataclass
class Case:
    id: str
    entries: list[E | bytes] = field(default_factory=list)
    refuse: str | None = None  # the entry name the error message must contain
    too_large: bool = False
    check: Callable[[str], None] | None = None  # for confined cases: look inside the layer
    devices: DevicePolicy = DevicePolicy.SKIP
    fmt: int = tarfile.PAX_FORMAT
    max_bytes: int = 50 * MB
    blob: Callable[[str], tuple[str, str]] | None = None  # custom blob builder


def absent(*rel: str) -> Callable[[str], None]:
    def check(layer: str) -> None:
        for r in rel:
            assert not os.path.lexists(os.path.join(layer, r)), r
    return check


def is_file(rel: str, data: bytes | None = None) -> Callable[[str], None]:
    def check(layer: str) -> None:
        p = os.path.join(layer, rel)
        assert stat.S_ISREG(os.lstat(p).st_mode), rel
        if data is not None:
            assert open(p, "rb").read() == data
    return check


def is_link(rel: str, target: str) -> Callable[[str], None]:
    def check(layer: str) -> None:
        assert os.readlink(os.path.join(layer, rel)) == target
    return check


# -- blob builders for bombs ----------------------------------------------------------------

def zero_bomb(how: str, total: int, per_file: int | None = None
              ) -> Callable[[str], tuple[str, str]]:
    """``total`` zero bytes in files of ``per_file`` bytes (default: one file), streamed
    into the compressor: a blob under 1 MB."""
    per_file = per_file or total

    def chunks():
        for i in range(total // per_file):
            yield header(E(f"zeros{i}", size=per_file))
            for _ in range(per_file // MB):
                yield b"\0" * MB
        yield b"\0" * 1024

    def build(d: str) -> tuple[str, str]:
        path = os.path.join(d, f"bomb-{how[-4:]}")
        with open(path, "wb") as f:
            if how == GZIP:
                c = zlib.compressobj(9, zlib.DEFLATED, 31)
                for chunk in chunks():
                    f.write(c.compress(chunk))
                f.write(c.flush())
            else:
                with zstandard.ZstdCompressor().stream_writer(f, closefd=False) as w:
                    for chunk in chunks():
                        w.write(chunk)
        assert os.path.getsize(path) < MB
        return path, how
    return build


def many_files_bomb(count: int) -> Callable[[str], tuple[str, str]]:
    def build(d: str) -> tuple[str, str]:
        tar = build_tar([E(f"f{i:07d}") for i in range(count)])
        return write_blob(d, tar, GZIP), GZIP
    return build


def truncated_body(d: str) -> tuple[str, str]:
    tar = header(E("short", size=100_000)) + pad(b"only a little")  # no end marker either
    return write_blob(d, tar, GZIP), GZIP


def corrupt_checksum(d: str) -> tuple[str, str]:
    bad = bytearray(header(E("evil", data=b"")))
    bad[148:156] = b"0000000\0"  # wrong checksum
    tar = build_tar([E("ok", data=b"fine"), bytes(bad)])
    return write_blob(d, tar, GZIP), GZIP


# -- the corpus -------------------------------------------------------------------------

CASES = [
    # `../x` walks out of the layer directory
    Case("dotdot", [E(f"../{MARK}")], refuse=f"../{MARK}"),
    # `a/../../x`: lexically climbs one level above the root
    Case("inner-dotdot", [E(f"a/../../{MARK}")], refuse=f"a/../../{MARK}"),
    # many `..` aiming at the host's /tmp
    Case("deep-dotdot", [E(f"{DEEP}tmp/{MARK}")], refuse=f"tmp/{MARK}"),
    # `../` up to the sandbox, into the canary dir
    Case("dotdot-canary", [E(f"{UP}canary/secret", data=b"owned")], refuse="canary/secret"),
    # absolute `/etc/x` is confined to <layer>/etc/x
    Case("absolute", [E(f"/etc/{MARK}", data=b"x")], check=is_file(f"etc/{MARK}", b"x")),
    # `/../x`: absolute and climbing
    Case("absolute-dotdot", [E(f"/../{MARK}")], refuse=f"/../{MARK}"),
    # symlink to / then a write through it
    Case("symlink-root-write", [E("root", "sym", linkname="/"),
                                E(f"root/tmp/{MARK}", data=b"x")], refuse=f"root/tmp/{MARK}"),
    # symlink to .. then a write through it
    Case("symlink-dotdot-write", [E("up", "sym", linkname=".."), E(f"up/{MARK}")],
         refuse=f"up/{MARK}"),
    # symlink to the sandbox's canary dir, then overwrite a canary through it
    Case("symlink-canary-write", [E("c", "sym", linkname=f"{UP}canary"),
                                  E("c/secret", data=b"owned")], refuse="c/secret"),
    # a symlinked directory, then a directory entry under it
    Case("symlink-then-mkdir", [E("d", "sym", linkname="/tmp"), E(f"d/{MARK}-dir/", "dir")],
         refuse=f"d/{MARK}-dir"),
    # a symlinked parent several levels up
    Case("symlink-deep-parent", [E("a/b/", "dir"), E("a/b/c", "sym", linkname="/tmp"),
                                 E(f"a/b/c/{MARK}")], refuse=f"a/b/c/{MARK}"),
    # symlink then a regular file of the same name: replaces the link, never writes through
    Case("symlink-then-file", [E("f", "sym", linkname=f"/tmp/{MARK}"), E("f", data=b"mine")],
         check=is_file("f", b"mine")),
    # a directory replaced by a symlink, then a write into it
    Case("dir-to-symlink-write", [E("d/", "dir"), E("d", "sym", linkname="/tmp"),
                                  E(f"d/{MARK}")], refuse=f"d/{MARK}"),
    # duplicates dir → file → symlink: the last one wins, confined
    Case("dup-dir-file-symlink", [E("d/", "dir"), E("d/x", data=b"1"), E("d", data=b"2"),
                                  E("d", "sym", linkname="/etc")], check=is_link("d", "/etc")),
    # symlink replaced by a directory, then a file inside: confined
    Case("symlink-to-dir", [E("etc", "sym", linkname="/etc"), E("etc/", "dir"),
                            E(f"etc/{MARK}", data=b"in")], check=is_file(f"etc/{MARK}", b"in")),
    # a symlink loop, then a write through it
    Case("symlink-loop", [E("a", "sym", linkname="b"), E("b", "sym", linkname="a"),
                          E(f"a/{MARK}")], refuse=f"a/{MARK}"),
    # setuid bits on a symlink: meaningless, the link is created as a link
    Case("setuid-symlink", [E("s", "sym", linkname="/bin/sh", mode=0o4777)],
         check=is_link("s", "/bin/sh")),
    # hardlink to the host's /etc/passwd: resolved inside the layer, where it does not exist
    Case("hardlink-etc-passwd", [E("pw", "link", linkname="/etc/passwd")], refuse="pw"),
    # hardlink to ../x
    Case("hardlink-dotdot", [E("h", "link", linkname=f"{UP}canary/secret")], refuse="h"),
    # hardlink through a symlinked parent
    Case("hardlink-through-symlink", [E("s", "sym", linkname=f"{UP}canary"),
                                      E("h", "link", linkname="s/secret")], refuse="h"),
    # hardlink to a symlink that points outside, then a write to the hardlink's name
    Case("hardlink-to-symlink-write", [E("l", "sym", linkname=f"/tmp/{MARK}"),
                                       E("h", "link", linkname="l"), E("h", data=b"mine")],
         check=is_file("h", b"mine")),
    # hardlink to a symlink pointing outside, then a write under it
    Case("hardlink-to-symlink-child", [E("l", "sym", linkname="/tmp"),
                                       E("h", "link", linkname="l"), E(f"h/{MARK}")],
         refuse=f"h/{MARK}"),
    # hardlink to a directory
    Case("hardlink-dir", [E("d/", "dir"), E("h", "link", linkname="d")], refuse="h"),
    # hardlink created before its target
    Case("hardlink-forward", [E("h", "link", linkname="later"), E("later")], refuse="h"),
    # whiteout `.wh...` would hide `..`
    Case("whiteout-dotdot", [E("a/.wh...")], refuse="a/.wh..."),
    # whiteout `.wh..` would hide the directory itself
    Case("whiteout-dot", [E("a/.wh..")], refuse="a/.wh.."),
    # whiteout `.wh.` of the empty name
    Case("whiteout-empty", [E(".wh.")], refuse=".wh."),
    # whiteout with a traversing path
    Case("whiteout-traversal", [E(f"{UP}canary/.wh.secret")], refuse="canary/.wh.secret"),
    # whiteout of a path through a symlink
    Case("whiteout-through-symlink", [E("s", "sym", linkname=f"{UP}canary"),
                                      E("s/.wh.secret")], refuse="s/.wh.secret"),
    # opaque marker under a symlinked directory
    Case("opaque-through-symlink", [E("s", "sym", linkname=f"{UP}canary"),
                                    E("s/.wh..wh..opq")], refuse="s/.wh..wh..opq"),
    # a `.wh.` name on a symlink: reserved
    Case("whiteout-name-symlink", [E(".wh.x", "sym", linkname="/")], refuse=".wh.x"),
    # a `.wh.` name used as a directory
    Case("whiteout-name-as-dir", [E(".wh.x/y", data=b"y")], refuse=".wh.x/y"),
    # whiteout, then a write below the whited-out name: an opaque dir inside the layer
    Case("whiteout-then-child", [E(".wh.w"), E("w/f", data=b"f")], check=is_file("w/f", b"f")),
    # a block device: refused under DevicePolicy.REFUSE
    Case("block-device", [E("sda", "blk", major=8, minor=0)], refuse="sda",
         devices=DevicePolicy.REFUSE),
    # a char device other than 0/0 (/dev/mem): refused under DevicePolicy.REFUSE
    Case("char-device", [E("mem", "chr", major=1, minor=1)], refuse="mem",
         devices=DevicePolicy.REFUSE),
    # the same devices under the default policy: skipped, nothing created
    Case("devices-skipped", [E("sda", "blk", major=8), E("kmem", "chr", major=1, minor=2)],
         check=absent("sda", "kmem")),
    # a fifo is harmless: created inside
    Case("fifo", [E("p", "fifo")],
         check=lambda layer: stat.S_ISFIFO(os.lstat(os.path.join(layer, "p")).st_mode)),
    # a NUL byte in a PAX path
    Case("nul-name", [E("x", pax={"path": "a\x00/../../b"})], refuse="a"),
    # an empty name for a regular file (would be the layer root)
    Case("empty-name", [E("")], refuse="''"),
    # `.` as a regular file: the root again
    Case("dot-file", [E("./", data=b"x")], refuse="./"),
    # a header claiming 1 TB
    Case("huge-size-header", [E("big", size=10**12)], too_large=True),
    # a header claiming 100 kB with a short body
    Case("short-body", blob=truncated_body, refuse="short"),
    # a corrupt header after a good entry: not silently treated as the end
    Case("corrupt-header", blob=corrupt_checksum, refuse="ok"),
    # 200 MB of zeros in < 1 MB of gzip, cap 50 MB
    Case("gzip-bomb", blob=zero_bomb(GZIP, 200 * MB), too_large=True),
    # the same as zstd
    Case("zstd-bomb", blob=zero_bomb(ZSTD, 200 * MB), too_large=True),
    # 200 files of 1 MB zeros: each file is under the cap, the stream is not
    Case("gzip-bomb-split", blob=zero_bomb(GZIP, 200 * MB, MB), too_large=True),
    # the same as zstd
    Case("zstd-bomb-split", blob=zero_bomb(ZSTD, 200 * MB, MB), too_large=True),
    # many small files: the headers alone exceed the cap
    Case("many-files-bomb", blob=many_files_bomb(12_000), too_large=True, max_bytes=4 * MB),
    # a path longer than PATH_MAX
    Case("long-path", [E("a/" * 2100 + "x")], refuse="a/a/a"),
    # a component longer than NAME_MAX
    Case("long-component", [E("n" * 300)], refuse="nnn"),
    # a PAX path override with `..` (the ustar name looks harmless)
    Case("pax-path-dotdot", [E("harmless", pax={"path": f"{UP}canary/{MARK}"})],
         refuse=f"canary/{MARK}"),
    # a PAX linkpath override escaping for a hardlink
    Case("pax-linkpath-dotdot", [E("h", "link", pax={"linkpath": f"{UP}canary/secret"})],
         refuse="h"),
    # a GNU longname with `..`
    Case("gnu-longname-dotdot", [E(f"{UP}{'L' * 120}/{MARK}")], fmt=tarfile.GNU_FORMAT,
         refuse=MARK),
    # an oversized PAX header (memory exhaustion)
    Case("huge-pax-header", [E("first"), E("x", pax={"comment": "c" * (2 * MB)})],
         refuse="after 'first'"),
    # GNU sparse type
    Case("sparse", [E("sp", kind=tarfile.GNUTYPE_SPARSE)], fmt=tarfile.GNU_FORMAT,
         refuse="sp"),
    # an unknown entry type
    Case("unknown-type", [E("u", kind=b"Z", data=b"zz")], refuse="u"),
    # a uid that does not fit
    Case("uid-overflow", [E("u", pax={"uid": str(2**40)})], refuse="u"),
    # overlayfs xattrs smuggled in PAX: dropped
    Case("overlay-xattr", [E("d/", "dir", pax={"SCHILY.xattr.trusted.overlay.redirect": "/x"})],
         check=lambda layer: os.listxattr(os.path.join(layer, "d")) == []),
    # a symlink in place of the layer root
    Case("symlink-as-root", [E("./.", "sym", linkname="/etc")], refuse="./."),
    # a fifo in place of the layer root
    Case("fifo-as-root", [E("./.", "fifo")], refuse="./."),
    # an empty symlink target
    Case("empty-symlink-target", [E("s", "sym", linkname="")], refuse="s"),
    # a hardlink to the layer root
    Case("hardlink-to-root", [E("h", "link", linkname="./")], refuse="h"),
    # a hardlink to itself: a no-op, confined
    Case("self-hardlink", [E("f", data=b"x"), E("f", "link", linkname="f")],
         check=is_file("f", b"x")),
    # no end-of-archive marker: the entries before the end are kept, confined
    Case("no-end-marker", blob=lambda d: (write_blob(d, build_tar([E("f", data=b"e")],
                                                                  end=False)), GZIP),
         check=is_file("f", b"e")),
    # `./` prefixes and `.` components: normalised, confined
    Case("dot-prefixes", [E(f"./././/etc/./{MARK}", data=b"d")], check=is_file(f"etc/{MARK}")),
    # lexical `..` that stays inside: confined
    Case("inner-dotdot-ok", [E(f"a/b/../{MARK}", data=b"i")], check=is_file(f"a/{MARK}", b"i")),
]


# -- the harness -----------------------------------------------------------------------

def snapshot(root: str) -> dict[str, tuple]:
    """Every path under ``root`` (not inside unpacked layers) with its lstat and content."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.startswith(os.path.join("layers", "sha256") + os.sep):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(open(p, "rb").read()).hexdigest()
            out[os.path.relpath(p, root)] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                st.st_nlink, st.st_ino, tuple(sorted(os.listxattr(p, follow_symlinks=False))),
                digest)
    return out


def diff(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Differences, except the new layer dir and the layers root's own directory times."""
    moving = {os.path.join("layers", "sha256"), os.path.join("layers", "tmp")}
    problems = []
    for key in sorted(before.keys() | after.keys()):
        if key not in before and re.fullmatch(r"layers/sha256/[0-9a-f]{64}", key):
            continue
        b, a = before.get(key), after.get(key)
        if key in moving and a and b:
            a, b = a[:4] + a[7:], b[:4] + b[7:]  # mtime, ctime, nlink change by design
        if a != b:
            problems.append(f"{key}: {b} -> {a}")
    return problems


@pytest.fixture
def sandbox(tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_bytes(b"canary secret")
    (canary / "passwd").write_bytes(b"root:x:0:0\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "blobs").mkdir()
    for d in ("sha256", "tmp"):
        (tmp_path / "layers" / d).mkdir(parents=True, mode=0o700)
    yield tmp_path
    for t in HOST_TARGETS:  # clean up in case a bug let one through, then fail loudly
        if os.path.lexists(t):
            os.unlink(t) if not os.path.isdir(t) else os.rmdir(t)


def test_corpus_is_large_enough():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malicious_layer(sandbox, case: Case):
    blobs = str(sandbox / "blobs")
    if case.blob is not None:
        blob, media = case.blob(blobs)
    else:
        blob, media = write_blob(blobs, build_tar(case.entries, case.fmt), GZIP), GZIP
    layers = str(sandbox / "layers")
    before = snapshot(str(sandbox))
    error: UnsafeLayer | None = None
    result = None
    try:
        result = unpack_layer(blob, layers, media_type=media, max_bytes=case.max_bytes,
                              devices=case.devices, durable=False)
    except UnsafeLayer as e:
        error = e
    after = snapshot(str(sandbox))
    assert diff(before, after) == [], "writes outside the layer directory"
    assert [t for t in HOST_TARGETS if os.path.lexists(t)] == []
    assert os.listdir(os.path.join(layers, "tmp")) == []
    if case.too_large:
        assert isinstance(error, LayerTooLarge), error
        assert os.listdir(os.path.join(layers, "sha256")) == []
    elif case.refuse is not None:
        assert error is not None, f"{case.id} was not refused"
        assert not isinstance(error, LayerTooLarge)
        assert case.refuse in str(error), str(error)
        assert os.listdir(os.path.join(layers, "sha256")) == []
    else:
        assert error is None, str(error)
        assert result is not None and case.check is not None
        case.check(result.path)


def test_symlink_then_write_across_two_layers(sandbox):
    """Layer 1 plants `s -> /tmp`; layer 2 writes `s/x`: each layer has its own directory,
    so layer 2's `s` is a plain directory inside layer 2 (overlayfs merges them later, and
    the container resolves the path inside its root)."""
    layers = str(sandbox / "layers")
    blobs = str(sandbox / "blobs")
    l1 = write_blob(blobs, build_tar([E("s", "sym", linkname="/tmp")]))
    l2 = write_blob(blobs, build_tar([E(f"s/{MARK}", data=b"x")]))
    before = snapshot(str(sandbox))
    r1 = unpack_layer(l1, layers, media_type=GZIP, durable=False)
    r2 = unpack_layer(l2, layers, media_type=GZIP, durable=False)
    assert diff(before, snapshot(str(sandbox))) == []
    assert os.readlink(os.path.join(r1.path, "s")) == "/tmp"
    assert os.path.isdir(os.path.join(r2.path, "s"))
    assert not os.path.islink(os.path.join(r2.path, "s"))
    assert not os.path.lexists(f"/tmp/{MARK}")


def test_harness_detects_outside_writes(sandbox):
    """The snapshot sees an added file, a modified canary and a new hardlink to it."""
    before = snapshot(str(sandbox))
    (sandbox / "outside" / "x").write_bytes(b"x")
    assert diff(before, snapshot(str(sandbox)))
    before = snapshot(str(sandbox))
    os.link(sandbox / "canary" / "secret", sandbox / "canary" / "again")
    problems = diff(before, snapshot(str(sandbox)))
    assert any(p.startswith("canary/secret") for p in problems)
    before = snapshot(str(sandbox))
    (sandbox / "layers" / "tmp" / "stray").write_bytes(b"")
    assert diff(before, snapshot(str(sandbox)))
