#!/usr/bin/env python3
"""Holds N idle TLS connections to a gateway (loadtest/bench-memory.sh): each does one request (HTTP/1.1 keep-alive,
or HTTP/2 with its SETTINGS exchange) and then stays open, idle. Prints "ready" once all are open, waits for a line on
stdin, closes them all and prints "closed". Sources come from --source (e.g. 127.0.0.3) so that many connections fit in
the ephemeral port range."""
import argparse
import resource
import socket
import ssl
import sys

import h2.config
import h2.connection

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--n", type=int, required=True)
ap.add_argument("--proto", choices=["h1", "h2"], required=True)
ap.add_argument("--source", default="127.0.0.1")
a = ap.parse_args()
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2"] if a.proto == "h2" else ["http/1.1"])
socks = []
for i in range(a.n):
    raw = socket.create_connection(("127.0.0.1", a.port), timeout=30, source_address=(a.source, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    if a.proto == "h2":
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "localhost")],
                       end_stream=True)
        s.sendall(c.data_to_send())
        got = b""
        while b"hello" not in got:  # the response (DATA "hello\n") arrived: the request is complete
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"connection {i} closed by the gateway")
            got += chunk
    else:
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        got = b""
        while not got.endswith(b"hello\n"):
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"connection {i} closed by the gateway")
            got += chunk
    socks.append(s)
print("ready", flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
print("closed", flush=True)
