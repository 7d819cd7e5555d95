"""Install order. Input: objects that name what they come after. Output: the same objects in
an order that satisfies every dependency; among free choices, by kind then declaration order,
so the result is deterministic. A cycle is reported as `a --> b --> a`."""

from __future__ import annotations

import graphlib
import heapq

from engine.compiler.objects import KIND_RANK, SqlObject
from engine.errors import RenderError


def topological(graph: dict[str, list[str]], rank: dict[str, tuple]) -> list[str]:
    """Keys in an order where each comes after the keys it lists; ties broken by rank."""
    sorter = graphlib.TopologicalSorter()
    for key, deps in graph.items():
        sorter.add(key, *deps)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise RenderError("dependency cycle: " + " --> ".join(exc.args[1])) from None
    ready: list[tuple] = []
    ordered: list[str] = []
    while sorter.is_active():
        for key in sorter.get_ready():
            heapq.heappush(ready, (rank.get(key, ()), key))
        key = heapq.heappop(ready)[1]
        ordered.append(key)
        sorter.done(key)
    return ordered


def install_order(objects: list[SqlObject]) -> list[SqlObject]:
    by_key = {obj.key: obj for obj in objects}
    for obj in objects:
        missing = [dep for dep in obj.depends_on if dep not in by_key]
        if missing:
            raise RenderError(f"{obj.key} comes after {', '.join(missing)}, which nothing renders")
    rank = {obj.key: (KIND_RANK[obj.kind], index) for index, obj in enumerate(objects)}
    return [by_key[key] for key in topological({obj.key: list(obj.depends_on) for obj in objects}, rank)]
