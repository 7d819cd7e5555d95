"""Install order. Input: objects that name what they come after, and each kind's rank. Output:
the same objects in an order that satisfies every dependency; among free choices, by kind rank
(each kind declares it in the registry, engine/migrate/kinds/, which the caller passes in so
this stage never imports a later one) then declaration order, so the result is deterministic.
A cycle is reported as `a --> b --> a`."""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.compiler.objects import ObjectKey, SqlObject
from engine.errors import RenderError


def topological(graph: Mapping[ObjectKey, Sequence[ObjectKey]],
                rank: Mapping[ObjectKey, tuple[Any, ...]]) -> list[ObjectKey]:
    """Keys in an order where each comes after the keys it lists; ties broken by rank."""
    sorter: graphlib.TopologicalSorter[ObjectKey] = graphlib.TopologicalSorter()
    for key, deps in graph.items():
        sorter.add(key, *deps)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise RenderError("dependency cycle: " + " --> ".join(exc.args[1])) from None
    ready: list[tuple[tuple[Any, ...], ObjectKey]] = []
    ordered: list[ObjectKey] = []
    while sorter.is_active():
        for key in sorter.get_ready():
            heapq.heappush(ready, (rank.get(key, ()), key))
        key = heapq.heappop(ready)[1]
        ordered.append(key)
        sorter.done(key)
    return ordered


def install_order(objects: list[SqlObject], kind_rank: Callable[[str], int]) -> list[SqlObject]:
    by_key = {obj.key: obj for obj in objects}
    for obj in objects:
        missing = [dep for dep in obj.dependencies if dep not in by_key]
        if missing:
            raise RenderError(f"{obj.key} comes after {', '.join(missing)}, which nothing renders")
    rank = {obj.key: (kind_rank(obj.kind), index) for index, obj in enumerate(objects)}
    return [by_key[key] for key in topological({obj.key: list(obj.dependencies) for obj in objects}, rank)]
