"""The deployment files, validated without a Docker engine.

``docker-compose.yml`` is parsed, interpolated the way compose does it (with the example
environment in ``deploy/lenscast.env.example``) and checked against the Compose Specification's
JSON schema, as vendored by the ``check-jsonschema`` package from PyPI. Then the things a schema
cannot see: every ``lenscast`` command exists and its options parse, health-checked
``depends_on``, required values marked ``${VAR:?}``, configuration names the code really reads,
and no secret in the image or the compose file.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from harness.paths import ROOT
from harness.settings_reads import variables_the_settings_read
from lenscast.cli import SUBCOMMANDS

COMPOSE_PATH = ROOT / "docker-compose.yml"
ENV_EXAMPLE_PATH = ROOT / "deploy" / "lenscast.env.example"
DOCKERFILE_PATH = ROOT / "Dockerfile"
DOCKERIGNORE_PATH = ROOT / ".dockerignore"
LENSCAST_IMAGE = "${LENSCAST_IMAGE:-lenscast:0.1.0}"

#: Values compose refuses to start without; each must be marked `${VAR:?message}`.
REQUIRED_VARIABLES = {
    "LENSCAST_KAFKA_BOOTSTRAP_SERVERS",
    "LENSCAST_KAFKA_TOPIC",
    "LENSCAST_DB_PASSWORD_FILE",
}

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingRequiredVariable(KeyError):
    """A `${VAR:?message}` whose variable is unset or empty."""


def interpolate_string(text: str, env: Mapping[str, str]) -> str:
    """Substitute variables in ``text`` as compose does.

    Supports ``$$`` (a literal ``$``), ``$VAR``, ``${VAR}``, and the ``-``, ``:-``, ``?``, ``:?``,
    ``+`` and ``:+`` forms.
    """

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if (value is None if op == "-" else unset_or_empty) else str(value)
        if op in ("?", ":?"):
            if value is None if op == "?" else unset_or_empty:
                raise MissingRequiredVariable(f"{name}: {arg}")
            return str(value)
        if op in ("+", ":+"):
            return "" if (value is None if op == "+" else unset_or_empty) else arg
        return "" if value is None else str(value)

    return _VARIABLE.sub(substitute, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string (keys stay as written) in a parsed compose document."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return interpolate_string(node, env)
    return node


def uncommented(path: Path) -> str:
    """The text of ``path`` without its ``#`` comment lines."""
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a compose ``.env`` file (``KEY=VALUE`` lines, ``#`` comments)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_PATH.read_text())
    return document


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE_PATH)


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any], example_env: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = interpolate(raw, example_env)
    return document


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def lenscast_services(compose: dict[str, Any], raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: compose["services"][name]
        for name, service in raw["services"].items()
        if service.get("image") == LENSCAST_IMAGE
    }


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate_string("$$SET ${SET} $SET ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d}", env) == (
        "$SET v v d d "
    )
    assert interpolate_string("${SET:+alt}${UNSET:+alt}", env) == "alt"
    with pytest.raises(MissingRequiredVariable, match="needed"):
        interpolate_string("${EMPTY:?needed}", env)


def test_compose_file_matches_the_compose_specification(
    raw: dict[str, Any], compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    validator = jsonschema.Draft202012Validator(compose_schema)
    for document in (raw, compose):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, "\n".join(errors)


def test_the_schema_check_catches_a_wrong_file(
    compose: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    validator = jsonschema.Draft202012Validator(compose_schema)
    assert validator.is_valid(compose)
    for path, key, value in [
        (("consumer", "depends_on", "migrate"), "condition", "service_done"),
        (("consumer", "healthcheck"), "intervall", "5s"),
        (("consumer", "deploy"), "replicas", [2]),
    ]:
        broken = json.loads(json.dumps(compose))
        node = broken["services"]
        for part in path:
            node = node[part]
        node[key] = value
        assert not validator.is_valid(broken), (path, key, value)


def test_services_and_roles(raw: dict[str, Any]) -> None:
    services = raw["services"]
    assert {"kafka", "kafka-init", "postgres", "migrate", "consumer", "replay"} <= set(services)
    assert services["kafka"]["image"].split(":-", 1)[1].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    cluster_id = services["kafka"]["environment"]["CLUSTER_ID"].split(":-", 1)[1].rstrip("}")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16  # a KRaft cluster id is a UUID
    assert services["postgres"]["image"].split(":-", 1)[1].startswith("postgres:")
    assert services["consumer"]["deploy"]["replicas"] == "${LENSCAST_CONSUMER_REPLICAS:-2}"
    assert services["consumer"].get("container_name") is None  # replicas need generated names
    assert not services["consumer"].get("ports")  # published ports would collide between replicas


def test_every_lenscast_command_exists_and_its_options_parse(
    raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    services = lenscast_services(compose, raw)
    assert {"migrate", "consumer", "replay"} <= set(services)
    for name, service in services.items():
        command = service["command"]
        assert isinstance(command, list), f"{name}: use the exec form for the command"
        subcommand, *options = command
        assert subcommand in SUBCOMMANDS, f"{name}: lenscast has no {subcommand!r} command"
        module = importlib.import_module(SUBCOMMANDS[subcommand][0])
        parser = argparse.ArgumentParser(prog=f"lenscast {subcommand}", exit_on_error=False)
        module.configure(parser)
        parser.parse_args(options)


def test_dependencies_wait_for_health_or_completion(
    raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    services = compose["services"]
    for name, service in services.items():
        for target, dependency in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = dependency["condition"]
            waits = ("service_healthy", "service_completed_successfully")
            assert condition in waits, (name, target)
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            else:
                assert services[target]["restart"] == "no", f"{target} is a one-shot job"
            # A dependency that may be disabled by a profile must not block the dependent.
            own = set(raw["services"][name].get("profiles", []))
            theirs = set(raw["services"][target].get("profiles", []))
            if theirs - own:
                assert dependency.get("required") is False, f"{name} -> {target}"
    assert services["consumer"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for infrastructure in ("kafka", "postgres"):
        assert "healthcheck" in services[infrastructure]


def test_required_values_are_marked(raw: dict[str, Any], example_env: dict[str, str]) -> None:
    text = uncommented(COMPOSE_PATH)
    marked = set(re.findall(r"\$\{([A-Z0-9_]+):\?[^}]+\}", text))
    assert marked == REQUIRED_VARIABLES
    for variable in REQUIRED_VARIABLES:
        env = {k: v for k, v in example_env.items() if k != variable}
        with pytest.raises(MissingRequiredVariable, match=variable):
            interpolate(raw, env)


def test_example_env_and_compose_name_the_same_variables(
    raw: dict[str, Any], example_env: dict[str, str]
) -> None:
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", uncommented(COMPOSE_PATH)))
    passed_through = {
        variable
        for service in raw["services"].values()
        for variable, value in (service.get("environment") or {}).items()
        if value is None
    }
    documented = set(
        re.findall(
            r"^(?:#\s*(?:e\.g\.\s+)?)?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE_PATH.read_text(), re.M
        )
    )
    overrides_only = {"LENSCAST_IMAGE", "LENSCAST_KAFKA_IMAGE", "LENSCAST_POSTGRES_IMAGE"}
    overrides_only |= {"LENSCAST_KAFKA_CLUSTER_ID"}
    assert documented - {"COMPOSE_PROFILES"} <= interpolated | passed_through
    assert (interpolated | passed_through) - overrides_only <= documented
    assert set(example_env["COMPOSE_PROFILES"].split(",")) == {"kafka", "postgres", "sample"}


def test_configuration_names_are_the_ones_the_code_reads(
    raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    paths = [path for package in ("consumer", "db") for path in (ROOT / package).rglob("*.py")]
    sources = "\n".join(path.read_text() for path in paths)
    settings_read = variables_the_settings_read()
    for name, service in lenscast_services(compose, raw).items():
        for variable in service["environment"]:
            # Read in full, or as a prefix + "SUFFIX" of two or more words (_FILE: a secret).
            words = variable.removesuffix("_FILE").split("_")
            spellings = {variable} | {"_".join(words[i:]) for i in range(len(words) - 1)}
            found = any(f'"{s}"' in sources for s in spellings) or variable in settings_read
            assert found, f"{name}: nothing reads {variable}"


def test_the_consumer_settings_build_from_the_compose_environment(
    raw: dict[str, Any], example_env: dict[str, str], tmp_path: Path
) -> None:
    from lenscast.consumer.settings import consumer_settings_from_env

    secrets = {"postgres_password": "s3cret-db", "kafka_sasl_password": "s3cret-kafka"}
    secrets["kafka_ssl_key_password"] = "s3cret-key"
    env = dict(example_env, LENSCAST_KAFKA_SASL_PASSWORD_FILE="./kafka_password")
    env["LENSCAST_KAFKA_SSL_KEY_PASSWORD_FILE"] = "./key_password"
    env |= {"LENSCAST_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "LENSCAST_MC_SAMPLES": "50"}
    environment = interpolate(raw, env)["services"]["consumer"]["environment"]
    container_env: dict[str, str] = {}
    for variable, value in environment.items():
        if value is None:  # compose passes these through from its own environment when set
            value = env.get(variable)
        if value is None or value == "":
            continue
        if str(value).startswith("/run/secrets/"):
            secret = tmp_path / Path(value).name
            secret.write_text(secrets[secret.name] + "\n")
            value = str(secret)
        container_env[variable] = str(value)
    settings = consumer_settings_from_env(container_env)
    assert settings.bootstrap_servers == "kafka:9092"
    assert settings.topics == ("lens-candidates",)
    assert settings.metrics_port == 9108
    assert settings.pipeline.n_mc_samples == 50
    assert settings.security.sasl_mechanism == "SCRAM-SHA-512"
    assert settings.security.sasl_password == "s3cret-kafka"
    assert settings.security.ssl_key_password == "s3cret-key"
    assert settings.db_url.password == "s3cret-db"
    assert (settings.db_url.host, settings.db_url.database) == ("postgres", "lenscast")
    assert "s3cret" not in repr(settings.redacted())
    # Without a SASL password file on the host, the containers get no password setting at all.
    plain = interpolate(raw, example_env)["services"]["consumer"]["environment"]
    assert plain["LENSCAST_KAFKA_SASL_PASSWORD_FILE"] == ""
    assert plain["LENSCAST_KAFKA_SSL_KEY_PASSWORD_FILE"] == ""


def test_the_health_check_asks_the_metrics_endpoint(compose: dict[str, Any]) -> None:
    consumer = compose["services"]["consumer"]
    port = str(consumer["environment"]["LENSCAST_METRICS_PORT"])
    assert port in consumer["expose"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(consumer["healthcheck"]["test"])


def test_no_secret_in_the_compose_file_or_the_image(compose: dict[str, Any]) -> None:
    secret_word = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL", re.I)
    for name, service in compose["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if secret_word.search(variable):
                assert variable.endswith("_FILE"), f"{name}: {variable} must be a file"
                assert value in ("", None) or value.startswith("/run/secrets/"), (name, variable)
                if value:
                    assert Path(value).name in service["secrets"], f"{name}: {variable}"
    dockerfile = DOCKERFILE_PATH.read_text()
    for line in dockerfile.splitlines():
        if re.match(r"\s*(ENV|ARG)\b", line):
            assert not secret_word.search(line), line
    ignored = DOCKERIGNORE_PATH.read_text().splitlines()
    assert ignored[[line.startswith("#") for line in ignored].index(False)] == "*"
    assert "**/.env" in ignored
    assert not re.search(r"COPY\s+(\.|deploy)\s", dockerfile)


def test_the_image_installs_the_consumer_runtime_without_torch() -> None:
    dockerfile = uncommented(DOCKERFILE_PATH)
    installs = re.findall(r"pip install ([^\n&]+)", dockerfile)
    assert [i.strip() for i in installs] == ["."], installs  # no extras: no torch, no lenstronomy
    assert "torch" not in dockerfile.replace("pip show torch", "")
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M)
    assert re.search(r'^ENTRYPOINT \["lenscast"\]', dockerfile, re.M)
    copied = set(re.findall(r"^COPY (?!--)(\S+)", dockerfile, re.M))
    for path in copied - {"pyproject.toml", "README.md"}:
        assert (ROOT / path).exists(), f"Dockerfile copies {path}, which is not in the repository"


def test_replay_job_reads_the_shipped_sample(raw: dict[str, Any]) -> None:
    command = raw["services"]["replay"]["command"]
    samples = [c for c in command if c.startswith("/opt/lenscast/samples/")]
    assert samples, command
    for sample in samples:
        assert (ROOT / "consumer" / "samples" / Path(sample).name).is_file()
    assert "COPY consumer/samples /opt/lenscast/samples" in DOCKERFILE_PATH.read_text()


#: Where the apache/kafka image keeps topics and offsets unless told otherwise: its
#: config/server.properties says ``log.dirs=/tmp/kraft-combined-logs``, and configured from
#: ``KAFKA_*`` variables without ``KAFKA_LOG_DIRS`` it falls back to Kafka's ``/tmp/kafka-logs``.
KAFKA_IMAGE_DEFAULT_LOG_DIRS = ("/tmp/kraft-combined-logs", "/tmp/kafka-logs")
#: The apache/kafka image's declared VOLUME, created and owned by its unprivileged user: a named
#: volume mounted there inherits that ownership (one mounted elsewhere is root's, unwritable).
KAFKA_IMAGE_DATA_VOLUME = "/var/lib/kafka/data"
#: LENSCAST_* variables the code reads that compose must not pass: secrets only from files.
NOT_PASSED = {
    "LENSCAST_DB_URL",  # would carry the password
    "LENSCAST_DB_PASSWORD",
    "LENSCAST_KAFKA_SASL_PASSWORD",
    "LENSCAST_KAFKA_SSL_KEY_PASSWORD",
}


def test_kafka_keeps_topics_and_offsets_on_its_volume(raw: dict[str, Any]) -> None:
    kafka = raw["services"]["kafka"]
    mounts = [v.split(":")[1] for v in kafka["volumes"] if v.split(":")[0] in raw["volumes"]]
    log_dirs = kafka["environment"].get("KAFKA_LOG_DIRS")
    assert log_dirs, "without KAFKA_LOG_DIRS the image writes under /tmp, lost on recreation"
    for log_dir in log_dirs.split(","):
        assert any(Path(log_dir).is_relative_to(m) for m in mounts), (log_dir, mounts)
    assert log_dirs == KAFKA_IMAGE_DATA_VOLUME
    for default in KAFKA_IMAGE_DEFAULT_LOG_DIRS:
        assert not any(Path(default).is_relative_to(m) for m in mounts)  # the fix is the variable


def test_every_setting_the_code_reads_reaches_the_containers(raw: dict[str, Any]) -> None:
    read = variables_the_settings_read()
    # The recording sees the optional and the secret-file variables too.
    assert {"LENSCAST_MODEL_PATH", "LENSCAST_HEALTH_FILE", "LENSCAST_DB_PASSWORD_FILE"} <= read
    for name, service in lenscast_services(raw, raw).items():
        missing = read - NOT_PASSED - set(service["environment"])
        assert not missing, f"{name} does not pass {sorted(missing)}"
        assert not NOT_PASSED & set(service["environment"]), name


def test_example_env_shows_the_real_defaults() -> None:
    from lenscast.consumer.decoding import DecodeSettings
    from lenscast.consumer.settings import consumer_settings_from_env

    def settings(env: dict[str, str]) -> Any:
        # No size-limit variable means the decoder's defaults (held as None).
        built = consumer_settings_from_env(env)
        decoding = built.pipeline.decoding or DecodeSettings()
        return replace(built, pipeline=replace(built.pipeline, decoding=decoding))

    base = {"LENSCAST_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "LENSCAST_DB_HOST": "postgres"}
    defaults = settings(base)
    shown = re.findall(r"^#\s*(LENSCAST_[A-Z0-9_]+)=(\S*)$", ENV_EXAMPLE_PATH.read_text(), re.M)
    assert len(shown) >= 20
    read = variables_the_settings_read()
    for variable, value in shown:
        if variable not in read:  # compose-only (replicas, ports of the kafka profile)
            continue
        assert settings({**base, variable: value}) == defaults, (variable, value)


def test_images_are_pinned_to_versions(raw: dict[str, Any]) -> None:
    version = re.compile(r":\d+(\.\d+)+(-[a-z0-9.-]+)?$")
    images = [service["image"] for service in raw["services"].values() if "image" in service]
    images += re.findall(r"^FROM (\S+)", DOCKERFILE_PATH.read_text(), re.M)
    assert len(images) >= 6
    for image in images:
        default = image.split(":-", 1)[1].rstrip("}") if image.startswith("${") else image
        assert version.search(default), f"{image} is not pinned to a version"
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert LENSCAST_IMAGE.endswith(f":{project['version']}}}")


def test_consumer_cpu_limit_matches_its_busy_threads(raw: dict[str, Any]) -> None:
    from lenscast.consumer.settings import PipelineSettings

    # The pipeline's thread, plus the model's when inference overlaps (one intra-op thread).
    threads = 1 + int(PipelineSettings().overlap_inference)
    cpus = raw["services"]["consumer"]["deploy"]["resources"]["limits"]["cpus"]
    assert float(cpus) == threads


def test_compose_recipes_create_the_password_secret() -> None:
    for readme in (ROOT / "README.md", ROOT / "deploy" / "README.md"):
        blocks = re.findall(r"```bash\n(.*?)```", readme.read_text(), re.S)
        recipe = next(b for b in blocks if "docker compose up" in b)
        secret = recipe.find("deploy/secrets/postgres_password")
        assert 0 <= secret < recipe.find("docker compose up"), readme
