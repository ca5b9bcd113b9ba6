"""The background thread the model runs on while the pipeline's own thread works.

onnxruntime releases the GIL for the whole of ``InferenceSession.run``, so a model call on this
thread and the decoding and physics on the caller's thread use two cores at once (the consumer's
model session has one intra-op thread: the model never takes both).

One worker, so model calls keep their submission order. The pool belongs to the process that
made it: after a ``fork`` the child's copy has no thread behind it, so a new one is made there.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_owner_pid: int | None = None


def inference_pool() -> ThreadPoolExecutor:
    """This process's single-worker inference pool (created on first use)."""
    global _pool, _owner_pid
    with _lock:
        if _pool is None or _owner_pid != os.getpid():
            # A pool inherited through fork is not shut down: its thread only existed in the
            # parent, and joining it here would wait forever.
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenscast-onnx")
            _owner_pid = os.getpid()
        return _pool
