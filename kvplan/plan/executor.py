"""Where a plan's parallel work runs: a local process pool, or Ray tasks on a cluster.

Two kinds of work fan out: event verifications (one replay per replica of a candidate,
kvplan.plan.verify) and, on Ray, screening shards (chunks of candidates, kvplan.plan.screen).
Both executors give the same results for the same inputs; only where the work runs differs.

Big read-only inputs travel once, not once per task: :meth:`share` turns one into a small
handle that tasks carry and open with ``.get()``::

    local pool   a routed sub-workload is written once to an Arrow IPC file in a temporary
                 folder; a worker memory-maps it on first use and keeps it until a task
                 needs another (the pages are shared by every worker through the page cache)
    Ray          ``ray.put`` once into the object store; tasks get the reference and read it
                 zero-copy on their node; profile and model files named by path travel
                 as their text (:class:`Files`) and are written out once per worker

``kvplan plan --ray [ADDRESS]`` connects to a running cluster (``ray://host:10001`` or
``host:6379``), or starts a local one when no address is given; Ray is the optional extra
``kvplan[ray]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from kvplan.errors import KvplanError
from kvplan.workload import Workload

LOCAL_CLUSTER = "local"
"""``--ray`` with no address: start a Ray cluster on this machine."""


class Shared(Protocol):
    """A handle to a big read-only input, cheap to send with every task."""

    def get(self) -> Any: ...


@dataclass(frozen=True)
class Inline:
    """The object itself (work that runs in this process)."""

    obj: Any

    def get(self) -> Any:
        return self.obj


_OPENED: dict[str, Workload] = {}
"""The sub-workload this process memory-mapped last, by file (one per worker process: a
worker runs one task at a time, and each mapping it keeps adds to its resident memory)."""


@dataclass(frozen=True)
class WorkloadFile:
    """A workload written once to an Arrow IPC file; opened (memory-mapped) once per process."""

    path: str
    meta: Any

    def get(self) -> Workload:
        if self.path not in _OPENED:
            _OPENED.clear()
            with pa.memory_map(self.path) as source:
                table = pa.ipc.open_file(source).read_all()
            _OPENED[self.path] = Workload(table=table, meta=self.meta)
        return _OPENED[self.path]


@dataclass
class Outcome:
    """One task's result, or the exception it raised."""

    index: int
    value: Any = None
    error: BaseException | None = None


class PlanExecutor(Protocol):
    """What the planner needs from an executor."""

    workers: int
    """Tasks that run at once."""
    remote_screen: bool
    """Run the screen's shards as tasks too (on Ray; the local pool screens in-process)."""

    def share(self, obj: Any) -> Shared:
        """A handle to ``obj`` that tasks carry; the object travels once per worker."""
        ...

    def run(self, fn: Callable, args: Sequence[tuple], timeout_s: float | None = None
            ) -> Iterator[Outcome]:
        """``fn(*a)`` for each ``a`` of ``args``, yielded as they finish (Outcome.index: the
        position in ``args``); TimeoutError when ``timeout_s`` pass before all finish."""
        ...

    def abort(self) -> None:
        """Stop every task at once (an interrupt or an error: nothing more is wanted)."""
        ...

    def close(self) -> None: ...


def _warm_up() -> None:
    """Import the simulator in a fresh worker (runs while the parent screens)."""
    import kvplan.sim.replay  # noqa: F401


@dataclass
class LocalPool:
    """A spawn process pool on this machine, workers starting up at once (fork deadlocks
    polars' thread pool)."""

    workers: int
    remote_screen: bool = False
    _pool: ProcessPoolExecutor = field(init=False)
    _tmp: tempfile.TemporaryDirectory | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.workers = max(1, self.workers)
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        # A spawned worker inherits the ignored disposition, so a Ctrl-C never reaches one
        # mid-start (it would print the worker's traceback); one pressed in the ~10 ms the
        # spawning takes is lost to this process too, and needs pressing again.
        with _sigint_ignored():
            for _ in range(self.workers):
                self._pool.submit(_warm_up)

    def share(self, obj: Any) -> Shared:
        if not isinstance(obj, Workload):
            return Inline(obj)
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="kvplan-")
        path = Path(self._tmp.name) / f"part-{len(os.listdir(self._tmp.name))}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, obj.table.schema) as w:
            w.write_table(obj.table)
        return WorkloadFile(str(path), obj.meta)

    def run(self, fn: Callable, args: Sequence[tuple], timeout_s: float | None = None
            ) -> Iterator[Outcome]:
        futs: dict[Future, int] = {self._pool.submit(fn, *a): i for i, a in enumerate(args)}
        yield from _as_completed(futs, timeout_s)

    def abort(self) -> None:
        """Terminate the workers instead of letting them finish their runs (Ctrl-C goes to
        the parent alone: workers ignore SIGINT, so an interrupted plan stops quietly)."""
        for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
            proc.terminate()  # no public API before Python 3.14's terminate_workers()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._tmp is not None:
            self._tmp.cleanup()


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the block runs (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _as_completed(futs: dict[Future, int], timeout_s: float | None) -> Iterator[Outcome]:
    pending = set(futs)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while pending:
        done, pending = wait(pending, timeout=_left(deadline), return_when=FIRST_COMPLETED)
        if not done:
            raise TimeoutError
        for f in sorted(done, key=futs.__getitem__):
            exc = f.exception()
            yield Outcome(futs[f], None if exc else f.result(), exc)


CONNECT_TIMEOUT_S = 5.0
"""How long ``--ray-address`` may take to accept a TCP connection (Ray itself retries for
minutes against an address that does not answer)."""


def check_reachable(address: str) -> None:
    """A one-line KvplanError unless ``address`` (``[ray://]host:port``) accepts a connection.

    Example: "ray://10.0.0.5:10001" -> connects to 10.0.0.5 port 10001; "auto" is left to Ray.
    """
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        if address == "auto":
            return
        raise KvplanError(f"--ray-address: expected [ray://]HOST:PORT or auto, got '{address}'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise KvplanError(f"--ray-address: cannot reach the Ray cluster at '{address}' "
                          f"({exc.strerror or exc})") from None


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class RayCluster:
    """Tasks on a Ray cluster: an existing one at ``address``, or a local one (a process that
    is already connected to Ray keeps its connection, and keeps it open after :meth:`close`)."""

    def __init__(self, address: str = LOCAL_CLUSTER, workers: int | None = None) -> None:
        self._ray = import_ray()
        self._owned = not self._ray.is_initialized()  # else: use the caller's connection
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "logging_level": "ERROR", "configure_logging": False}
        if address != LOCAL_CLUSTER:
            check_reachable(address)
        try:
            if not self._owned:
                pass
            elif address == LOCAL_CLUSTER:
                self._ray.init(num_cpus=workers, **kw)
            else:
                self._ray.init(address=address, **kw)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise KvplanError(f"--ray: cannot connect to the Ray cluster at '{address}' "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                              ) from None
        self.workers = max(1, int(self._ray.cluster_resources().get("CPU", 1)))
        self.remote_screen = True
        self._remote = self._ray.remote(_call)

    def share(self, obj: Any) -> Shared:
        return RayRef(self._ray.put(obj))

    def run(self, fn: Callable, args: Sequence[tuple], timeout_s: float | None = None
            ) -> Iterator[Outcome]:
        refs = {self._submit(fn, a): i for i, a in enumerate(args)}
        pending = list(refs)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while pending:
                done, pending = self._ray.wait(pending, num_returns=1, timeout=_left(deadline))
                if not done:
                    raise TimeoutError
                for ref in done:
                    try:
                        yield Outcome(refs[ref], self._ray.get(ref))
                    except self._ray.exceptions.RayTaskError as exc:
                        yield Outcome(refs[ref], error=exc.as_instanceof_cause())
        finally:
            for ref in pending:
                self._ray.cancel(ref, force=True)

    def _submit(self, fn: Callable, args: tuple) -> Any:
        """One task; the object-store inputs its handles name are passed as top-level
        arguments, so Ray fetches them before the task starts (a ``ray.get`` inside a task
        would release its CPU and let Ray start yet another worker for the next task)."""
        handles = _handles(args)
        return self._remote.remote(fn, args, [h.key for h in handles],
                                   *[h.ref for h in handles])

    def abort(self) -> None:
        """Nothing more to stop: leaving :meth:`run` early cancels its pending tasks."""

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()


def _call(fn: Callable, args: tuple, keys: list[str], *values: Any) -> Any:
    """A Ray task: ``fn(*args)``, with the objects its handles name already fetched."""
    _FETCHED.clear()
    _FETCHED.update(zip(keys, values, strict=True))
    try:
        return fn(*args)
    finally:
        _FETCHED.clear()


_FETCHED: dict[str, Any] = {}
"""Objects fetched for the running Ray task, by RayRef.key."""


@dataclass(frozen=True)
class RayRef:
    """An object in Ray's object store."""

    ref: Any

    @property
    def key(self) -> str:
        return self.ref.hex()

    def get(self) -> Any:
        if self.key in _FETCHED:
            return _FETCHED[self.key]
        import ray

        return ray.get(self.ref)


def _handles(args: tuple) -> list[RayRef]:
    """The RayRefs among ``args`` and the fields of dataclass arguments (one level down)."""
    out: dict[str, RayRef] = {}
    for a in args:
        inner = [getattr(a, f.name) for f in dataclasses.fields(a)] if \
            dataclasses.is_dataclass(a) and not isinstance(a, type) else []
        for v in [a, *inner]:
            if isinstance(v, RayRef):
                out[v.key] = v
    return list(out.values())


@dataclass(frozen=True)
class Files:
    """Local files that configurations name by path (a profile TOML, a model config.json), as
    text, so that a node without them can run the configurations (kvplan.plan.verify)."""

    texts: dict[str, str]
    """Path as named -> its text."""

    @staticmethod
    def named_by(configs: Sequence[Any]) -> Files:
        """The profile and model files that ``configs`` (ReplayConfigs) name by path."""
        paths = {v for c in configs for v in (c.profile, c.model) if Path(v).is_file()}
        return Files({p: Path(p).read_text() for p in sorted(paths)})

    def local(self) -> dict[str, str]:
        """Path as named -> a path on this machine with the same text (written once per
        process into a temporary folder where the named file is missing or differs)."""
        out = {}
        for path, text in self.texts.items():
            p = Path(path)
            if p.is_file() and p.read_text() == text:
                out[path] = path
                continue
            key = hashlib.sha256(f"{path}\0{text}".encode()).hexdigest()[:16]
            local = Path(tempfile.gettempdir()) / f"kvplan-files-{os.getpid()}" / key / p.name
            if not local.is_file():
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(text)
            out[path] = str(local)
        return out


def with_local_files(config: Any, files: Shared | None) -> Any:
    """``config`` (a ReplayConfig) naming this machine's copies of its profile / model files
    (in a worker; ``files`` from ``share(Files.named_by(...))``, None: nothing to change)."""
    if files is None:
        return config
    local = files.get().local()
    return dataclasses.replace(config, profile=local.get(config.profile, config.profile),
                               model=local.get(config.model, config.model))


def import_ray() -> Any:
    """The ray module, or a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise KvplanError("--ray needs Ray: pip install 'kvplan[ray]' (or pip install ray)"
                          ) from None
    return ray


def make_executor(ray_address: str | None, workers: int) -> PlanExecutor:
    """Ray at ``ray_address`` (LOCAL_CLUSTER: a local cluster of ``workers`` CPUs), else a
    local pool of ``workers`` processes."""
    if ray_address is None:
        return LocalPool(workers)
    return RayCluster(ray_address, workers if ray_address == LOCAL_CLUSTER else None)


class ShardedScreen:
    """kvplan.plan.screen.evaluate with its candidate chunks run as tasks: the same chunks
    as in-process, so the same columns. Each replica count's traces are shared once."""

    def __init__(self, executor: PlanExecutor, chunk_cells: int | None = None) -> None:
        self.executor, self.chunk_cells = executor, chunk_cells
        self._shared: dict[int, tuple[list, Shared]] = {}

    def __call__(self, cm: Any, traces: list, cands: Any, slo: Any, max_seqs: int
                 ) -> dict[str, Any]:
        from kvplan.plan.screen import CHUNK_CELLS, candidate_chunks, merge_columns

        if id(traces) not in self._shared:  # the traces list is kept alive beside its handle
            self._shared[id(traces)] = (traces, self.executor.share(
                [t.for_shards() for t in traces]))
        handle = self._shared[id(traces)][1]
        chunks = candidate_chunks(traces, cands, self.chunk_cells or CHUNK_CELLS)
        parts: list[Any] = [None] * len(chunks)
        for o in self.executor.run(_screen_shard, [(cm, handle, c, slo, max_seqs)
                                                   for c in chunks]):
            if o.error is not None:
                raise o.error
            parts[o.index] = o.value
        return merge_columns(parts)


def _screen_shard(cm: Any, traces: Shared, cands: Any, slo: Any, max_seqs: int
                  ) -> dict[str, Any]:
    """One screening shard (in a worker)."""
    from kvplan.plan.screen import evaluate_chunk

    return evaluate_chunk(cm, traces.get(), cands, slo, max_seqs)
