"""What every measurement family works with: device, timer, repeats, memory guard, sample log.

One :class:`Session` is built per run and handed to each family's ``measure`` function, so no
family reads flags or globals. The memory guard keeps every GPU allocation under
``max_gpu_mem_frac`` of the memory that was free when the run started.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from kvplan.calibrate.samples import Point, SampleLog
from kvplan.calibrate.timing import Repeats, Spread, Timer, time_repeats


def _quiet(_: str) -> None:
    return None


@dataclass
class Session:
    """Per-run measuring context shared by the families."""

    device: str
    """``cuda`` or ``cpu``."""
    timer: Timer
    """Timer for device work (CUDA events on a GPU, wall clock on CPU)."""
    host_timer: Timer
    """Wall-clock timer for host work (memcpy, SSD I/O)."""
    repeats: Repeats
    gpu_budget_bytes: int = 0
    """Most bytes one family may hold on the GPU at once (0 without a GPU)."""
    log: SampleLog = field(default_factory=SampleLog)
    status: Callable[[str], None] = _quiet
    """Called with a short label before each point (drives the progress display)."""

    @property
    def has_gpu(self) -> bool:
        return self.device == "cuda"

    def fits_gpu(self, nbytes: int, what: str) -> bool:
        """True when ``nbytes`` fit the GPU budget; otherwise note the skip and return False."""
        if nbytes <= self.gpu_budget_bytes:
            return True
        self.log.note(
            f"{what}: skipped, needs {nbytes / 2**30:.2f} GiB of GPU memory, over the "
            f"--max-gpu-mem-frac budget of {self.gpu_budget_bytes / 2**30:.2f} GiB"
        )
        return False

    def measure(
        self, point: Point, fn: Callable[[], object], *, host: bool = False,
        rep: Repeats | None = None,
    ) -> Spread:
        """Time ``fn`` (warm-up, repeats; host wall clock if ``host``) and log its samples."""
        self.status(f"{point.family}: {point.case}")
        timer = self.host_timer if host else self.timer
        samples: np.ndarray = time_repeats(fn, timer, rep or self.repeats)
        return self.log.add(point, samples)

    @contextmanager
    def oom_guard(self, what: str) -> Iterator[None]:
        """Turn a CUDA out-of-memory error inside the block into a noted skip."""
        import torch

        try:
            yield
        except torch.cuda.OutOfMemoryError:
            self.log.note(f"{what}: skipped, CUDA out of memory")
            torch.cuda.empty_cache()

def make_session(device: str, repeats: Repeats, max_gpu_mem_frac: float) -> Session:
    """A session for ``device`` with the right timers and the GPU memory budget."""
    from kvplan.calibrate.timing import cuda_event_timer, wall_timer

    if device != "cuda":
        timer = wall_timer()
        return Session("cpu", timer, timer, repeats)
    import torch

    free_bytes, _ = torch.cuda.mem_get_info()
    host = wall_timer(torch.cuda.synchronize)
    return Session("cuda", cuda_event_timer(), host, repeats, int(free_bytes * max_gpu_mem_frac))
