"""Host side: DRAM memcpy bandwidth, and SSD bandwidth and latency at KV-block sizes.

Why it matters for KV tiering: blocks evicted from DRAM are written to NVMe, and a prefix hit
in the SSD tier is read back (SSD -> DRAM -> HBM, two hops). Sequential bandwidth bounds bulk
offload; random-read latency at the block size bounds how fast a scattered prefix comes back.
A 4 KiB random read on a datacenter NVMe drive takes ~70-100 us; a PCIe Gen4 drive streams
~7 GB/s, Gen5 ~14 GB/s, only with many requests in flight (``ssd_threads``).

I/O uses ``O_DIRECT`` with page-aligned buffers where the filesystem allows it, so the page
cache does not flatter the figures; where it is refused (tmpfs, some overlay filesystems) the
buffered fallback is noted in the run's notes. The temporary file never outlives the run.

Cases: ``dram/memcpy`` (``size_bytes`` = 2 x n: read + write, ``batch`` = threads);
``ssd/seq_write``, ``ssd/seq_read`` (``batch`` = requests in flight); ``ssd/rand_read``
(one request of ``size_bytes`` at depth 1; ``tokens`` = KV tokens per block when the size
comes from a block).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kvplan.calibrate.samples import Point
from kvplan.calibrate.session import Session
from kvplan.calibrate.sweeps import Sweep
from kvplan.calibrate.timing import Repeats
from kvplan.errors import KvplanError

CHUNK = 1 << 20
"""Request size of sequential SSD I/O (1 MiB)."""
ALIGN = 4096


def memcpy_threads() -> int:
    """Threads for the DRAM copy: one per core, at most 16."""
    return max(1, min(16, os.cpu_count() or 1))


def measure_dram(sess: Session, sweep: Sweep) -> None:
    """Multi-threaded numpy memcpy bandwidth at each ``sweep.host_sizes`` size."""
    top = max(sweep.host_sizes)
    src = np.ones(top, dtype=np.uint8)
    dst = np.zeros(top, dtype=np.uint8)
    threads = memcpy_threads()
    with ThreadPoolExecutor(threads) as pool:
        for n in sweep.host_sizes:
            bounds = np.linspace(0, n, threads + 1).astype(np.int64)
            parts = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))

            def copy(parts=parts) -> None:
                list(pool.map(lambda ab: np.copyto(dst[ab[0] : ab[1]], src[ab[0] : ab[1]]), parts))

            sess.measure(Point("host", "dram/memcpy", size_bytes=2 * n, batch=threads), copy,
                         host=True)


def aligned_buffer(nbytes: int) -> mmap.mmap:
    """A page-aligned, zero-filled buffer (what O_DIRECT requires)."""
    return mmap.mmap(-1, max(ALIGN, -(-nbytes // ALIGN) * ALIGN))


@contextmanager
def scratch_file(folder: Path) -> Iterator[Path]:
    """A temporary file path in ``folder``, removed afterwards whatever happens."""
    if not folder.is_dir():
        raise KvplanError(f"--ssd-path {folder}: not a directory")
    path = folder / f".kvplan-calibrate-{os.getpid()}.tmp"
    try:
        with open(path, "wb"):
            pass
    except OSError as exc:
        raise KvplanError(f"--ssd-path {folder}: not writable ({exc.strerror})") from None
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def open_direct(path: Path, flags: int, sess: Session) -> int:
    """Open with O_DIRECT when the filesystem allows it; otherwise buffered, noted once."""
    direct = getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return os.open(path, flags | direct)
        except OSError:
            pass
    sess.log.note(f"ssd: O_DIRECT not allowed on {path.parent}; buffered I/O (page cache dropped "
                  "with fadvise where possible, figures may still be optimistic)")
    return os.open(path, flags)


def measure_ssd(
    sess: Session, sweep: Sweep, folder: Path, ssd_bytes: int, block_bytes: dict[int, int],
    rng: np.random.Generator,
) -> None:
    """Sequential write/read bandwidth and random-read latency on a file of ``ssd_bytes``.

    ``block_bytes`` maps KV tokens per block -> bytes per block (whole model), the sizes of
    the random reads besides 4 KiB; sizes above a quarter of the file are left out.
    """
    size = max(CHUNK, ssd_bytes // CHUNK * CHUNK)
    with scratch_file(folder) as path:
        try:
            _seq_write(sess, sweep, path, size)
            _seq_read(sess, sweep, path, size)
            sizes = {0: 4096} | {t: b for t, b in block_bytes.items() if b <= size // 4}
            for tokens, nbytes in sizes.items():
                _rand_read(sess, sweep, path, size, tokens, nbytes, rng)
        except OSError as exc:
            raise KvplanError(f"--ssd-path {folder}: I/O failed ({exc.strerror}); "
                              "is the disk full? try a smaller --ssd-bytes") from None


def _seq_write(sess: Session, sweep: Sweep, path: Path, size: int) -> None:
    buf = aligned_buffer(CHUNK)
    buf.write(b"\x5a" * CHUNK)
    offsets = range(0, size, CHUNK)

    def write() -> None:
        fd = open_direct(path, os.O_WRONLY, sess)
        try:
            with ThreadPoolExecutor(sweep.ssd_threads) as pool:
                list(pool.map(lambda off: os.pwrite(fd, buf, off), offsets))
            os.fsync(fd)
        finally:
            os.close(fd)

    sess.measure(Point("ssd", "ssd/seq_write", size_bytes=size, batch=sweep.ssd_threads), write,
                 host=True)


def _drop_cache(fd: int, size: int) -> None:
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, size, os.POSIX_FADV_DONTNEED)


def _seq_read(sess: Session, sweep: Sweep, path: Path, size: int) -> None:
    threads = sweep.ssd_threads
    bufs = [aligned_buffer(CHUNK) for _ in range(threads)]
    offsets = list(range(0, size, CHUNK))

    def read() -> None:
        fd = open_direct(path, os.O_RDONLY, sess)
        _drop_cache(fd, size)
        try:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda i: os.preadv(fd, [bufs[i % threads]], offsets[i]),
                              range(len(offsets))))
        finally:
            os.close(fd)

    sess.measure(Point("ssd", "ssd/seq_read", size_bytes=size, batch=threads), read, host=True)


def _rand_read(sess: Session, sweep: Sweep, path: Path, size: int, tokens: int, nbytes: int,
               rng: np.random.Generator) -> None:
    """Depth-1 reads of ``nbytes`` at random aligned offsets; one sample per read."""
    nbytes = -(-nbytes // ALIGN) * ALIGN
    buf = aligned_buffer(nbytes)
    slots = (size - nbytes) // ALIGN + 1
    rep = Repeats(warmup=2, repeats=sweep.ssd_random_reads)
    offsets = iter((rng.integers(0, slots, rep.warmup + rep.repeats) * ALIGN).tolist())
    fd = open_direct(path, os.O_RDONLY, sess)
    try:
        _drop_cache(fd, size)
        sess.measure(Point("ssd", "ssd/rand_read", size_bytes=nbytes, batch=1, tokens=tokens),
                     lambda: os.preadv(fd, [buf], next(offsets)), host=True, rep=rep)
    finally:
        os.close(fd)
