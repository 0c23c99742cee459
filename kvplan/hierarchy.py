"""The KV storage hierarchy's names and order, defined once: three tiers and four links.

Tiers are numbered fastest first; a link moves blocks between two neighbouring tiers::

    SSD --ssd_read--> DRAM --h2d--> HBM
    SSD <-ssd_write-- DRAM <-d2h--- HBM

Every array indexed by tier or link (hits per tier, bytes per link, profile link sections,
output columns) uses these enums' order; ``label`` is the name in files, flags and columns.
"""

from __future__ import annotations

from enum import IntEnum


class Tier(IntEnum):
    """A storage level, fastest first (a lower value is closer to the GPU)."""

    HBM = 0
    DRAM = 1
    SSD = 2

    @property
    def label(self) -> str:
        """Name in columns and flags: ``hbm``, ``dram``, ``ssd``."""
        return self.name.lower()


class Link(IntEnum):
    """A data path between neighbouring tiers (hardware profile section names)."""

    H2D = 0
    """DRAM -> HBM (host to device)."""
    D2H = 1
    """HBM -> DRAM."""
    SSD_READ = 2
    """SSD -> DRAM."""
    SSD_WRITE = 3
    """DRAM -> SSD."""

    @property
    def label(self) -> str:
        """Name in profiles and columns: ``h2d``, ``d2h``, ``ssd_read``, ``ssd_write``."""
        return self.name.lower()


TIER_LABELS = tuple(t.label for t in Tier)
"""("hbm", "dram", "ssd")."""
LINK_LABELS = tuple(link.label for link in Link)
"""("h2d", "d2h", "ssd_read", "ssd_write")."""


def hop_link(src: int, dst: int) -> Link:
    """The link a block crosses between neighbouring tiers ``src`` and ``dst``.

    Example: hop_link(Tier.DRAM, Tier.HBM) -> Link.H2D; hop_link(Tier.HBM, Tier.DRAM) -> D2H.
    """
    if abs(src - dst) != 1:
        raise ValueError(f"tiers {src} and {dst} are not neighbours")
    if dst < src:
        return Link.H2D if dst == Tier.HBM else Link.SSD_READ
    return Link.D2H if src == Tier.HBM else Link.SSD_WRITE
