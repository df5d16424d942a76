"""systemd's side of the notify protocol for the tests (test_systemd.py, test_binary_upgrade.py): a unix datagram
socket at NOTIFY_SOCKET that collects ficus's sd_notify messages (READY=1, RELOADING=1, STOPPING=1, STATUS=, MAINPID=)
as dicts, one per datagram."""
import socket

from conftest import SLOW, wait_for


class NotifyListener:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []

    def poll(self):
        """Every message so far (reads what has arrived, waiting at most 0.1 s)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line))

    def wait(self, pred, what):
        """The first message for which pred is true (waits for it, bounded)."""
        return wait_for(lambda: next((m for m in self.poll() if pred(m)), None), 15 * SLOW, what=what)

    def close(self):
        self.sock.close()
