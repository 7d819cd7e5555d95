"""A throwaway PostgreSQL cluster for the one-off benchmarks (status_bench, staff_import_bench):
started in a fresh temp directory, removed afterwards unless kept."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.database.local import LocalCluster


@contextmanager
def throwaway_cluster(prefix: str, keep: bool = False) -> Iterator[tuple[str, Path, LocalCluster]]:
    """(URL of its application database, a scratch directory beside it, the cluster)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)                     # the server's OS user must reach it
    cluster = LocalCluster(base / "cluster")
    scratch = base / "files"
    scratch.mkdir()
    url = cluster.start()
    try:
        yield url, scratch, cluster
    finally:
        if keep:
            print(f"cluster kept: {url} (data in {base})")
        else:
            cluster.destroy()
            shutil.rmtree(base, ignore_errors=True)
