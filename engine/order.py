"""Install order. Input: objects that name what they come after. Output: the same objects in
an order that satisfies every dependency; among free choices, by kind then declaration order,
so the result is deterministic. A cycle is reported as `a --> b --> a`."""

from __future__ import annotations

import graphlib
import heapq

from .errors import RenderError
from .objects import KIND_RANK, SqlObject


def install_order(objects: list[SqlObject]) -> list[SqlObject]:
    by_key = {obj.key: obj for obj in objects}
    position = {obj.key: index for index, obj in enumerate(objects)}
    sorter = graphlib.TopologicalSorter()
    for obj in objects:
        missing = [dep for dep in obj.depends_on if dep not in by_key]
        if missing:
            raise RenderError(f"{obj.key} comes after {', '.join(missing)}, which nothing renders")
        sorter.add(obj.key, *obj.depends_on)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise RenderError("dependency cycle: " + " --> ".join(exc.args[1])) from None
    rank = {key: (KIND_RANK[obj.kind], position[key], key) for key, obj in by_key.items()}
    ready: list[tuple] = []
    ordered: list[SqlObject] = []
    while sorter.is_active():
        for key in sorter.get_ready():
            heapq.heappush(ready, rank[key])
        key = heapq.heappop(ready)[2]       # always the best-ranked object that is free to go
        ordered.append(by_key[key])
        sorter.done(key)
    return ordered
