"""The node agent (/warewulf/wwclient) run for real: `sh` on a temporary root (WW_ROOT), its
/warewulf/config rendered by the wwinit overlay, against a small HTTP server standing in for
bootd that serves a gzip'd newc runtime overlay and records the status reports."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import json
import os
import queue
import signal
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from libs.common.formats.newc import Member, archive
from tests.needs import need_root
from tests.overlayd.agent_process import AGENT, Agent
from tests.overlayd.overlays.helpers import Cluster, busybox_bin, plain_node, settings, shellcheck
from tests.waiting import NeverHappened, eventually_sync

MAC = "aa:bb:cc:00:00:01"
WAIT = 20.0  # seconds: generous; every wait below ends as soon as its event happens


def runtime(files: dict[str, tuple[int, bytes]], links: dict[str, str] | None = None) -> bytes:
    members = [Member(path=p, mode=stat.S_IFREG | m, data=d) for p, (m, d) in files.items()]
    members += [
        Member(path=p, mode=stat.S_IFLNK | 0o777, data=t.encode()) for p, t in (links or {}).items()
    ]
    dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    modes = {"root": 0o700, "root/.ssh": 0o700}
    members += [Member(path=d, mode=stat.S_IFDIR | modes.get(d, 0o755)) for d in dirs]
    return gzip.compress(archive(members), mtime=0)


@dataclass
class Bootd:
    """A stand-in for bootd's /runtime/<mac> and /status/<mac>."""

    archive: bytes = b""
    gets: queue.Queue[tuple[str, int]] = field(default_factory=queue.Queue)
    reports: queue.Queue[dict[str, str]] = field(default_factory=queue.Queue)
    server: http.server.ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> int:
        bootd = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                bootd.gets.put((self.path, self.client_address[1]))
                if not self.path.startswith(f"/runtime/{MAC}"):
                    self.send_error(404)
                    return
                body = bootd.archive
                if "callback=" in self.path:  # push to the node's port, answer the digest
                    port = int(self.path.rsplit("callback=", 1)[1].split("&")[0])
                    push(self.client_address[0], port, body)
                    digest = hashlib.sha256(body).hexdigest()
                    body = json.dumps({"digest": digest, "size": len(body)}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                self.send_response(204)
                self.end_headers()
                bootd.reports.put({"path": self.path, **body})

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return int(self.server.server_address[1])

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def push(host: str, port: int, data: bytes) -> None:
    """As bootd's ?callback=: connect to the node's listener (it starts beside the request)."""

    def send() -> bool:
        with socket.create_connection((host, port), timeout=WAIT) as conn:
            conn.sendall(data)
        return True

    # Polling a listener another process opens: no event to await.
    eventually_sync(
        send,
        f"the node listening on {host}:{port}",
        within=WAIT,
        ignoring=(ConnectionRefusedError,),
    )


def node_root(
    tmp_path: Path, port: int, *, secure: bool, interval: str, asset: str = "", ca_pem: str = ""
) -> Path:
    """A node's root with /warewulf/config as the wwinit overlay renders it for this bootd
    (with `ca_pem`: as under `wolfpack up --tls`, its HTTPS twin on port 1, which is closed)."""
    node = plain_node("n01", "10.0.0.11", MAC, tags={"agent.interval": interval})
    if asset:
        node.asset_key = asset
    ports = {"registry": 9870, "bootd": port}
    tls = {"bootd_tls_port": 1, "ca_pem": ca_pem} if ca_pem else {}
    server = settings(ip="127.0.0.1", ports=ports, secure=secure, **tls)
    cluster = Cluster(nodes=[node], settings=server)
    root = tmp_path / "root"
    (root / "warewulf").mkdir(parents=True)
    (root / "warewulf/config").write_bytes(cluster.render("wwinit", "n01")["warewulf/config"].data)
    return root


def report(bootd: Bootd, agent: Agent) -> dict[str, str]:
    try:
        return bootd.reports.get(timeout=WAIT)
    except queue.Empty:
        raise AssertionError(f"no status report; agent log: {agent.log}") from None


@pytest.fixture
def bootd() -> Iterator[Bootd]:
    server = Bootd()
    yield server
    server.stop()


def test_the_agent_is_posix_sh() -> None:
    subprocess.run(["sh", "-n", str(AGENT)], check=True)
    shellcheck(AGENT)


def test_applies_by_rename_keeps_the_rest_and_reports(tmp_path: Path, bootd: Bootd) -> None:
    first = runtime(
        {
            "etc/same": (0o644, b"same\n"),
            "etc/changed": (0o644, b"new\n"),
            "root/.ssh/authorized_keys": (0o600, b"ssh-ed25519 AAAA root@server\n"),
        },
        links={"etc/localtime": "/usr/share/zoneinfo/UTC"},
    )
    bootd.archive = first
    port = bootd.start()
    root = node_root(tmp_path, port, secure=False, interval="1")
    etc = root / "etc"
    etc.mkdir()
    (etc / "keep").write_text("not in the overlay\n")
    (etc / "same").write_text("same\n")
    os.chmod(etc / "same", 0o644)
    same_before = os.stat(etc / "same")
    (etc / "changed").write_text("old\n")
    os.link(etc / "changed", root / "old-link")  # an in-place write would show through this

    agent = Agent(root, ["sh"])
    try:
        done = report(bootd, agent)
        assert done == {
            "path": f"/status/{MAC}",
            "stage": "runtime",
            "message": "applied",
            "runtime_digest": hashlib.sha256(first).hexdigest(),
        }
        assert (etc / "changed").read_text() == "new\n"
        assert (root / "old-link").read_text() == "old\n"  # replaced by rename, not rewritten
        after = os.stat(etc / "same")
        assert (after.st_ino, after.st_mtime_ns) == (same_before.st_ino, same_before.st_mtime_ns)
        assert (etc / "keep").read_text() == "not in the overlay\n"
        assert os.readlink(etc / "localtime") == "/usr/share/zoneinfo/UTC"
        keys = root / "root/.ssh/authorized_keys"
        assert keys.read_text() == "ssh-ed25519 AAAA root@server\n"
        assert stat.S_IMODE(keys.stat().st_mode) == 0o600
        assert stat.S_IMODE((root / "root/.ssh").stat().st_mode) == 0o700
        assert not list(etc.glob(".*.wwclient"))  # no temporary copy left behind

        # The next overlay drops etc/changed and edits etc/same: nothing is deleted.
        second = runtime({"etc/same": (0o640, b"edited\n")})
        bootd.archive = second
        assert report(bootd, agent)["runtime_digest"] == hashlib.sha256(second).hexdigest()
        assert (etc / "same").read_text() == "edited\n"
        assert stat.S_IMODE((etc / "same").stat().st_mode) == 0o640
        assert (etc / "changed").read_text() == "new\n"

        # Unchanged fetches (interval 1 s) apply and report nothing: after two more fetches,
        # the next report is the third overlay's, not a repeat of the second's.
        while not bootd.gets.empty():
            bootd.gets.get_nowait()
        for _ in range(2):
            bootd.gets.get(timeout=WAIT)
        third = runtime({"etc/third": (0o644, b"3\n")})
        bootd.archive = third
        assert report(bootd, agent)["runtime_digest"] == hashlib.sha256(third).hexdigest()
    finally:
        agent.stop()


def test_retries_every_second_while_bootd_is_down(tmp_path: Path, bootd: Bootd) -> None:
    with socket.socket() as probe:  # a port nothing listens on, yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # An interval of an hour: only the one-second retry can reach bootd within the test.
    root = node_root(tmp_path, port, secure=False, interval="3600")
    agent = Agent(root, ["sh"])
    try:
        agent.wait_for_line(f"127.0.0.1:{port}/runtime/{MAC}:")  # the refused connection
        bootd.archive = runtime({"etc/hostname": (0o644, b"n01\n")})
        bootd.start(port)
        assert report(bootd, agent)["message"] == "applied"
        assert (root / "etc/hostname").read_text() == "n01\n"
        agent.wait_for_line(f"reached http://127.0.0.1:{port} again")
    finally:
        agent.stop()


def test_hangup_fetches_at_once(tmp_path: Path, bootd: Bootd) -> None:
    bootd.archive = runtime({"etc/a": (0o644, b"a\n")})
    root = node_root(tmp_path, bootd.start(), secure=False, interval="3600")
    agent = Agent(root, ["sh"])
    try:
        report(bootd, agent)
        bootd.archive = runtime({"etc/a": (0o644, b"b\n")})

        # A hangup that lands before the agent is back asleep is absorbed: send until heard.
        def hangup() -> str | None:
            os.kill(agent.process.pid, signal.SIGHUP)
            with contextlib.suppress(queue.Empty):
                return str(bootd.reports.get(timeout=0.5)["message"])
            return None

        try:
            message = eventually_sync(hangup, "a fetch after SIGHUP", within=WAIT, every=0)
        except NeverHappened as err:
            raise AssertionError(f"{err}; log: {agent.log}") from None
        assert message == "applied"
        assert (root / "etc/a").read_text() == "b\n"
    finally:
        agent.stop()


def test_secure_mode_uses_a_privileged_port_and_the_asset_key(tmp_path: Path, bootd: Bootd) -> None:
    need_root("secure mode (a source port below 1024)")
    bootd.archive = runtime({"etc/a": (0o644, b"a\n")})
    root = node_root(tmp_path, bootd.start(), secure=True, interval="3600", asset="tag-42")
    agent = Agent(root, ["sh"])
    try:
        done = report(bootd, agent)
        assert done["path"] == f"/status/{MAC}?assetkey=tag-42"
        path, client_port = bootd.gets.get(timeout=WAIT)
        assert path == f"/runtime/{MAC}?assetkey=tag-42"
        assert client_port < 1024
    finally:
        agent.stop()


def test_busybox_only_image_uses_wget(tmp_path: Path, bootd: Bootd) -> None:
    bin_dir = busybox_bin(tmp_path / "bin")
    assert not (bin_dir / "curl").exists()
    bootd.archive = runtime({"etc/a": (0o644, b"a\n")}, links={"etc/l": "a"})
    root = node_root(tmp_path, bootd.start(), secure=False, interval="3600")
    agent = Agent(root, [str(bin_dir / "sh")], path=str(bin_dir))
    try:
        done = report(bootd, agent)
        assert done["runtime_digest"] == hashlib.sha256(bootd.archive).hexdigest()
        assert (root / "etc/a").read_text() == "a\n"
        assert os.readlink(root / "etc/l") == "a"
    finally:
        agent.stop()


def test_under_tls_without_curl_the_agent_says_so_and_stays_on_plain_http(
    tmp_path: Path, bootd: Bootd
) -> None:
    """busybox wget cannot be told which CA to trust: the agent uses bootd's plain port and
    says why, rather than fetching over HTTPS it cannot check."""
    bin_dir = busybox_bin(tmp_path / "bin")
    bootd.archive = runtime({"etc/a": (0o644, b"a\n")})
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    root = node_root(tmp_path, bootd.start(), secure=False, interval="3600", ca_pem=pem)
    agent = Agent(root, [str(bin_dir / "sh")], path=str(bin_dir))
    try:
        agent.wait_for_line("without curl this agent cannot check its certificate")
        assert report(bootd, agent)["runtime_digest"] == hashlib.sha256(bootd.archive).hexdigest()
    finally:
        agent.stop()


def test_under_tls_a_missing_ca_means_no_fetch_rather_than_plain_http(
    tmp_path: Path, bootd: Bootd
) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    root = node_root(tmp_path, bootd.start(), secure=False, interval="3600", ca_pem=pem)
    assert not (root / "warewulf/ca.pem").exists()
    agent = Agent(root, ["sh"])
    try:
        agent.wait_for_line("is missing: not fetching")
        assert agent.process.wait(timeout=WAIT) == 1
        assert bootd.gets.empty()
    finally:
        agent.stop()


def test_the_asset_key_stays_out_of_the_log(tmp_path: Path, bootd: Bootd) -> None:
    root = node_root(tmp_path, bootd.start(), secure=False, interval="3600", asset="k-secret")
    bootd.stop()  # every fetch fails, and the failure is logged with its URL
    agent = Agent(root, ["sh"])
    try:
        agent.wait_for_line("assetkey=...")
        agent.wait_for_line(f"/runtime/{MAC}")
        assert "k-secret" not in "".join(agent.log)
    finally:
        agent.stop()


def test_secure_mode_on_busybox_has_the_overlay_pushed(tmp_path: Path, bootd: Bootd) -> None:
    """No curl: the agent listens on a privileged port (busybox nc, root only) and bootd
    pushes the overlay there; the agent checks it against the digest bootd answers."""
    need_root("listening on a port below 1024")
    bin_dir = busybox_bin(tmp_path / "bin")
    assert not (bin_dir / "curl").exists()
    bootd.archive = runtime({"etc/pushed": (0o644, b"over a callback\n")})
    root = node_root(tmp_path, bootd.start(), secure=True, interval="3600", asset="k1")
    agent = Agent(root, [str(bin_dir / "sh")], path=str(bin_dir))
    try:
        done = report(bootd, agent)
        assert done["runtime_digest"] == hashlib.sha256(bootd.archive).hexdigest()
        assert (root / "etc/pushed").read_text() == "over a callback\n"
        path, _ = bootd.gets.get(timeout=WAIT)
        assert path.startswith(f"/runtime/{MAC}?assetkey=k1&callback=")
        assert int(path.rsplit("=", 1)[1]) < 1024
    finally:
        agent.stop()


def test_secure_mode_without_curl_or_nc_says_why(tmp_path: Path, bootd: Bootd) -> None:
    bin_dir = busybox_bin(tmp_path / "bin")
    (bin_dir / "nc").unlink()
    root = node_root(tmp_path, bootd.start(), secure=True, interval="3600")
    # Not busybox's sh: it runs its own applets (nc among them) whatever PATH says.
    agent = Agent(root, ["/bin/sh"], path=str(bin_dir))
    try:
        agent.wait_for_line("secure mode needs curl or nc")
        assert bootd.gets.empty()  # the check comes before any request
    finally:
        agent.stop()
