"""The background thread the model runs on while the pipeline's own thread works.

onnxruntime releases the GIL for the whole of ``InferenceSession.run``, so a model call on this
thread and the decoding and physics on the caller's thread use two cores at once (the consumer's
model session has one intra-op thread: the model never takes both).

One worker, so model calls keep their submission order. The pool belongs to the process that
made it: after a ``fork`` the child's copy has no thread behind it, so a new one is made there.

Making the pool also shortens the interpreter's GIL switch interval (5 ms by default) to
:data:`GIL_SWITCH_INTERVAL_S`: when a model call returns, this thread needs the GIL back (to
hand over the result and take the next chunk) while the pipeline's thread runs Python, and it
otherwise waits up to the whole interval for it, more than once per call of ~35 ms, with the
model idle meanwhile. ``python -m benchmarks.gil_switch_interval --model
model/weights/lenscast-hsc-fast.onnx --rounds 9 --intervals 0.005 0.0005 0.0001`` (the pipeline
alone, 2 cores, 2026-11-29): median 805 alerts/s at 5 ms, 830 at 0.5 ms and at 0.1 ms (+3 %).
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_owner_pid: int | None = None

#: Seconds a thread may hold the GIL while another waits for it, once the model thread exists.
GIL_SWITCH_INTERVAL_S = 0.0005


def inference_pool() -> ThreadPoolExecutor:
    """This process's single-worker inference pool (created on first use)."""
    global _pool, _owner_pid
    with _lock:
        if _pool is None or _owner_pid != os.getpid():
            # A pool inherited through fork is not shut down: its thread only existed in the
            # parent, and joining it here would wait forever.
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenscast-onnx")
            sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
            _owner_pid = os.getpid()
        return _pool
