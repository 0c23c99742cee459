"""Host<->device link bandwidth vs transfer size: pinned and pageable, each direction, both at once.

Why it matters for KV tiering: every block loaded from DRAM into HBM (or offloaded back) crosses
this link. Small transfers are dominated by a fixed cost (driver call, DMA set-up: a few
microseconds), large ones by the link (PCIe Gen5 x16: 64 GB/s nominal per direction, ~55 GB/s
achieved from pinned memory). Pageable memory is first staged through a driver-owned pinned
buffer, so it is slower and is what a naive offload path gets. Both directions at once shows
whether offloads (D2H) steal bandwidth from loads (H2D).

Cases (``size_bytes`` = bytes moved by one call):
``h2d/pinned/alone``, ``d2h/pinned/alone``, ``h2d/pageable/alone``, ``d2h/pageable/alone``,
``both/pinned`` (an H2D and a D2H of n bytes each on two streams; size_bytes = 2n).
"""

from __future__ import annotations

from kvplan.calibrate.samples import Point
from kvplan.calibrate.session import Session
from kvplan.calibrate.sweeps import Sweep


def measure_links(sess: Session, sweep: Sweep) -> None:
    """Time host<->device copies at every ``sweep.link_sizes`` size that fits the GPU budget."""
    import torch

    sizes = [n for n in sweep.link_sizes if sess.fits_gpu(2 * n, f"links at {n} B")]
    if not sizes:
        return
    top = max(sizes)
    dev = torch.zeros(2 * top, dtype=torch.uint8, device="cuda")
    pinned = torch.zeros(2 * top, dtype=torch.uint8, pin_memory=True)
    pageable = torch.zeros(top, dtype=torch.uint8)
    side = torch.cuda.Stream()
    for n in sizes:
        d, d2 = dev[:n], dev[top : top + n]
        hp, hp2, hq = pinned[:n], pinned[top : top + n], pageable[:n]
        cases = {
            "h2d/pinned/alone": lambda d=d, hp=hp: d.copy_(hp, non_blocking=True),
            "d2h/pinned/alone": lambda d=d, hp=hp: hp.copy_(d, non_blocking=True),
            "h2d/pageable/alone": lambda d=d, hq=hq: d.copy_(hq),
            "d2h/pageable/alone": lambda d=d, hq=hq: hq.copy_(d),
        }
        for case, fn in cases.items():
            sess.measure(Point("links", case, size_bytes=n), fn)
        sess.measure(
            Point("links", "both/pinned", size_bytes=2 * n),
            lambda d=d, d2=d2, hp=hp, hp2=hp2: both_directions(d, hp, hp2, d2, side),
        )


def both_directions(dst_dev, src_host, dst_host, src_dev, side) -> None:
    """An H2D copy on the current stream and a D2H copy on ``side``, joined at the end."""
    import torch

    cur = torch.cuda.current_stream()
    side.wait_stream(cur)
    dst_dev.copy_(src_host, non_blocking=True)
    with torch.cuda.stream(side):
        dst_host.copy_(src_dev, non_blocking=True)
    cur.wait_stream(side)
