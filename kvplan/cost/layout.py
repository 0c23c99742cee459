"""Layout: how one model is spread over GPUs (tensor, data and expert parallel sizes).

A **replica** is ``tp`` GPUs of one node that run the model together (tensor parallel:
attention heads, MLP columns and the vocabulary are split over them); ``dp`` replicas serve
the traffic side by side (data parallel, requests routed by kvplan.plan.routing); ``ep`` is the
expert-parallel group of an MoE model: its routed experts are spread whole over ``ep`` GPUs
instead of being sliced over the replica's ``tp`` GPUs. ``ep`` is 1 (experts TP-sliced, vLLM's
default) or a multiple of ``tp`` that divides ``tp x dp`` (vLLM ``--enable-expert-parallel``:
the group spans ``ep / tp`` replicas, which are assumed to run similar batches)::

    tp 2, dp 2, ep 4 on mixtral-8x7b: 2 replicas of 2 GPUs; every GPU holds 8 / 4 = 2 experts
    and a 1/2 slice of attention; tokens reach their experts by all-to-all over the 4 GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvplan.bounds import IMBALANCE, check_value
from kvplan.errors import KvplanError
from kvplan.hardware.profile import HardwareProfile
from kvplan.model.spec import ModelSpec


@dataclass(frozen=True)
class Layout:
    """Parallel sizes of one serving configuration."""

    tp: int | None = None
    """GPUs per replica (tensor parallel), all in one node; None = the fewest (1, 2, 4, ...)
    that hold the weights with room left for KV (CostModel.build resolves it)."""
    dp: int = 1
    """Replicas (data parallel)."""
    ep: int = 1
    """Expert-parallel group size (1 = experts sliced over the replica's tp GPUs)."""
    expert_imbalance: float = 1.0
    """EP only: tokens the busiest GPU's experts get / the mean (1.0 = uniform routing). Real
    routers are uneven; 1.2-1.5 is common for top-k routing without a balancing loss."""

    @property
    def gpus(self) -> int:
        """GPUs of all replicas (tp resolved)."""
        return (self.tp or 1) * self.dp

    def describe(self) -> str:
        """'tp 2 x dp 1 (2 GPUs)'; with experts parallel: 'tp 2 x dp 1, ep 2 (2 GPUs)'."""
        ep = f", ep {self.ep}" if self.ep > 1 else ""
        imb = f", expert imbalance {self.expert_imbalance:g}" if self.expert_imbalance != 1 \
            else ""
        gpus = "GPU" if self.gpus == 1 else "GPUs"
        return f"tp {self.tp} x dp {self.dp}{ep} ({self.gpus} {gpus}{imb})"


def check_layout(layout: Layout, spec: ModelSpec, profile: HardwareProfile) -> None:
    """Raise a one-line KvplanError naming why ``layout`` cannot run ``spec`` on ``profile``."""
    for name in ("tp", "dp", "ep"):
        value = getattr(layout, name)
        if value is not None and value < 1:
            raise KvplanError(f"--{name} must be >= 1, got {value}")
    check_value("--expert-imbalance", layout.expert_imbalance, IMBALANCE)
    tp, count = layout.tp or 1, profile.gpu.count
    if tp > count:
        raise KvplanError(f"--tp {tp} needs {tp} GPUs in one node; {profile.name} has {count} "
                          f"x {profile.gpu.model}")
    if spec.num_heads % tp:
        raise KvplanError(f"--tp {tp} does not divide the {spec.num_heads} attention heads of "
                          f"{spec.name}")
    if layout.ep > 1:
        _check_ep(layout, spec)


def _check_ep(layout: Layout, spec: ModelSpec) -> None:
    ep, tp = layout.ep, layout.tp or 1
    if not spec.is_moe:
        raise KvplanError(f"--ep {ep}: {spec.name} has no experts (use --ep 1)")
    if ep % tp or (tp * layout.dp) % ep:
        raise KvplanError(f"--ep {ep} must be a multiple of --tp {tp} that divides tp x dp = "
                          f"{tp * layout.dp} (the expert group spans whole replicas)")
    if spec.num_experts % ep:
        raise KvplanError(f"--ep {ep} does not divide the {spec.num_experts} experts of "
                          f"{spec.name}")
