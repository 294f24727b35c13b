"""Shared steps of the VeloStream DAGs (no DAG is defined here).

Every step runs the ``velostream`` CLI as a subprocess. Settings come from
Airflow connections and variables:

* connection ``velostream_kafka``: ``host``/``port`` (or extra ``brokers``,
  comma separated), ``login``/``password`` = SASL username/password, extras
  ``security_protocol``, ``sasl_mechanism``, ``ssl_ca_location``,
  ``ssl_certificate_location``, ``ssl_key_location``, ``ssl_key_password``,
  ``options`` (list of librdkafka ``key=value``);
* connection ``velostream_clickhouse``: ``host``/``port``, extra ``protocol``
  (``http`` or ``https``), ``login``/``password``, extra ``ca_cert``;
* variables ``velostream_*`` (see ``setting`` below and the DAG files).

Secrets (passwords) reach the CLI only through its environment
(``VELOSTREAM_KAFKA_SASL_PASSWORD``, ``VELOSTREAM_KAFKA_SSL_KEY_PASSWORD``,
``VELOSTREAM_CLICKHOUSE_PASSWORD``): never on a command line, never in a
log line; the CLI itself never prints them.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KAFKA_CONN = "velostream_kafka"
CLICKHOUSE_CONN = "velostream_clickhouse"

# Variable name -> default (None: required).
DEFAULTS = {
    "velostream_bin": "velostream",
    "velostream_topic": None,
    "velostream_group": "velostream",
    "velostream_table": None,
    "velostream_partitions": "4",
    "velostream_transform": "",
    "velostream_exactly_once": "false",
    "velostream_drain_timeout": "30m",
    "velostream_stop_timeout": "120",
    "velostream_work_dir": os.path.join(tempfile.gettempdir(), "velostream-airflow"),
    "velostream_consume_options": "[]",
    "velostream_produce_options": "[]",
}


def setting(name: str) -> str:
    """An Airflow variable, its default, or an error naming it."""
    from airflow.sdk import Variable

    default = DEFAULTS.get(name)
    value = Variable.get(name, default=default)
    if value is None or str(value).strip() == "":
        if default is None:
            raise ValueError(f"Airflow variable {name} is not set")
        return default
    return str(value).strip()


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _json_list(name: str) -> list[str]:
    value = json.loads(setting(name))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"Airflow variable {name} must be a JSON list of strings")
    return value


def _connection(conn_id: str):
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def kafka_settings() -> tuple[list[str], dict[str, str]]:
    """Kafka flags and secret environment from the ``velostream_kafka`` connection."""
    c = _connection(KAFKA_CONN)
    extra = c.extra_dejson or {}
    brokers = extra.get("brokers") or (f"{c.host}:{c.port}" if c.port else c.host)
    if not brokers:
        raise ValueError(f"connection {KAFKA_CONN} has neither host nor extra 'brokers'")
    args = ["--brokers", brokers]
    for key in ("security_protocol", "sasl_mechanism", "ssl_ca_location",
                "ssl_certificate_location", "ssl_key_location"):
        if extra.get(key):
            args += ["--" + key.replace("_", "-"), str(extra[key])]
    if c.login:
        args += ["--sasl-username", c.login]
    for option in extra.get("options") or []:
        args += ["-X", str(option)]
    env = {}
    if c.password:
        env["VELOSTREAM_KAFKA_SASL_PASSWORD"] = c.password
    if extra.get("ssl_key_password"):
        env["VELOSTREAM_KAFKA_SSL_KEY_PASSWORD"] = str(extra["ssl_key_password"])
    return args, env


def clickhouse_settings() -> tuple[list[str], dict[str, str]]:
    """ClickHouse flags and secret environment from the ``velostream_clickhouse`` connection."""
    c = _connection(CLICKHOUSE_CONN)
    extra = c.extra_dejson or {}
    protocol = extra.get("protocol", "http")
    if protocol not in ("http", "https"):
        raise ValueError(f"connection {CLICKHOUSE_CONN}: extra 'protocol' must be http or https")
    if not c.host:
        raise ValueError(f"connection {CLICKHOUSE_CONN} has no host")
    port = c.port or (8443 if protocol == "https" else 8123)
    args = ["--clickhouse-url", f"{protocol}://{c.host}:{port}"]
    if c.login:
        args += ["--clickhouse-user", c.login]
    if extra.get("ca_cert"):
        args += ["--clickhouse-ca-cert", str(extra["ca_cert"])]
    env = {"VELOSTREAM_CLICKHOUSE_PASSWORD": c.password} if c.password else {}
    return args, env


def _environment(secrets: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VELOSTREAM_")}
    env.update(secrets)
    return env


def _log_command(argv: list[str]) -> None:
    # argv never holds a secret (they travel in the environment).
    print("running: " + shlex.join(argv), flush=True)


def run_cli(subcommand: list[str], kafka: bool = True, clickhouse: bool = True) -> None:
    """Runs ``velostream SUBCOMMAND`` with the connection settings; its
    output goes to the task log; a non-zero exit fails the task."""
    argv = [setting("velostream_bin"), *subcommand]
    secrets: dict[str, str] = {}
    if kafka:
        args, env = kafka_settings()
        argv += args
        secrets.update(env)
    if clickhouse:
        args, env = clickhouse_settings()
        argv += args
        secrets.update(env)
    _log_command(argv)
    rc = subprocess.run(argv, env=_environment(secrets), stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        raise RuntimeError(f"velostream {subcommand[0]} exited with status {rc}")


def transform_args() -> list[str]:
    t = setting("velostream_transform")
    return ["--transform", t] if t else []


def exactly_once() -> bool:
    return _flag(setting("velostream_exactly_once"))


def schema_file(paths: list[str]) -> str:
    """The first Parquet file of ``paths`` (files, directories or globs)."""
    import glob

    for p in paths:
        matches = sorted(glob.glob(p, recursive=True)) if any(c in p for c in "*?[") else [p]
        for m in matches:
            if os.path.isfile(m):
                return m
            for root, dirs, files in os.walk(m):
                dirs.sort()
                for f in sorted(files):
                    if f.endswith(".parquet"):
                        return os.path.join(root, f)
    raise ValueError(f"no Parquet file in {paths}")


# ------------------------------------------------------------ the steps


def provision(schema_from: str) -> None:
    """Creates the topic and the table (idempotent)."""
    args = ["provision", "--topic", setting("velostream_topic"),
            "--partitions", setting("velostream_partitions"),
            "--table", setting("velostream_table"), "--schema-from", schema_from,
            *transform_args()]
    if exactly_once():
        args.append("--exactly-once")
    run_cli(args)


def produce(paths: list[str]) -> None:
    """Sends Parquet files (paths, directories or globs) to the topic."""
    if not paths:
        raise ValueError("nothing to produce: no path given")
    run_cli(["produce", "--topic", setting("velostream_topic"),
             "--partitions", setting("velostream_partitions"),
             *_json_list("velostream_produce_options"), *paths], clickhouse=False)


def wait_drained() -> None:
    """Blocks until the group has consumed everything (and, for exactly-once
    tables, ClickHouse holds every committed offset); fails at the timeout."""
    run_cli(["status", "--topic", setting("velostream_topic"),
             "--group", setting("velostream_group"), "--table", setting("velostream_table"),
             "--wait-drained", "--timeout", setting("velostream_drain_timeout")])


def verify(paths: list[str]) -> None:
    """Checks that the table holds exactly the rows of the files."""
    run_cli(["verify", "--table", setting("velostream_table"), *transform_args(), *paths],
            kafka=False)


def _run_dir(run_id: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
    d = Path(setting("velostream_work_dir")) / safe
    d.mkdir(parents=True, exist_ok=True)
    return d


def start_consumer(run_id: str, startup_check_s: float = 3.0) -> int:
    """Starts ``velostream consume`` as a managed background process
    (detached from the task, under a small supervisor that records its exit
    status) and returns the supervisor's pid. Fails when the consumer exits
    during the start-up check (bad settings, unreachable services)."""
    d = _run_dir(run_id)
    for name in ("consumer.exit", "consumer.log"):
        (d / name).unlink(missing_ok=True)
    argv = [setting("velostream_bin"), "consume", "--topic", setting("velostream_topic"),
            "--group", setting("velostream_group"), "--table", setting("velostream_table"),
            "--create-table", *transform_args(), *_json_list("velostream_consume_options")]
    if exactly_once():
        argv.append("--exactly-once")
    secrets: dict[str, str] = {}
    for args, env in (kafka_settings(), clickhouse_settings()):
        argv += args
        secrets.update(env)
    _log_command(argv)
    log = open(d / "consumer.log", "ab")
    sup = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "supervise", str(d / "consumer.exit"), "--", *argv],
        env=_environment(secrets), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    (d / "consumer.pid").write_text(str(sup.pid))
    deadline = time.monotonic() + startup_check_s
    while time.monotonic() < deadline:
        if (d / "consumer.exit").exists() or sup.poll() is not None:
            raise RuntimeError("the consumer exited at start-up:\n" + _tail(d / "consumer.log"))
        time.sleep(0.2)
    print(f"consumer running (supervisor pid {sup.pid}, log {d / 'consumer.log'})", flush=True)
    return sup.pid


def stop_consumer(run_id: str) -> None:
    """Sends SIGTERM to the managed consumer and waits for its clean exit
    (it inserts and commits what it holds, then leaves the group)."""
    d = _run_dir(run_id)
    if not (d / "consumer.pid").exists():
        print("no consumer was started in this run; nothing to stop", flush=True)
        return
    pid = int((d / "consumer.pid").read_text())
    exit_file = d / "consumer.exit"
    if not exit_file.exists():
        try:
            os.kill(pid, signal.SIGTERM)
            print(f"sent SIGTERM to the consumer (supervisor pid {pid})", flush=True)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + float(setting("velostream_stop_timeout"))
    while not exit_file.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the consumer did not exit within {setting('velostream_stop_timeout')} s")
        time.sleep(0.2)
    status = int(exit_file.read_text().strip() or "-1")
    print("consumer log (tail):\n" + _tail(d / "consumer.log"), flush=True)
    if status != 0:
        raise RuntimeError(f"the consumer exited with status {status}")
    print("consumer stopped cleanly (exit status 0)", flush=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"({path}: {e})"


def _supervise(exit_file: str, argv: list[str]) -> int:
    """Runs argv, forwards SIGTERM/SIGINT to it, writes its exit status."""
    child = subprocess.Popen(argv)

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = child.wait()
    tmp = exit_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(rc))
    os.replace(tmp, exit_file)
    return rc


if __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[1] == "supervise" and sys.argv[3] == "--":
    sys.exit(_supervise(sys.argv[2], sys.argv[4:]))
