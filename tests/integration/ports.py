"""Loopback ports for the integration suite that no other process uses (issue 9 item 6).

Picking a port with bind(("127.0.0.1", 0)) and closing the socket is racy twice over: the kernel hands the same
ephemeral port to the next connect() of any process on the box (as its source port), and anybody may bind it before
the process we start does; ficus listens with SO_REUSEPORT, so a second ficus (another engineer's test run, a demo)
could even share the port and take half of the connections. So:

- ports come from a range below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), which no
  connect() ever uses as a source port;
- the range is cut into blocks of BLOCK ports, and a test process takes a block by holding an flock() on
  LOCK_DIR/block-N.lock until it exits (the kernel drops the lock when it dies): two test runs at the same time never
  draw from the same block;
- a port is handed out only if it can be bound right now without SO_REUSEADDR/SO_REUSEPORT (nobody holds it, not
  even a TIME_WAIT) and nothing accepts connections on it;
- once a server is started on a port, foreign_listeners() tells whether a listening socket on that port belongs to
  another process (read from /proc/net/tcp{,6} and the owner's /proc/PID/fd): the fixtures then pick another port and
  start again (conftest.Ficus, Echo, redis_fixtures.RedisServer, jwks_server.JwksServer).
"""
import errno
import fcntl
import os
import random
import socket
import tempfile
import threading

BLOCK = 64
LOCK_DIR = os.path.join(tempfile.gettempdir(), "ficus-test-ports")
ATTEMPTS = 5  # starts of one server on fresh ports before a collision is reported as a failure


def _port_range():
    """[lo, hi) of the ports we draw from: 20000 up to the start of the ephemeral range (at most 32768)."""
    lo_eph = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo_eph = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    lo = 20000 if lo_eph > 20000 + 8 * BLOCK else 10000
    return lo, min(lo_eph, 32768)


_lock = threading.Lock()
_blocks = []  # (fd, first port, next index) of the blocks this process holds
_handed_out = set()


def _take_block():
    lo, hi = _port_range()
    n = (hi - lo) // BLOCK
    os.makedirs(LOCK_DIR, exist_ok=True)
    try:
        os.chmod(LOCK_DIR, 0o1777)  # shared by every user's test runs
    except OSError:
        pass
    held = {b[1] for b in _blocks}
    order = list(range(n))
    random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "little")).shuffle(order)
    for i in order:
        first = lo + i * BLOCK
        if first in held:
            continue
        path = os.path.join(LOCK_DIR, f"block-{first}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _blocks.append([fd, first, 0])
        return _blocks[-1]
    raise RuntimeError(f"no free block of {BLOCK} ports in [{lo}, {hi}) (locks in {LOCK_DIR})")


def port_is_free(port):
    """Nobody holds `port` on any IPv4 address: it binds on 0.0.0.0 without SO_REUSEADDR/SO_REUSEPORT (so a
    SO_REUSEPORT listener, a TIME_WAIT socket or a connection using it as its source port all count as taken), and
    nothing accepts connections on 127.0.0.1 or [::1]."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", port))
    except OSError:
        return False
    finally:
        s.close()
    for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.settimeout(0.5)
        try:
            if c.connect_ex((host, port)) == 0:
                return False
        except OSError:
            pass
        finally:
            c.close()
    return True


def free_port():
    """A loopback TCP port from a block this process holds, free right now, never handed out twice per process."""
    with _lock:
        for _ in range(4 * ((32768 - 10000) // BLOCK)):
            blk = next((b for b in _blocks if b[2] < BLOCK), None) or _take_block()
            port = blk[1] + blk[2]
            blk[2] += 1
            if port not in _handed_out and port_is_free(port):
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port")


def _listening_inodes(port):
    """Inodes of the sockets listening on TCP `port` (any address, IPv4 and IPv6)."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        out.add(fields[9])
        except OSError:
            continue
    return out


def _socket_inodes(pid):
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def foreign_listeners(ports, pids):
    """The ports among `ports` on which the processes `pids` listen and some other process listens too (it shares
    the port, e.g. with SO_REUSEPORT, and would take some of the connections). A port none of `pids` listens on
    (say, the Redis address in a ficus config) is not reported."""
    ours = set()
    for pid in pids:
        ours |= _socket_inodes(pid)
    out = []
    for p in sorted(set(ports)):
        listening = _listening_inodes(p)
        if listening & ours and listening - ours:
            out.append(p)
    return out
