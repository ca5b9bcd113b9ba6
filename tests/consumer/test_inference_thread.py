"""The inference pool: one ordered worker per process, usable again after a fork."""

from __future__ import annotations

import os
import sys
import threading
import time

from lenscast.consumer.inference_thread import GIL_SWITCH_INTERVAL_S, inference_pool


def test_one_worker_keeps_submission_order() -> None:
    pool = inference_pool()
    assert pool is inference_pool()
    order: list[int] = []
    futures = [
        pool.submit(lambda i=i: (time.sleep(0.001 * (5 - i)), order.append(i))) for i in range(5)
    ]
    for future in futures:
        future.result(timeout=10)
    assert order == [0, 1, 2, 3, 4]
    assert (
        pool.submit(threading.current_thread).result(timeout=10) is not threading.current_thread()
    )


def test_the_model_thread_gets_the_gil_back_promptly() -> None:
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # CPython's default
        import lenscast.consumer.inference_thread as module

        module._pool = None  # as in a process that has not made its pool yet
        inference_pool()
        assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_S < 0.005
    finally:
        sys.setswitchinterval(before)


def test_a_forked_child_gets_its_own_working_pool() -> None:
    parent_pool = inference_pool()
    parent_pool.submit(int).result(timeout=10)  # the parent's thread exists before the fork
    pid = os.fork()
    if pid == 0:  # child: the inherited pool has no thread; a fresh one must answer
        code = 1
        try:
            pool = inference_pool()
            if pool is not parent_pool and pool.submit(lambda: 41 + 1).result(timeout=10) == 42:
                code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError("the forked child hung on the inherited inference pool")
