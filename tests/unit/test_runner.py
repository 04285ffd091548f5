"""The shared process pool: ordered results, fail-fast errors, initializer and thread caps."""

import multiprocessing
import os
import textwrap
import uuid

import pytest
from pixelflow import runner
from pixelflow.runner import WorkerError, chunk_bounds, default_start_method, parallel_map

from . import workers
from .support import run_python

START_METHODS = multiprocessing.get_all_start_methods()


# chunk_bounds -----------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 7, 64, 100, 1001])
@pytest.mark.parametrize("processes", [1, 2, 3, 8])
@pytest.mark.parametrize("chunk_size", [None, 1, 3, 50, 5000])
def test_chunk_bounds_cover_the_range_exactly_once(count, processes, chunk_size):
    bounds = chunk_bounds(count, processes, chunk_size)
    covered = [index for start, stop in bounds for index in range(start, stop)]
    assert covered == list(range(count))  # contiguous, in order, no overlap, no gap
    assert all(start < stop for start, stop in bounds)  # no empty chunk
    sizes = [stop - start for start, stop in bounds]
    if sizes:
        # Every chunk but the last has the same size; the last is not bigger.
        assert len(set(sizes[:-1])) <= 1
        assert sizes[-1] <= sizes[0]
    if chunk_size is not None and sizes:
        assert sizes[0] == min(chunk_size, count)


@pytest.mark.parametrize("count", [8, 100, 1001])
@pytest.mark.parametrize("processes", [1, 2, 4])
def test_chunk_bounds_default_gives_a_few_chunks_per_process(count, processes):
    bounds = chunk_bounds(count, processes)
    # "about four chunks per process": enough to balance, never one chunk per item for big inputs
    assert processes <= len(bounds) <= 4 * processes
    assert len(bounds) < count or count <= 4 * processes


def test_chunk_bounds_of_nothing_is_empty():
    assert chunk_bounds(0, 2) == []
    assert chunk_bounds(-3, 2) == []


# parallel_map: results --------------------------------------------------------


@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize("chunk_size", [None, 3])
def test_parallel_map_equals_serial_map(start_method, chunk_size):
    items = list(range(37))  # many more items than processes: several chunks each
    results = parallel_map(workers.square_and_pid, items, 2, chunk_size=chunk_size, start_method=start_method)
    assert [value for value, _ in results] == [workers.square(x) for x in items]
    pids = {pid for _, pid in results}
    assert os.getpid() not in pids  # computed in worker processes
    assert len(pids) <= 2


@pytest.mark.parametrize("start_method", START_METHODS)
def test_parallel_map_keeps_order_of_arbitrary_items(start_method):
    items = [f"word-{n}" * (n % 5) for n in range(23)][::-1]
    assert parallel_map(len, items, 2, chunk_size=2, start_method=start_method) == [len(x) for x in items]


def test_one_process_runs_inline():
    results = parallel_map(workers.square_and_pid, range(10), 1)
    assert results == [(x * x, os.getpid()) for x in range(10)]


def test_a_single_item_runs_inline_whatever_the_processes():
    assert parallel_map(workers.square_and_pid, [6], 4) == [(36, os.getpid())]


def test_no_items_gives_no_results():
    assert parallel_map(workers.square, [], 2) == []


# parallel_map: failures -------------------------------------------------------


@pytest.mark.parametrize("start_method", START_METHODS)
def test_worker_exception_names_the_item_and_the_cause(start_method):
    with pytest.raises(WorkerError) as caught:
        parallel_map(workers.fail_at_13, range(40), 2, describe=workers.describe, start_method=start_method)
    message = str(caught.value)
    assert "item #13" in message
    assert "ValueError" in message
    assert "thirteen is unlucky (got 13)" in message


def test_inline_exception_names_the_item_and_the_cause():
    with pytest.raises(WorkerError) as caught:
        parallel_map(workers.fail_at_13, range(20), 1, describe=workers.describe)
    message = str(caught.value)
    assert "item #13" in message
    assert "thirteen is unlucky (got 13)" in message
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_failing_describe_falls_back_to_repr():
    def broken_describe(item):  # runs inline, so need not be importable
        raise KeyError(item)

    with pytest.raises(WorkerError, match="13 failed"):
        parallel_map(workers.fail_at_13, range(20), 1, describe=broken_describe)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_failing_initializer_is_reported(start_method):
    with pytest.raises(WorkerError, match="initializer broke"):
        parallel_map(workers.square, range(10), 2, initializer=workers.failing_initializer, start_method=start_method)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_unsendable_result_names_the_items_and_the_cause(start_method):
    # The cause must reach the error, not only the worker's stderr.
    with pytest.raises(WorkerError) as caught:
        parallel_map(
            workers.unpicklable_result, range(6), 2, chunk_size=3, describe=workers.describe, start_method=start_method
        )
    message = str(caught.value)
    assert "pickle" in message
    assert "item #0" in message or "item #3" in message


KILLED_POOL = textwrap.dedent(
    """
    import importlib, sys
    from pixelflow.runner import WorkerError, parallel_map

    module = importlib.import_module(sys.argv[1])
    try:
        parallel_map(getattr(module, sys.argv[2]), range(30), 2, describe=module.describe, start_method=sys.argv[3])
    except WorkerError as error:
        print(error)
        sys.exit(17)
    print("no error")
    """
)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_sigkilled_worker_fails_fast_naming_signal_and_item(start_method):
    # The pool runs in a subprocess with a timeout: a pool that hangs fails this test (TimeoutExpired).
    result = run_python(KILLED_POOL, workers.__name__, "sigkill_at_7", start_method, timeout=60)
    assert result.returncode == 17, result.stdout + result.stderr
    assert "SIGKILL" in result.stdout
    assert "item #7" in result.stdout


@pytest.mark.parametrize("start_method", START_METHODS)
def test_worker_that_exits_fails_fast_naming_exit_code_and_item(start_method):
    result = run_python(KILLED_POOL, workers.__name__, "exit_at_5", start_method, timeout=60)
    assert result.returncode == 17, result.stdout + result.stderr
    assert "exit code 3" in result.stdout
    assert "item #5" in result.stdout


DYING_AT_START_UP = textwrap.dedent(
    """
    import importlib, sys
    from pixelflow.runner import WorkerError, parallel_map

    module = importlib.import_module(sys.argv[1])
    try:
        parallel_map(module.square, range(8), 2, initializer=module.sigkill_initializer, start_method=sys.argv[2])
    except WorkerError as error:
        print(error)
        sys.exit(17)
    print("no error")
    """
)


@pytest.mark.parametrize("start_method", START_METHODS)
def test_worker_dying_during_start_up_says_so(start_method):
    result = run_python(DYING_AT_START_UP, workers.__name__, start_method, timeout=60)
    assert result.returncode == 17, result.stdout + result.stderr
    assert "SIGKILL" in result.stdout
    assert "start-up" in result.stdout  # not "while processing its next chunk": it never got one


# parallel_map: worker set-up --------------------------------------------------


@pytest.mark.parametrize("start_method", START_METHODS)
def test_initializer_runs_once_in_each_worker_before_its_items(start_method):
    token = uuid.uuid4().hex  # never initialized in this process, so fork cannot inherit it
    items = [(token, x) for x in range(24)]
    records = parallel_map(
        workers.initializer_record,
        items,
        2,
        chunk_size=2,
        initializer=workers.remember_initializer,
        initargs=(token,),
        start_method=start_method,
    )
    assert len(records) == len(items)
    for calls, initializer_pid, worker_pid in records:
        assert calls == 1
        assert initializer_pid == worker_pid != os.getpid()


def test_initializer_runs_inline_too():
    token = uuid.uuid4().hex
    records = parallel_map(
        workers.initializer_record,
        [(token, 0), (token, 1)],
        1,
        initializer=workers.remember_initializer,
        initargs=(token,),
    )
    assert records == [(1, os.getpid(), os.getpid())] * 2


@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize("threads", [1, 2])
def test_native_threads_are_capped_in_workers(start_method, threads):
    caps = parallel_map(workers.native_threads, range(4), 2, threads_per_process=threads, start_method=start_method)
    for cap in caps:
        assert cap["opencv"] == threads
        assert cap["pools"] and set(cap["pools"]) == {threads}
        assert cap["OMP_NUM_THREADS"] == cap["OPENBLAS_NUM_THREADS"] == str(threads)


# parallel_map: progress -------------------------------------------------------


@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize(("processes", "chunk_size"), [(1, None), (2, None), (3, 1), (2, 40)])
def test_progress_counts_add_up_to_the_items(start_method, processes, chunk_size):
    counts = []
    items = list(range(37))
    results = parallel_map(
        workers.square, items, processes, chunk_size=chunk_size, start_method=start_method, progress=counts.append
    )
    assert results == [workers.square(x) for x in items]  # unchanged by the progress callback
    assert sum(counts) == len(items)
    assert all(isinstance(count, int) and count > 0 for count in counts)
    if processes == 1:
        assert counts == [1] * len(items)  # inline: after each item


def test_progress_comes_while_the_workers_run(monkeypatch):
    monkeypatch.setattr(runner, "PROGRESS_POLL", 0.02)
    counts = []
    # Two chunks of 12 items of 0.05 s: counted per chunk, there would be two calls at most.
    parallel_map(workers.nap, range(24), 2, chunk_size=12, progress=counts.append)
    assert sum(counts) == 24
    assert len(counts) > 2


@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize("processes", [1, 2])
def test_progress_of_units_the_function_reports(start_method, processes):
    counts = []
    items = [0, 3, 1, 4, 1, 5, 9, 2, 6]
    results = parallel_map(
        workers.report_units, items, processes, start_method=start_method, progress=counts.append, count_items=False
    )
    assert results == items
    assert sum(counts) == sum(items)
    assert all(count > 0 for count in counts)


def test_reported_units_reach_only_their_own_map():
    counts = []
    parallel_map(workers.report_units, [2, 3], 1, progress=counts.append, count_items=False)
    runner.report_done(5)  # outside a map
    assert parallel_map(workers.report_units, [4], 1) == [4]  # a map without a callback
    assert counts == [2, 3]


# start method -----------------------------------------------------------------


def test_start_method_comes_from_the_environment(monkeypatch):
    for method in START_METHODS:
        monkeypatch.setenv("PIXELFLOW_START_METHOD", method)
        assert default_start_method() == method
    monkeypatch.setenv("PIXELFLOW_START_METHOD", "teleport")
    with pytest.raises(ValueError, match="teleport"):
        default_start_method()
    monkeypatch.delenv("PIXELFLOW_START_METHOD")
    assert default_start_method() in START_METHODS


OPENCV_BEFORE_FORK = """
import sys
import cv2
import numpy as np
from pixelflow.runner import parallel_map

cv2.setNumThreads(2)
big = np.random.default_rng(0).random((2048, 2048)).astype(np.float32)
for _ in range(3):
    cv2.subtract(big, (0.5, 0.0, 0.0, 0.0))  # OpenCV's thread pool now has running threads
print(parallel_map(abs, list(range(-8, 0)), 2, start_method="fork"))
print(cv2.getNumThreads())
"""


def test_workers_forked_after_opencv_used_its_threads_do_not_hang():
    """A forked child inherits no OpenCV worker threads; the runner stops them before forking."""
    result = run_python(OPENCV_BEFORE_FORK, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[8,", "7,", "6,", "5,", "4,", "3,", "2,", "1]", "2"]
