"""Pure DAG algorithms over header lookups: linearization and enable/disable masking.

Implemented exactly as engine spec §5.2–§5.3:

* ``lin(c) = lin(parent) + [c]`` for Mutations/Enable/Disable; for a Merge
  ``P + [x in lin(target) if x not in P] + [m]`` with ``P = lin(parent)``.
* Masking scans the sequence backwards, first decision wins; a masked merge masks what it
  introduced into *this* sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from commitdb.commits import CommitKind
from commitdb.ids import CommitId

__all__ = ("CommitLinks", "Linearization", "linearize", "mask")


class CommitLinks(Protocol):
    """What the algorithms read of a commit: a CommitHeader, or the engine's record."""

    @property
    def kind(self) -> CommitKind:
        """The commit's kind."""

    @property
    def parent_commit_id(self) -> CommitId:
        """Its parent (INVALID for a root)."""

    @property
    def target_commit_id(self) -> CommitId:
        """The merged, disabled or enabled commit (INVALID for Mutations)."""


HeaderLookup = Callable[[CommitId], CommitLinks]

_MERGE = CommitKind.MERGE
_DISABLE = CommitKind.DISABLE
_ENABLE = CommitKind.ENABLE
_INVALID = CommitId.INVALID


@dataclass
class Linearization:
    """A commit's linearized history with the merges' introductions and positions."""

    order: list[CommitId]
    introduced: dict[CommitId, list[CommitId]] = field(default_factory=dict)
    _positions: dict[CommitId, int] | None = None

    @property
    def positions(self) -> dict[CommitId, int]:
        """Index of each commit in the order."""
        if self._positions is None:
            self._positions = {c: i for i, c in enumerate(self.order)}
        return self._positions

    def __contains__(self, commit_id: object) -> bool:
        return commit_id in self.positions

    def __len__(self) -> int:
        return len(self.order)


def linearize(
    commit_id: CommitId,
    header: HeaderLookup,
    cache: dict[CommitId, Linearization] | None = None,
) -> Linearization:
    """The linearization of a commit.

    `cache` memoizes results; only merges and requested commits are stored in it (not every
    commit of a chain, which would cost quadratic memory on long histories). Iterative, so
    deep histories never hit the recursion limit.
    """
    memo = cache if cache is not None else {}
    if not commit_id.is_valid:
        return Linearization([])
    stack = [commit_id]
    while stack:
        x = stack[-1]
        if x in memo:
            stack.pop()
            continue
        h = header(x)
        if h.kind == _MERGE:
            need = [
                d for d in (h.parent_commit_id, h.target_commit_id) if d.is_valid and d not in memo
            ]
            if need:
                stack.extend(need)
                continue
            memo[x] = _merge(x, h, memo)
            stack.pop()
            continue
        run: list[CommitId] = []
        y = x
        # the hot loop of long chains: a comparison with INVALID is cheaper than is_valid
        while y != _INVALID and y not in memo:
            hy = header(y)
            if hy.kind == _MERGE:
                break
            run.append(y)
            y = hy.parent_commit_id
        if y != _INVALID and y not in memo:
            stack.append(y)  # a merge to resolve first
            continue
        base = memo[y] if y != _INVALID else Linearization([])
        run.reverse()
        memo[x] = Linearization([*base.order, *run], base.introduced)
        stack.pop()
    return memo[commit_id]


def _merge(c: CommitId, h: CommitLinks, memo: dict[CommitId, Linearization]) -> Linearization:
    parent = memo[h.parent_commit_id] if h.parent_commit_id.is_valid else Linearization([])
    target = memo[h.target_commit_id] if h.target_commit_id.is_valid else Linearization([])
    seen = parent.positions
    brought = [x for x in target.order if x not in seen]
    introduced = dict(parent.introduced)
    # Merges of the target side keep what they introduced, restricted to what reaches us now.
    brought_set = set(brought)
    for m, xs in target.introduced.items():
        if m in brought_set:
            introduced[m] = [x for x in xs if x in brought_set]
    introduced[c] = brought
    return Linearization([*parent.order, *brought, c], introduced)


def mask(
    lin: Linearization, header: HeaderLookup, extra: Sequence[CommitId] = ()
) -> dict[CommitId, bool]:
    """Enabled flag of every commit of the sequence (commits absent from it are enabled)."""
    decided: dict[CommitId, bool] = {}
    for c in reversed(lin.order):
        h = header(c)
        if decided.get(c) is False:
            if h.kind == _MERGE:
                for x in lin.introduced.get(c, ()):
                    decided.setdefault(x, False)
            continue
        decided.setdefault(c, True)
        kind = h.kind
        if kind == _DISABLE:
            decided.setdefault(h.target_commit_id, False)
        elif kind == _ENABLE:
            decided.setdefault(h.target_commit_id, True)
    return decided
