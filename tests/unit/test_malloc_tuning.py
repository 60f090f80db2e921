"""podling.util.malloc: glibc thresholds for streaming processes (checked in child
processes, so the test run's own allocator is left as it is)."""

import subprocess
import sys

SCRIPT = """
import ctypes, sys
from podling.util import malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert malloc.tune_for_streams() is True
    assert malloc.tune_for_streams() is True  # idempotent
before = mallinfo2().hblks
buffer = bytes(1536 * 1024)  # a 1.5 MiB chunk: mapped on its own, or from the heap?
print(mallinfo2().hblks - before)
"""


def mapped_blocks(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_stream_sized_buffers_come_from_the_heap_once_tuned():
    assert mapped_blocks("default") == 1  # glibc's default: a mapping of its own
    assert mapped_blocks("tuned") == 0
