"""Device memory (HBM) copy bandwidth vs size.

Why it matters for KV tiering: decode is bandwidth-bound — every step reads the weights and the
whole KV context of every running sequence from HBM — so achieved HBM bandwidth, not the
datasheet peak, sets decode step time. A device-to-device copy reads n and writes n bytes;
``size_bytes`` counts both (2n), the convention the datasheet peak uses (H200: 4.8 TB/s).
"""

from __future__ import annotations

from kvplan.calibrate.samples import Point
from kvplan.calibrate.session import Session
from kvplan.calibrate.sweeps import Sweep


def measure_hbm(sess: Session, sweep: Sweep) -> None:
    """Time device-to-device copies at every ``sweep.hbm_sizes`` size that fits the budget."""
    import torch

    sizes = [n for n in sweep.hbm_sizes if sess.fits_gpu(2 * n, f"hbm copy at {n} B")]
    if not sizes:
        return
    top = max(sizes)
    src = torch.zeros(top, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for n in sizes:
        s, d = src[:n], dst[:n]
        sess.measure(Point("hbm", "d2d/copy", size_bytes=2 * n), lambda s=s, d=d: d.copy_(s))
