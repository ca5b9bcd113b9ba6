"""Which ``LENSCAST_*`` variables the settings module reads (for the compose and table tests)."""

from __future__ import annotations

from typing import Any


class RecordingEnv(dict[str, str]):
    """An environment that records every variable name looked up in it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def variables_the_settings_read() -> set[str]:
    """Every ``LENSCAST_*`` variable :func:`consumer_settings_from_env` looks at."""
    from lenscast.consumer.settings import consumer_settings_from_env

    env = RecordingEnv(
        {"LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "LENSCAST_DB_HOST": "postgres"}
    )
    consumer_settings_from_env(env)
    return {name for name in env.read if name.startswith("LENSCAST_")}
