"""run_tasks: serial, process pool and local dask cluster agree; errors reach the caller."""

from __future__ import annotations

import importlib.util
import os
import time

import numpy as np
import pytest

from cabench.benchmark.executors import run_tasks
from cabench.errors import CabenchError

# exact agreement needs threadpoolctl: it limits the BLAS already loaded in this process
needs_threadpoolctl = pytest.mark.skipif(importlib.util.find_spec("threadpoolctl") is None,
                                         reason="threadpoolctl is not installed")

# a seeded numpy computation with array arguments, as the suite's cases have; dot products
# this long are split between OpenBLAS threads, which changes their last bits
TASKS = [(np.linspace(-1.0, 1.0, 30_000) * (k + 1), k) for k in range(6)]


def summarise(x: np.ndarray, seed: int) -> tuple[float, float]:
    y = np.random.default_rng(seed).standard_normal(x.size)
    return float(x @ y), float(np.sort(y * x)[seed])


def fail_on_two(k: int) -> int:
    if k == 2:
        raise ArithmeticError(f"task {k} failed")
    return k


def most_threads() -> int:
    """The most threads numba or a loaded BLAS/OpenMP library would use here."""
    import numba
    from threadpoolctl import threadpool_info

    return max([numba.get_num_threads()] + [lib["num_threads"] for lib in threadpool_info()])


def _expected() -> dict[int, tuple[float, float]]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return {i: summarise(*args) for i, args in enumerate(TASKS)}


def _collect(it) -> dict[int, tuple[float, float]]:
    got = list(it)
    indices = [i for i, _ in got]
    assert sorted(indices) == list(range(len(TASKS)))  # each task exactly once
    return dict(got)


@needs_threadpoolctl
def test_serial_in_order():
    before = most_threads()
    got = list(run_tasks(summarise, TASKS))
    assert got == list(_expected().items())
    assert list(run_tasks(most_threads, [()])) == [(0, 1)]
    assert most_threads() == before  # restored
    assert list(run_tasks(summarise, TASKS[:1], jobs=4)) == [(0, _expected()[0])]  # no pool
    assert list(run_tasks(summarise, [], jobs=2)) == []


@needs_threadpoolctl
def test_process_pool_same_results():
    assert _collect(run_tasks(summarise, TASKS, jobs=2)) == _expected()


@needs_threadpoolctl
def test_process_pool_workers_use_one_thread():
    assert dict(run_tasks(most_threads, [()] * 2, jobs=2)) == {0: 1, 1: 1}
    assert dict(run_tasks(os.getenv, [("OPENBLAS_NUM_THREADS",)] * 2, jobs=2)) == {0: "1", 1: "1"}


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


@needs_threadpoolctl
def test_dask_cluster_same_results(cluster):
    assert _collect(run_tasks(summarise, TASKS, jobs=7, scheduler=cluster)) == _expected()
    assert dict(run_tasks(most_threads, [()] * 2, scheduler=cluster)) == {0: 1, 1: 1}


@needs_threadpoolctl
def test_dask_address_and_client(cluster):
    import distributed

    got = _collect(run_tasks(summarise, TASKS, scheduler=cluster.scheduler_address))
    assert got == _expected()
    with distributed.Client(cluster) as client:
        assert _collect(run_tasks(summarise, TASKS, scheduler=client)) == _expected()
        assert client.status == "running"  # a client we were given is left open


def test_unreachable_scheduler_fails_fast():
    pytest.importorskip("distributed")
    t0 = time.perf_counter()
    with pytest.raises(CabenchError, match=r"tcp://127\.0\.0\.1:1\b.*1\.5 s"):
        list(run_tasks(summarise, TASKS, scheduler="tcp://127.0.0.1:1", timeout=1.5))
    assert time.perf_counter() - t0 < 5


def test_missing_distributed(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(CabenchError, match=r"pip install 'cabench\[dask\]'"):
        list(run_tasks(summarise, TASKS, scheduler="tcp://127.0.0.1:8786"))


@pytest.mark.parametrize("mode", ["serial", "pool", "dask"])
def test_exceptions_propagate(mode, request):
    kw = dict(serial={}, pool={"jobs": 2}, dask={})[mode]
    if mode == "dask":
        kw["scheduler"] = request.getfixturevalue("cluster")
    with pytest.raises(ArithmeticError, match="task 2 failed"):
        list(run_tasks(fail_on_two, [(k,) for k in range(4)], **kw))
