"""Issue 11: cells that attack the control channel or the sessions next to them.

Every attack is what a model could write: it hunts for the channel's descriptors through /proc/self/fd and
for the Docker end-of-cell sentinel through the garbage collector, then writes what the host reads.
"""

from __future__ import annotations

import struct
import textwrap
import threading
import time

import pytest

from harness.sandbox import get_sandbox
from harness.sandbox.docker_backend import SentinelStream
from harness.sandbox.protocol import ControlLimitExceeded, FrameReader, PreviousCellLied, ProtocolError, cell_reply
from tests.sandbox.conftest import TEST_LIMITS

# Finds every descriptor the cell holds besides its stdio, and every sentinel string in reach.
HUNT = textwrap.dedent("""
    import gc, json, os, signal, struct, time
    stdio = (0, 1, 2, 1000, 1001)
    channels = [int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) not in stdio]
    sentinels = {o["sentinel"].encode() for o in gc.get_objects()
                 if isinstance(o, dict) and isinstance(o.get("sentinel"), str)}
    def send(data, fds):
        for fd in fds:
            try:
                os.write(fd, data)
            except OSError:
                pass
    def frame(message):
        body = json.dumps(message).encode()
        return struct.pack(">I", len(body)) + body
""")


class PeakRss:
    """The harness process's resident memory, sampled while a cell runs."""

    def __init__(self) -> None:
        self.baseline = self.peak = rss_bytes()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.running = False
        self.thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:"))


# --- item 2: whatever a cell sends, the harness keeps a bounded amount of it ---------------------------------

def test_a_huge_frame_header_and_a_flood_leave_host_memory_bounded(session):
    session.run("x = 6 * 7")
    flood = HUNT + textwrap.dedent("""
        send(struct.pack(">I", 4_000_000_000), channels)        # a frame that announces ~4 GB
        for sentinel in sentinels:                              # or: end the cell, then keep talking
            send(sentinel, [1]); send(sentinel, [2])
        chunk = b"x" * (1 << 20)
        for _ in range(300):
            send(chunk, channels + ([2] if sentinels else []))
        time.sleep(60)
    """)
    with PeakRss() as rss:
        result = session.run(flood, timeout=8)
    assert result.status in ("killed", "timeout") and result.reason is not None, result
    print(f"harness memory growth during the flood: {rss.growth_mb:.1f} MB")
    assert rss.growth_mb < 20, f"the harness grew by {rss.growth_mb:.0f} MB"
    assert session.run("print(x)").stdout == "42\n"


def test_the_host_refuses_oversized_frames_before_reading_them():
    reader = FrameReader(max_bytes=1024)
    reader.feed(struct.pack(">I", 4_000_000_000) + b"x" * 100)
    with pytest.raises(ControlLimitExceeded):
        reader.pop()
    with pytest.raises(ControlLimitExceeded):
        FrameReader(max_bytes=1024).feed(b"\0" * 2000)
    stream = SentinelStream(b"<end>", with_status=True, max_bytes=1024)
    stream.feed(b"output<end>")
    with pytest.raises(ControlLimitExceeded):
        stream.feed(b"a status line that never ends" * 100)


# --- item 3: a protocol violation is the cell's failure, never the harness's exception -----------------------

PAYLOADS = {
    "garbage": 'struct.pack(">I", 5) + b"garba"',
    "int traceback": 'frame({"status": "error", "traceback": 5})',
    "unknown status": 'frame({"status": "pwned", "traceback": None})',
}
STATUS_LINES = {"garbage": b"not json", "int traceback": b'{"status": "error", "traceback": 5}',
                "unknown status": b'{"status": "pwned"}'}


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_malformed_report_is_a_protocol_error_and_the_session_goes_on(session, payload):
    session.run("x = 6 * 7")
    attack = HUNT + textwrap.dedent(f"""
        send({PAYLOADS[payload]}, channels)
        for sentinel in sentinels:
            send(sentinel, [1]); send(sentinel + {STATUS_LINES[payload]!r} + b"\\n", [2])
        os.kill(os.getpid(), signal.SIGSTOP)  # what the worker does when a cell is over
    """)
    result = session.run(attack, timeout=4)
    assert (result.status, result.reason) == ("error", "protocol"), result
    assert result.error.startswith("ProtocolError")
    assert session.run("print(x)").stdout == "42\n"


def test_replies_are_checked_field_by_field():
    assert cell_reply({"status": "error", "traceback": "Traceback..."}) == ("error", "Traceback...", None)
    for bad in ({"status": "error", "traceback": 5}, {"status": "pwned"}, {"status": "died", "exit": "9"},
                {"status": "ok", "violation": "a second report"}):
        with pytest.raises(ProtocolError):
            cell_reply(bad)
    with pytest.raises(PreviousCellLied):
        cell_reply({"status": "error", "violation": "request untaken", "previous_cell_lied": True})


# --- item 4: the deadline holds whatever the cell reports ------------------------------------------------------

def test_a_forged_completion_does_not_beat_the_deadline(session):
    forge = HUNT + textwrap.dedent("""
        send(frame({"status": "ok", "traceback": None}), channels)
        for sentinel in sentinels:
            send(sentinel, [1]); send(sentinel + b'{"status": "ok", "traceback": null}\\n', [2])
        time.sleep(30)
    """)
    started = time.monotonic()
    result = session.run(forge, timeout=2)
    assert result.status == "timeout", result
    assert time.monotonic() - started >= 2


# --- issue 22 item 2: a forged report and a self-stop neither pass for the cell's result nor hijack later cells --

FORGE_AND_STOP = HUNT + textwrap.dedent("""
    print("forged output")
    send(frame({"status": "ok", "traceback": None, "nonce": NONCE}), channels)
    os.kill(os.getpid(), signal.SIGSTOP)  # what the worker does when a cell is over
    print("the forged cell, resumed")
""")


def test_a_forged_report_and_a_self_stop_do_not_pass_and_later_cells_run_their_own_code(session):
    session.run("x = 6 * 7")
    result = session.run("NONCE = None\n" + FORGE_AND_STOP, timeout=4)
    assert (result.status, result.reason) == ("error", "protocol"), result
    assert session.run("print(x)").stdout == "42\n"
    assert session.run("print('my own code')").stdout == "my own code\n"


def test_a_cell_that_steals_its_nonce_cannot_answer_for_the_next_cell(session):
    """A cell can read its own interpreter's memory, nonce included, and so end itself early as "ok"; the next
    cell then finds the worker still inside the forged one: a protocol error, after which the forged cell's
    state is dropped and later cells run their own code."""
    session.run("x = 6 * 7")
    steal = "import sys\nf, NONCE = sys._getframe(), None\nwhile f:\n    NONCE = f.f_locals.get('nonce', NONCE)\n" \
            "    f = f.f_back\nstolen = True\n"
    assert session.run(steal + FORGE_AND_STOP, timeout=4).stdout == "forged output\n"
    result = session.run("print('my own code')", timeout=4)
    assert (result.status, result.reason) == ("error", "protocol"), result
    assert session.run("print(x, 'stolen' in globals())").stdout == "42 False\n"
    assert session.run("print('my own code')").stdout == "my own code\n"


def test_the_cell_holds_no_socket(local_sandbox):
    """Locally the control channel is a socket: the process that runs the cells must not hold one."""
    probe = textwrap.dedent("""
        import os, stat
        def is_socket(fd):
            try:
                return stat.S_ISSOCK(os.fstat(fd).st_mode)
            except OSError:
                return False
        print([fd for fd in range(4096) if is_socket(fd)])
    """)
    with local_sandbox.session() as session:
        assert session.run(probe).stdout == "[]\n"


# --- item 6: Docker sessions share nothing through /tmp or /dev/shm ----------------------------------------------

@pytest.fixture(scope="module")
def one_container():
    """A pool of one container, so that consecutive sessions certainly run in the same one."""
    pytest.importorskip("docker")
    try:
        sandbox = get_sandbox("docker", limits=TEST_LIMITS, containers=1)
    except Exception as exc:
        pytest.skip(f"NO DOCKER ENGINE ({exc.__class__.__name__}): Docker isolation tests SKIPPED")
    yield sandbox
    sandbox.close()


@pytest.mark.docker
def test_files_in_tmp_and_shm_do_not_reach_the_next_session(one_container):
    with one_container.session() as first:
        result = first.run("for place in ('/tmp', '/dev/shm'):\n    open(f'{place}/left-behind', 'w').write('secret')")
        assert result.status == "ok", result
    with one_container.session() as second:
        seen = second.run("import os\nprint(os.listdir('/tmp'), os.listdir('/dev/shm'))").stdout
    assert "left-behind" not in seen


@pytest.mark.docker
def test_planted_session_directories_are_harmless(one_container):
    plant = textwrap.dedent("""
        import os
        me = os.getuid()
        for uid in range(me + 1, me + 20):
            os.makedirs(f'/tmp/session-{uid}/locked', mode=0o700)
            os.chmod(f'/tmp/session-{uid}', 0)   # not even its owner's sweep can list it
        os.symlink('/proc/self/fd', '/tmp/session-link')
    """)
    with one_container.session() as first:
        assert first.run(plant).status == "ok"
        assert first.run("import time\ntime.sleep(30)", timeout=1).status == "timeout"  # rebuilt under a new uid
        assert first.run("print('still here')").stdout == "still here\n"
    for _ in range(2):
        with one_container.session() as later:
            assert later.run("print('fine')").stdout == "fine\n"


@pytest.mark.docker
def test_a_full_tmp_does_not_fill_a_concurrent_session(docker_sandbox):
    fill = textwrap.dedent("""
        import itertools
        chunk = b'x' * (1 << 20)
        try:
            for index in itertools.count():
                with open(f'/tmp/fill-{index}', 'wb') as handle:
                    for _ in range(16):
                        handle.write(chunk)
        except OSError as exc:
            print(type(exc).__name__, exc.errno)
    """)
    with docker_sandbox.session() as hog, docker_sandbox.session() as neighbour:
        assert "28" in hog.run(fill, timeout=60).stdout  # ENOSPC: its own /tmp is full
        result = neighbour.run("open('/tmp/mine', 'wb').write(b'y' * (1 << 20))\nprint('wrote')")
        assert result.stdout == "wrote\n", result

