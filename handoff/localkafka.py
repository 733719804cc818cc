"""Run a real single-node Apache Kafka 4.x (KRaft broker+controller) from Maven Central jars.

The jars come from ``deploy/kafka/pom.xml`` via ``mvn dependency:copy-dependencies``
and are cached per pom hash, so only the first start ever talks to Maven.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from ssl import CERT_NONE, PROTOCOL_TLS_CLIENT, SSLContext
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import KafkaError as AIOKafkaError  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "DEFAULT_PARTITIONS",
    "POM_PATH",
    "KafkaError",
    "SslKeystore",
    "cache_root",
    "ensure_jars",
    "kafka_version",
    "lib_dir",
    "start",
    "state_dir",
    "status",
    "stop",
]

POM_PATH = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "pom.xml"

HOST = "127.0.0.1"
# The SSL listener is advertised under this name, the one its certificate must carry.
SSL_HOST = "localhost"
# HANDOFF_PARTITIONS' default (handoff/config.py): auto-created topics then fit the worker.
DEFAULT_PARTITIONS = 4
READY_TIMEOUT_S = 60.0
REUSE_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 20.0
# 2-core machines also run the Python workers under test, so keep the broker small.
JVM_HEAP = ("-Xmx512m", "-Xms256m")
# The usual kafka-run-class.sh flags, minus GC logging (nobody reads it in tests).
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

_MARKER = ".complete"
_PID_FILE = "kafka.pid"
_ADDR_FILE = "bootstrap"
_LOG_FILE = "kafka.log"
_PROPS_FILE = "server.properties"
_LOG4J_FILE = "log4j2.properties"
_DATA_DIR = "kraft-logs"
_SASL_FILE = "sasl-broker.json"  # the broker's own SASL login, for the readiness probe (0600)
# What the JAAS file and `StorageTool --add-scram` can carry without quoting.
_SASL_SAFE = re.compile(r"^[A-Za-z0-9._@+-]+$")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# Popen handles of brokers started by this process: poll() reaps them, otherwise a
# dead child stays a zombie that os.kill(pid, 0) still reports as alive.
_children: dict[int, subprocess.Popen[bytes]] = {}

# Console only: stdout is redirected to <state>/kafka.log; the request/state-change
# loggers are noisy at INFO and never needed for a test broker.
_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = info
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.clients.name = org.apache.kafka.clients
logger.clients.level = warn
"""


class KafkaError(RuntimeError):
    """Raised when the local broker cannot be provisioned, started or reached."""


@dataclass(frozen=True)
class SslKeystore:
    """The broker's TLS identity: a keystore (PKCS12 or JKS) holding its key and certificate."""

    path: Path
    password: str
    type: str = "PKCS12"


# --------------------------------------------------------------------------- paths


def cache_root(cache_dir: Path | None = None) -> Path:
    """Jar cache root: argument, ``$HANDOFF_KAFKA_CACHE_DIR`` or ``~/.cache/handoff/kafka``."""
    if cache_dir is not None:
        return cache_dir
    env = os.environ.get("HANDOFF_KAFKA_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "handoff" / "kafka"


def state_dir(data_dir: Path | None = None) -> Path:
    """Runtime state dir (pid, address, config, log, KRaft data): argument, env or default."""
    if data_dir is not None:
        return data_dir
    env = os.environ.get("HANDOFF_KAFKA_STATE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "handoff" / "kafka" / "run"


def kafka_version(pom: Path = POM_PATH) -> str:
    """The ``kafka.version`` property pinned in the pom."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaError(f"{pom} has no <kafka.version> property")
    return (node.text or "").strip()


def lib_dir(cache_dir: Path | None = None, pom: Path = POM_PATH) -> Path:
    """Jar dir for this exact pom: ``<cache root>/<kafka version>-<pom sha256[:12]>/lib``."""
    # Keyed on the whole pom, not just the version, so editing any pin re-resolves.
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return cache_root(cache_dir) / f"{kafka_version(pom)}-{digest}" / "lib"


# ---------------------------------------------------------------------------- jars


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise KafkaError(
            f"`{tool}` not found on PATH; the local Kafka broker needs a JDK 17+ (java) "
            "and Apache Maven (mvn), e.g. `apt-get install openjdk-17-jre-headless maven`"
        )
    return path


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    # Serialises concurrent start/stop/ensure_jars calls (parallel test workers, two shells).
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _jars_complete(lib: Path) -> bool:
    marker = lib / _MARKER
    if not marker.is_file():
        return False
    names = marker.read_text().split()
    return bool(names) and all((lib / name).is_file() for name in names)


def _run_maven(pom: Path, out_dir: Path) -> None:
    """Copy the pom's runtime dependency jars into ``out_dir`` (the only network step)."""
    mvn = _require("mvn")
    cmd = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
        "dependency:copy-dependencies", f"-DoutputDirectory={out_dir}",
        "-DincludeScope=runtime",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()[-4000:]
        raise KafkaError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{output}")


def ensure_jars(cache_dir: Path | None = None, pom: Path = POM_PATH) -> bool:
    """Make the broker jars available in :func:`lib_dir`; return True if Maven had to run."""
    lib = lib_dir(cache_dir, pom)
    if _jars_complete(lib):
        return False
    with _locked(lib.parent / ".lock"):
        if _jars_complete(lib):  # another process finished while we waited
            return False
        # Download into a scratch dir and rename: a killed copy never looks complete.
        tmp = lib.parent / f"lib.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _run_maven(pom, tmp)
            jars = sorted(p.name for p in tmp.glob("*.jar"))
            if not any(name.startswith("kafka_2.13-") for name in jars):
                raise KafkaError(f"Maven copied no kafka_2.13 jar into {tmp}")
            (tmp / _MARKER).write_text("\n".join(jars) + "\n")
            shutil.rmtree(lib, ignore_errors=True)
            tmp.rename(lib)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return True


# ------------------------------------------------------------------------- process


def _read_pid(state: Path) -> int | None:
    try:
        return int((state / _PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _read_address(state: Path) -> str | None:
    try:
        return (state / _ADDR_FILE).read_text().strip() or None
    except OSError:
        return None


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) still accepts signal 0.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_broker(pid: int, state: Path) -> bool:
    # Guards against pid reuse: only a kafka.Kafka running *this* state dir's config counts.
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    props = str((state / _PROPS_FILE).resolve()).encode()
    return b"kafka.Kafka" in argv and props in argv and _alive(pid)


def _running_pid(state: Path) -> int | None:
    pid = _read_pid(state)
    return pid if pid is not None and _is_our_broker(pid, state) else None


def _log_tail(state: Path, lines: int = 30) -> str:
    """First ERROR lines (the cause) plus the last ``lines`` lines of the broker log."""
    try:
        text = (state / _LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        return "(no broker log)"
    # The root cause is logged long before the tail, which is mostly shutdown chatter.
    errors = [
        "\n".join(text[n : n + 2])
        for n, line in enumerate(text)
        if " ERROR " in line or " FATAL " in line
    ][:3]
    head = "\n".join(errors) + "\n...\n" if errors else ""
    return head + "\n".join(text[-lines:])


def _port_free(port: int, reuse: bool = False) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse:  # as the broker binds: a port left in TIME_WAIT by clients is still free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _cluster_id() -> str:
    """A KRaft cluster id, generated like ``StorageTool random-uuid`` without paying a JVM start."""
    # Same rules as org.apache.kafka.common.Uuid.randomUuid(): 16 random bytes,
    # url-safe base64 without padding, never starting with '-' (breaks CLI parsing).
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _sasl_properties(users: dict[str, str], broker: tuple[str, str]) -> dict[str, str]:
    """Listener settings for SASL_PLAINTEXT with PLAIN (JAAS users) and SCRAM (in metadata)."""
    name, password = broker
    plain_users = "".join(f' user_{u}="{p}"' for u, p in {name: password, **users}.items())
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{name}" password="{password}"{plain_users};',
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": scram,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram,
    }


def _ssl_properties(keystore: SslKeystore) -> dict[str, str]:
    """Settings of the SSL listener: its keystore; clients are not asked for a certificate."""
    return {
        "ssl.keystore.location": str(keystore.path.resolve()),
        "ssl.keystore.password": keystore.password,
        "ssl.key.password": keystore.password,
        "ssl.keystore.type": keystore.type,
        "ssl.client.auth": "none",
    }


def _server_properties(port: int, controller_port: int, data: Path,
                       sasl: dict[str, str] | None = None, *, partitions: int = DEFAULT_PARTITIONS,
                       ssl: SslKeystore | None = None, internal_port: int | None = None) -> str:
    # Clients (and the broker itself) use PLAINTEXT, or SASL_PLAINTEXT when `sasl` is given.
    client = "SASL_PLAINTEXT" if sasl else "PLAINTEXT"
    listeners = f"{client}://{HOST}:{port}"
    advertised = listeners
    protocols = f"{client}:{client},CONTROLLER:PLAINTEXT"
    inter_broker = client
    if ssl is not None:
        if internal_port is None:
            raise KafkaError("an SSL listener needs an internal port for the broker itself")
        # Clients use SSL under the certificate's name; the broker talks to itself over a
        # loopback PLAINTEXT listener, so it never has to trust its own certificate.
        listeners = f"SSL://{HOST}:{port},INTERNAL://{HOST}:{internal_port}"
        advertised = f"SSL://{SSL_HOST}:{port},INTERNAL://{HOST}:{internal_port}"
        protocols = "SSL:SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
        inter_broker = "INTERNAL"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"{listeners},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": advertised,
        "listener.security.protocol.map": protocols,
        "inter.broker.listener.name": inter_broker,
        **(sasl or {}),
        **(_ssl_properties(ssl) if ssl is not None else {}),
        "controller.listener.names": "CONTROLLER",
        # Dynamic quorum (KIP-853), paired with `format --standalone`.
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "log.dirs": str(data),
        # Topics auto-created by a producer that ran before the first worker start get the
        # worker's partition count; with 1 the worker would refuse them.
        "num.partitions": str(partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        # Internal topics default to RF 3 and 50 partitions: impossible / slow on one node.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        # Tests join groups constantly; the default 3 s delay only slows them down.
        "group.initial.rebalance.delay.ms": "0",
        # 1 MiB is the smallest segment size Kafka 4.x accepts.
        "log.segment.bytes": str(1024 * 1024),
        "offsets.topic.segment.bytes": str(1024 * 1024),
        "transaction.state.log.segment.bytes": str(1024 * 1024),
        "log.retention.check.interval.ms": "60000",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _format_storage(lib: Path, state: Path, props: Path, extra: tuple[str, ...] = ()) -> None:
    """Format a fresh KRaft log dir; Kafka 4.x needs an explicit cluster id and quorum mode."""
    # A one-second tool: C1-only JIT and serial GC start measurably faster than the defaults.
    cmd = [
        _require("java"), "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
        "-cp", f"{lib}/*", "kafka.tools.StorageTool",
        "format", "--config", str(props), "--cluster-id", _cluster_id(), "--standalone", *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=state, check=False)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()[-4000:]
        raise KafkaError(f"kafka StorageTool format failed (exit {proc.returncode}):\n{output}")


# --------------------------------------------------------------------------- probe


async def _probe_once(bootstrap: str, timeout_s: float, auth: dict[str, Any] | None = None
                      ) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=max(1000, int(timeout_s * 1000)),
        connections_max_idle_ms=60000,
        **(auth or {}),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    # The broker only lists itself once it is registered and unfenced by the controller.
    return bool(cluster.get("brokers"))


def _accepts(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def _answers(bootstrap: str, timeout_s: float = 5.0, auth: dict[str, Any] | None = None) -> bool:
    """True if a Kafka metadata request to ``bootstrap`` returns a live broker."""
    # Cheap pre-check: keeps aiokafka from logging a connect error per poll while the JVM boots.
    if not _accepts(bootstrap):
        return False
    # Own thread + own loop: start() must work from sync code and from inside a running loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(asyncio.run, _probe_once(bootstrap, timeout_s, auth))
        try:
            return future.result(timeout=timeout_s * 3)
        # Refused/reset connections and timeouts (both OSError) just mean "not ready yet".
        except (OSError, AIOKafkaError):
            return False


def _probe_ssl_context() -> SSLContext:
    """TLS without verification: the probe only asks whether our own broker answers yet."""
    context = SSLContext(PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = CERT_NONE
    return context


def _broker_auth(state: Path) -> dict[str, Any] | None:
    """aiokafka arguments for the broker's own SASL login or its SSL listener, if it has one."""
    if (_client_listener(state / _PROPS_FILE) or ("", ""))[0] == "SSL":
        return {"security_protocol": "SSL", "ssl_context": _probe_ssl_context()}
    try:
        login = json.loads((state / _SASL_FILE).read_text())
    except (OSError, ValueError):
        return None
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
            "sasl_plain_username": login["username"], "sasl_plain_password": login["password"]}


def _wait_ready(pid: int, bootstrap: str, state: Path, timeout_s: float) -> None:
    auth = _broker_auth(state)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise KafkaError(
                f"Kafka broker (pid {pid}) exited during startup; "
                f"log {state / _LOG_FILE} ends with:\n{_log_tail(state)}"
            )
        if _answers(bootstrap, timeout_s=min(5.0, max(0.5, deadline - time.monotonic())),
                    auth=auth):
            return
        time.sleep(0.25)
    raise KafkaError(
        f"Kafka broker (pid {pid}) did not answer on {bootstrap} within {timeout_s:.0f} s; "
        f"log {state / _LOG_FILE} ends with:\n{_log_tail(state)}"
    )


# ---------------------------------------------------------------------------- API


def _requested_port(port: int | None) -> int | None:
    if port is not None:
        return port
    env = os.environ.get("HANDOFF_KAFKA_PORT")
    if env:
        try:
            return int(env)
        except ValueError:
            raise KafkaError(f"HANDOFF_KAFKA_PORT must be an integer, got {env!r}") from None
    return None


def start(
    port: int | None = None,
    cache_dir: Path | None = None,
    data_dir: Path | None = None,
    *,
    sasl_users: dict[str, str] | None = None,
    ssl: SslKeystore | None = None,
    partitions: int | None = None,
    keep_data: bool = False,
) -> str:
    """Start (or reuse) the local broker for ``data_dir`` and return ``"127.0.0.1:<port>"``.

    ``port`` defaults to ``$HANDOFF_KAFKA_PORT`` or a free port; ``data_dir`` is the state dir.

    ``sasl_users`` (name -> password): the client listener is SASL_PLAINTEXT instead of
    PLAINTEXT, accepting those users with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.

    ``ssl``: the client listener is SSL with this keystore (no client certificates), advertised
    as ``localhost:<port>``, the name its certificate must carry; that is the address returned.
    The broker reaches itself over a PLAINTEXT listener on another loopback port.

    ``partitions``: ``num.partitions``, what topics the broker auto-creates get; default
    ``$HANDOFF_PARTITIONS`` or 4, as the worker's setting, so they fit the worker.

    ``keep_data``: restart the broker that ran from this state dir with its log dir, cluster
    id, port and listeners as they were (a broker restart, not a fresh cluster). Without a
    previous run to keep, it starts fresh.
    """
    _require("java")
    state = state_dir(data_dir)
    state.mkdir(parents=True, exist_ok=True)
    wanted = _requested_port(port)
    num_partitions = _requested_partitions(partitions)
    if ssl is not None and sasl_users is not None:
        raise KafkaError("ssl and sasl_users together (SASL_SSL) are not supported here")
    if ssl is not None and not ssl.path.is_file():
        raise KafkaError(f"SSL keystore {ssl.path} is not a file")
    for name, password in (sasl_users or {}).items():
        if not (_SASL_SAFE.match(name) and _SASL_SAFE.match(password)):
            raise KafkaError(f"SASL user {name!r}: names and passwords may use only "
                             "letters, digits and ._@+- here")
    with _locked(state / ".lock"):
        pid = _running_pid(state)
        address = _read_address(state)
        if pid is not None and address is not None:
            if wanted is not None and _port_of(address) != wanted:
                raise KafkaError(
                    f"a broker from {state} already runs on {address}, not port {wanted}; "
                    "stop it first"
                )
            # It answered once already (start holds the lock until ready), so be quick.
            with contextlib.suppress(KafkaError):
                _wait_ready(pid, address, state, REUSE_TIMEOUT_S)
                return address
        # Alive but wedged or without an address: replace it, never orphan it.
        _stop_locked(state)

        ensure_jars(cache_dir)
        lib = lib_dir(cache_dir)
        data = state / _DATA_DIR
        props = (state / _PROPS_FILE).resolve()
        for name in (_PID_FILE, _ADDR_FILE):
            (state / name).unlink(missing_ok=True)
        kept = _kept_address(props, data) if keep_data else None
        if kept is not None:
            # The same log dir, cluster id, port and listeners: the broker comes back.
            if wanted is not None and _port_of(kept) != wanted:
                raise KafkaError(f"the kept broker of {state} listens on {kept}, not {wanted}")
            if not _port_free(_port_of(kept), reuse=True):
                raise KafkaError(f"port {kept} is already in use")
            address = kept
        else:
            if wanted is not None and not _port_free(wanted):
                raise KafkaError(f"port {HOST}:{wanted} is already in use")
            kafka_port = wanted if wanted is not None else _free_port()
            controller_port = _free_port()
            while controller_port == kafka_port:
                controller_port = _free_port()
            internal_port: int | None = None
            if ssl is not None:
                internal_port = _free_port()
                while internal_port in (kafka_port, controller_port):
                    internal_port = _free_port()

            # A fresh cluster per start: tests must never see a previous run's topics/offsets.
            shutil.rmtree(data, ignore_errors=True)
            (state / _SASL_FILE).unlink(missing_ok=True)
            sasl: dict[str, str] | None = None
            scram: tuple[str, ...] = ()
            if sasl_users is not None:
                broker = ("handoff-broker", secrets.token_hex(16))
                sasl = _sasl_properties(sasl_users, broker)
                login = state / _SASL_FILE
                login.touch(mode=0o600)
                login.write_text(json.dumps({"username": broker[0], "password": broker[1]}))
                # SCRAM credentials live in the cluster metadata, written when formatting.
                scram = tuple(
                    arg for mech in SASL_MECHANISMS[1:] for u, p in sasl_users.items()
                    for arg in ("--add-scram", f"{mech}=[name={u},password={p}]"))
            props.write_text(_server_properties(
                kafka_port, controller_port, data.resolve(), sasl, partitions=num_partitions,
                ssl=ssl, internal_port=internal_port))
            _format_storage(lib, state, props, scram)
            address = f"{SSL_HOST if ssl is not None else HOST}:{kafka_port}"
        log4j = state / _LOG4J_FILE
        log4j.write_text(_LOG4J2)

        cmd = [
            _require("java"), *JVM_HEAP, *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={log4j.resolve()}",
            "-cp", f"{lib}/*", "kafka.Kafka", str(props),
        ]  # fmt: skip
        with (state / _LOG_FILE).open("wb") as log:
            # Own session: survives the CLI that started it and can be killed as a group.
            proc = subprocess.Popen(
                cmd, cwd=state, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
            )  # fmt: skip
        _children[proc.pid] = proc
        (state / _PID_FILE).write_text(f"{proc.pid}\n")
        (state / _ADDR_FILE).write_text(f"{address}\n")
        try:
            _wait_ready(proc.pid, address, state, READY_TIMEOUT_S)
        except KafkaError:
            _stop_locked(state)
            raise
        return address


def _client_listener(props: Path) -> tuple[str, str] | None:
    """(protocol, address) of the first advertised listener in ``props``: the clients' one."""
    try:
        lines = props.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("advertised.listeners="):
            protocol, _, rest = line.removeprefix("advertised.listeners=").partition("://")
            return protocol, rest.split(",", 1)[0]
    return None


def _kept_address(props: Path, data: Path) -> str | None:
    """The client address of a formatted broker that ran from this state dir, if any."""
    if not (data / "meta.properties").is_file():
        return None
    listener = _client_listener(props)
    return listener[1] if listener is not None else None


def _port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def _requested_partitions(partitions: int | None) -> int:
    """The broker's ``num.partitions``: argument, ``$HANDOFF_PARTITIONS`` or 4."""
    if partitions is None:
        env = os.environ.get("HANDOFF_PARTITIONS")
        if not env:
            return DEFAULT_PARTITIONS
        try:
            partitions = int(env)
        except ValueError:
            raise KafkaError(f"HANDOFF_PARTITIONS must be an integer, got {env!r}") from None
    if not 1 <= partitions <= 1024:  # the bounds of the worker's setting
        raise KafkaError(f"partitions must be between 1 and 1024, got {partitions}")
    return partitions


def _stop_locked(state: Path, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    pid = _running_pid(state)
    stopped = False
    if pid is not None:
        stopped = True
        # SIGTERM lets Kafka do a controlled shutdown; the group also covers any children.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            # A stopped (SIGSTOP/^Z) JVM would only act on the TERM once continued.
            os.killpg(pid, signal.SIGCONT)
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        child = _children.pop(pid, None)
        if child is not None:
            child.wait()
    for name in (_PID_FILE, _ADDR_FILE):
        (state / name).unlink(missing_ok=True)
    return stopped


def stop(data_dir: Path | None = None, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the broker of ``data_dir`` (SIGTERM, SIGKILL after ``timeout_s``); True if one ran."""
    state = state_dir(data_dir)
    if not state.is_dir():
        return False
    with _locked(state / ".lock"):
        return _stop_locked(state, timeout_s)


def status(data_dir: Path | None = None) -> str | None:
    """Bootstrap address of the broker running from ``data_dir``, or None."""
    state = state_dir(data_dir)
    return _read_address(state) if _running_pid(state) is not None else None
