"""Coverage-guided fuzzing of ``decode_alert`` with atheris: the seed corpus and the target.

Shared by the fuzzing test (``tests/consumer/test_decoding_atheris.py``) and the benchmark
(``benchmarks/fuzz_decoder.py``). lenscast is imported inside the functions, not here: the target
must import the decoder under atheris' instrumentation, so nothing may have imported it before.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.paths import SAMPLES, TEST_DATA

#: Largest hostile packet taken as a seed, bytes (libFuzzer's ``-max_len`` of the runs).
MAX_SEED_BYTES = 200_000


def seed_corpus(directory: Path) -> int:
    """Write the starting inputs, one message per file; return how many.

    The committed v1.0 sample packets (each container also split into its messages), the first
    packets of the shipped sample stream, and one packet of each hostile kind
    (:mod:`harness.hostile_packets`): the fuzzer starts inside valid Avro and FITS.
    """
    import numpy as np

    from harness.hostile_packets import KINDS
    from lenscast.consumer.framing import read_alert_file, split_container

    directory.mkdir(parents=True, exist_ok=True)
    seeds: list[bytes] = []
    for path in sorted(TEST_DATA.glob("lenscast-candidate-*")):
        raw = path.read_bytes()
        seeds.append(raw)
        if path.suffix == ".avro":
            seeds += split_container(raw)
    seeds += read_alert_file(SAMPLES / "hsc-sample.avro")[:5]
    for kind in KINDS:
        raw = kind.build(np.random.default_rng(0), "fuzz-seed")
        if len(raw) <= MAX_SEED_BYTES:
            seeds.append(raw)
    for i, seed in enumerate(seeds):
        (directory / f"seed-{i:03d}").write_bytes(seed)
    return len(seeds)


def fuzz_decode_alert(
    argv: list[str], *, include: Sequence[str] | None = None
) -> None:  # pragma: no cover - runs under libFuzzer, which ends the process
    """Run libFuzzer on ``decode_alert`` with libFuzzer's command line ``argv``.

    Anything but an ``AlertRejected`` escaping the decoder, or a ``decode.internal_error``
    rejection (a bug caught by its last-resort handler), is a crash. ``include`` names the
    top-level modules to instrument (all that the decoder imports when None).
    """
    # Third-party code is imported first, uninstrumented: coverage then measures lenscast's
    # own decoder, and start-up does not spend minutes instrumenting astropy and scipy.
    import astropy.io.fits  # noqa: F401
    import astropy.wcs  # noqa: F401
    import atheris
    import fastavro  # noqa: F401
    import numpy  # noqa: F401
    import scipy.ndimage  # noqa: F401

    with atheris.instrument_imports(include=None if include is None else list(include)):
        from lenscast.consumer.alert import AlertRejected
        from lenscast.consumer.decoding import decode_alert

    def one_input(data: bytes) -> None:
        try:
            decode_alert(data)
        except AlertRejected as exc:
            if exc.reason == "decode.internal_error":
                raise RuntimeError(f"decoder bug: {exc.detail}") from exc

    atheris.Setup(argv, one_input)
    atheris.Fuzz()
