"""Circular doubly linked lists of dense ids, stored in the core's int64 state array ``m``.

A *list set* at offset ``ls`` holds ``nodes`` ids (0 .. nodes-1) and some lists; each id is
in at most one list at a time, its *owner* (-1: none). List ``j`` has a sentinel node
``nodes + j``, so an empty list is a sentinel pointing at itself and no operation has an
end-of-list special case. Nodes are stored node-major, three words each::

    node k at ls + 3k:  [prev, next, owner]   (ids)
                        [prev, next, size]    (sentinels)

Worked example: nodes 4, lists 2, list 0 = [2, 0] (oldest first), list 1 empty::

    sentinel 4: prev 0, next 2, size 2     node 2: prev 4, next 0, owner 0
    sentinel 5: prev 5, next 5, size 0     node 0: prev 2, next 4, owner 0

``first(m, ls, 4, 0)`` is 2; ``after(m, ls, 4, 2)`` is 0; ``after(m, ls, 4, 0)`` is -1.

Every function takes ``ls`` and ``nodes`` as arguments (a policy reads them once per batch),
so the compiled loops keep them in registers instead of reloading them from ``m``.
"""

from __future__ import annotations

from kvplan.sim.core.layout import I, M, V, compiled, inline

NONE = -1
"""Owner of an id in no list; what ``first`` / ``after`` return past the end."""
PREV, NEXT, OWNER = 0, 1, 2
"""Words of a node; a sentinel's third word is its list's size."""
SIZE = OWNER
NODE_WORDS = 3


@compiled(I(I, I))
def words(nodes, lists):
    """Words a list set of ``nodes`` ids and ``lists`` lists takes. Example: (4, 2) -> 18."""
    return NODE_WORDS * (nodes + lists)


@compiled(V(M, I, I, I))
def init(m, ls, nodes, lists):
    """Lay out an empty list set at ``ls``."""
    for k in range(nodes):
        m[ls + 3 * k + OWNER] = NONE
    for j in range(lists):
        s = ls + 3 * (nodes + j)
        m[s + PREV] = m[s + NEXT] = nodes + j
        m[s + SIZE] = 0


@inline
def owner(m, ls, k):
    """The list holding ``k`` (-1: none)."""
    return m[ls + 3 * k + OWNER]


@inline
def size(m, ls, nodes, j):
    return m[ls + 3 * (nodes + j) + SIZE]


@inline
def first(m, ls, nodes, j):
    """Oldest id of list ``j`` (-1 when empty)."""
    k = m[ls + 3 * (nodes + j) + NEXT]
    return k if k < nodes else NONE


@inline
def after(m, ls, nodes, k):
    """The id after ``k`` in its list (-1 at the end)."""
    q = m[ls + 3 * k + NEXT]
    return q if q < nodes else NONE


@inline
def _link(m, ls, nodes, j, p, k):
    """Link ``k`` into list ``j`` right after node ``p`` (an id or ``j``'s sentinel)."""
    a, pa = ls + 3 * k, ls + 3 * p
    q = m[pa + NEXT]
    m[pa + NEXT] = k
    m[a + PREV] = p
    m[a + NEXT] = q
    m[ls + 3 * q + PREV] = k
    m[a + OWNER] = j
    m[ls + 3 * (nodes + j) + SIZE] += 1


@inline
def push_back(m, ls, nodes, j, k):
    """Append ``k`` (in no list) as the newest of list ``j``."""
    _link(m, ls, nodes, j, m[ls + 3 * (nodes + j) + PREV], k)


@inline
def push_front(m, ls, nodes, j, k):
    """Insert ``k`` (in no list) as the oldest of list ``j``."""
    _link(m, ls, nodes, j, nodes + j, k)


@inline
def insert_after(m, ls, nodes, p, k):
    """Insert ``k`` (in no list) right after ``p`` (in some list), in ``p``'s list."""
    _link(m, ls, nodes, m[ls + 3 * p + OWNER], p, k)


@inline
def unlink(m, ls, nodes, k):
    """Take ``k`` out of its list (it must be in one)."""
    a = ls + 3 * k
    p, q = m[a + PREV], m[a + NEXT]
    m[ls + 3 * p + NEXT] = q
    m[ls + 3 * q + PREV] = p
    m[ls + 3 * (nodes + m[a + OWNER]) + SIZE] -= 1
    m[a + OWNER] = NONE


@inline
def move_to_back(m, ls, nodes, k):
    """Make ``k`` the newest of its own list."""
    j = m[ls + 3 * k + OWNER]
    unlink(m, ls, nodes, k)
    push_back(m, ls, nodes, j, k)


@inline
def splice_to_back(m, ls, nodes, j, a, b):
    """Move the run ``a`` .. ``b`` (neighbours in list ``j``, ``a`` first) to the recent end,
    in order: the same list as ``move_to_back`` on each of them, first to last, in O(1).

    Example: list [2, 0, 3, 1], run 0 .. 3  ->  [2, 1, 0, 3]"""
    sentinel = nodes + j
    q = m[ls + 3 * b + NEXT]
    if q == sentinel:
        return
    p = m[ls + 3 * a + PREV]
    m[ls + 3 * p + NEXT] = q
    m[ls + 3 * q + PREV] = p
    tail = m[ls + 3 * sentinel + PREV]
    m[ls + 3 * tail + NEXT] = a
    m[ls + 3 * a + PREV] = tail
    m[ls + 3 * b + NEXT] = sentinel
    m[ls + 3 * sentinel + PREV] = b


@inline
def pop_front(m, ls, nodes, j):
    """Remove and return the oldest id of list ``j`` (-1 when empty)."""
    k = first(m, ls, nodes, j)
    if k != NONE:
        unlink(m, ls, nodes, k)
    return k
