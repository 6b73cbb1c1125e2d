"""Dask clients for analysis work: a LocalCluster of processes, or an existing cluster.

Pyomo is not thread-safe, so local workers are processes with one thread each. Worker
processes are started with ``spawn``: a script that calls :func:`dask_client` (directly or
via ``sweep``) needs the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def dask_client(
    workers: int | None = None, client: Any = None, scheduler: str | None = None
) -> Iterator[Any]:
    """A ``distributed.Client``, closed on exit only when created here.

    ``client`` is used as given; ``scheduler`` (``"tcp://host:8786"``) connects to a running
    cluster; otherwise a LocalCluster of ``workers`` processes (default: the machine's
    cores) with one thread each and no dashboard is started and shut down afterwards.
    """
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as connected:
            yield connected
        return
    count = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as local,
    ):
        yield local


def worker_count(client: Any) -> int:
    """How many worker threads the client's cluster currently has (at least 1)."""
    return max(1, sum(client.nthreads().values()))
