"""Raw HTTP/2 helpers for the abuse suites: frames built by hand (so a test can send what python-h2 refuses to) and
a reader that reports what the server sent back."""
import socket
import ssl
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY, CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x7, 0x9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
PROTOCOL_ERROR = 0x1


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def hpack_literal(name, value):
    """A literal header field without indexing, new name (RFC 7541 6.2.2), short strings only."""
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def request_block(path, authority=b"localhost", scheme=b"https"):
    return (b"\x82"  # :method GET
            + hpack_literal(b":scheme", scheme) + hpack_literal(b":authority", authority) + hpack_literal(b":path", path))


class Reader:
    """Frames received on a socket: read(timeout) collects what arrives until EOF or timeout."""

    def __init__(self, s):
        self.s = s
        self.buf = b""
        self.frames = []  # (type, flags, stream_id, payload)
        self.eof = False

    def _parse(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], "big")
            if len(self.buf) < 9 + length:
                return
            ftype, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            self.frames.append((ftype, flags, sid, self.buf[9:9 + length]))
            self.buf = self.buf[9 + length:]

    def read_until(self, pred, timeout):
        import time
        deadline = time.monotonic() + timeout
        while not pred(self) and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                self.eof = True
                break
            if not chunk:
                self.eof = True
                break
            self.buf += chunk
            self._parse()
        return pred(self)

    def of_type(self, ftype):
        return [f for f in self.frames if f[0] == ftype]
