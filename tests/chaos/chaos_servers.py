"""Private RabbitMQ, PostgreSQL and Redis servers that the chaos suite may stop and restart.

The machine's shared servers (5672, 5432, 6379) serve every other test; restarting them would
break those tests. Each server here runs from a temporary directory on free ports, under its
own RabbitMQ node name, and is torn down at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


class ServerUnavailableError(RuntimeError):
    """A private server could not be started on this machine."""


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.1)
    return False


@dataclass
class PrivateRabbitMQ:
    """A RabbitMQ node of its own (node name, ports, data and logs in a temporary directory)."""

    directory: Path
    node: str = field(default_factory=lambda: f"tai-chaos-{uuid.uuid4().hex[:8]}@localhost")
    port: int = field(default_factory=free_port)
    distribution_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        for tool in ("rabbitmq-server", "rabbitmqctl"):
            if not (RABBITMQ_BIN / tool).exists() and shutil.which(tool) is None:
                raise ServerUnavailableError(f"{tool} is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n",
            encoding="utf-8",
        )
        (self.directory / "enabled_plugins").write_text("[].\n", encoding="utf-8")
        # An empty env file: the machine's rabbitmq-env.conf names the shared node.
        (self.directory / "rabbitmq-env.conf").write_text("", encoding="utf-8")

    @property
    def url(self) -> str:
        """Return the AMQP URL of the default vhost."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.directory),
            "RABBITMQ_CONF_ENV_FILE": str(self.directory / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.distribution_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.directory / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def _tool(self, name: str) -> str:
        path = RABBITMQ_BIN / name
        return str(path) if path.exists() else name

    def ctl(self, *arguments: str, timeout: float = 60.0) -> str:
        """Run rabbitmqctl against this node and return its output."""
        result = subprocess.run(
            [self._tool("rabbitmqctl"), "-q", "-n", self.node, *arguments],
            env=self._environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(arguments)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, timeout: float = 90.0) -> None:
        """Start the node and wait until it accepts AMQP connections."""
        subprocess.run(
            [self._tool("rabbitmq-server"), "-detached"],
            env=self._environment(),
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.ctl("wait", str(self.directory / "rabbitmq.pid"), timeout=timeout)
        if not _wait_for_port(self.port, timeout):
            raise ServerUnavailableError(
                f"RabbitMQ node {self.node} does not listen on {self.port}"
            )

    def stop(self) -> None:
        """Stop the node (its data survives for the next start)."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl("stop", str(self.directory / "rabbitmq.pid"), timeout=60)

    def add_vhost(self, vhost: str) -> str:
        """Create a vhost guest may use fully; return its AMQP URL."""
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return f"{self.url.rstrip('/')}/{vhost}"

    def queue_depths(self, vhost: str) -> dict[str, tuple[int, int]]:
        """Return (ready, unacknowledged) messages per queue of a vhost."""
        output = self.ctl(
            "list_queues", "-p", vhost, "name", "messages_ready", "messages_unacknowledged"
        )
        depths = {}
        for line in output.splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                depths[parts[0]] = (int(parts[1]), int(parts[2]))
        return depths


def _postgres_binaries() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise ServerUnavailableError("initdb is not installed")
    return Path(initdb).parent


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temporary directory, trust auth, free port).

    initdb refuses to run as root, so under root the cluster belongs to the ``postgres`` user.
    """

    directory: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self._binaries = _postgres_binaries()
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as error:
                raise ServerUnavailableError("running as root without a postgres user") from error
            self._run_as = ["runuser", "-u", "postgres", "--"]
            self.directory.mkdir(parents=True, exist_ok=True)
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self.data = self.directory / "data"

    @property
    def url(self) -> str:
        """Return the SQLAlchemy URL of the server (no database)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/"

    def _run(self, *command: str, timeout: float = 120.0) -> None:
        subprocess.run(
            [*self._run_as, *command],
            check=True,
            capture_output=True,
            timeout=timeout,
            cwd=self.directory,
        )

    def initialise(self) -> None:
        """Create the cluster."""
        self._run(
            str(self._binaries / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        )

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200"
        )
        self._run(
            str(self._binaries / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(int(timeout)),
            "start",
            timeout=timeout + 10,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: recovery replays the WAL on start)."""
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(
                str(self._binaries / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"
            )


@dataclass
class PrivateRedis:
    """A Redis server of its own (no persistence), run as a child process."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if shutil.which("redis-server") is None:
            raise ServerUnavailableError("redis-server is not installed")

    @property
    def url(self) -> str:
        """Return the Redis URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it listens."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not _wait_for_port(self.port, 20):
            raise ServerUnavailableError(f"redis-server does not listen on {self.port}")

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


@dataclass
class ChaosServers:
    """The three private servers of one chaos session."""

    rabbitmq: PrivateRabbitMQ
    postgres: PrivatePostgres
    redis: PrivateRedis
    root: Path | None = None

    @classmethod
    def start_all(cls) -> ChaosServers:
        """Create and start the servers in a fresh temporary directory."""
        root = Path(tempfile.mkdtemp(prefix="tai-chaos-"))
        # The postgres user must be able to reach its directory inside ours.
        root.chmod(0o755)
        rabbitmq = PrivateRabbitMQ(root / "rabbitmq")
        postgres = PrivatePostgres(root / "postgres")
        redis = PrivateRedis()
        servers = cls(rabbitmq, postgres, redis, root)
        try:
            rabbitmq.start()
            postgres.initialise()
            postgres.start()
            redis.start()
        except BaseException:
            servers.stop_all()
            raise
        return servers

    def stop_all(self) -> None:
        """Stop every server and remove their files."""
        self.redis.stop()
        self.postgres.stop("immediate")
        self.rabbitmq.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
