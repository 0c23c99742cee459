"""The prefetch-policy interface and its registry (docs/simulation.md, "Prefetch").

A prefetch policy only *chooses*: after every scheduling step it names the waiting requests
whose stored prefix should be staged into HBM now, and when a turn finishes it says whether
the session's next turn should be staged during the gap. The :class:`~kvplan.sim.kvstore.KvStore`
does the staging (two hops from SSD, DRAM->HBM only into the reserved staging space).
``just_in_time`` policies are bounds: the store times their loads as finished exactly when
needed, limited only by link bandwidth.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

from kvplan.errors import KvplanError
from kvplan.sim.config import ReplayConfig
from kvplan.sim.request import Req


class PrefetchPolicy(ABC):
    """Names the waiting requests to stage, head of the FCFS queue first."""

    name: ClassVar[str] = ""
    just_in_time: ClassVar[bool] = False
    """True for the oracle bounds: loads never wait on anything but bandwidth."""
    from_arrival: ClassVar[bool] = False
    """Just-in-time loads start no earlier than their request's arrival."""

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config

    @abstractmethod
    def to_stage(self, waiting: Sequence[Req]) -> Iterable[Req]:
        """Requests of the waiting queue whose blocks should be staged now."""

    def after_turn(self, req: Req) -> bool:
        """Whether to stage the next turn of ``req``'s session now that ``req`` finished."""
        return False


_REGISTRY: dict[str, type[PrefetchPolicy]] = {}


def register_prefetch(name: str) -> Callable[[type[PrefetchPolicy]], type[PrefetchPolicy]]:
    """Class decorator: make a prefetch policy available under ``name``."""

    def deco(cls: type[PrefetchPolicy]) -> type[PrefetchPolicy]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def prefetch_names() -> list[str]:
    return sorted(_REGISTRY)


def prefetch_class(name: str) -> type[PrefetchPolicy]:
    """The class registered as ``name``; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KvplanError(f"unknown prefetch policy '{name}'; valid: "
                          f"{', '.join(sorted(_REGISTRY))}") from None


def make_prefetch(config: ReplayConfig) -> PrefetchPolicy:
    return prefetch_class(config.prefetch)(config)
