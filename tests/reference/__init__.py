"""Plain-Python reference implementations the tests compare the compiled product with.

``REFERENCES`` maps every registered eviction policy name to its reference class (a plain
version of the published algorithm with the product's pinned-key rules); a test fails when
a product policy has none (docs/policies.md, "Adding a policy").
"""

from reference import arc, belady, fifo, lfu, lru, s3fifo  # noqa: F401  (registers)
from reference.policy_base import FutureUses, eviction_class, make_eviction

__all__ = ["FutureUses", "eviction_class", "make_eviction"]
