"""Proxying over TLS (HTTP/1.1 and HTTP/2): routing, actions, limits, forwarded headers, errors, TLS details."""
import concurrent.futures
import http.client
import json
import re
import ssl
import subprocess
import time

import pytest

from conftest import SLOW, h1_raw, module_ficus, tls_connect

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls:
        certificates:
          - { cert: "$cert", key: "$key" }
          - { cert: "$other_cert", key: "$other_key" }
        min_version: TLSv1.2
        hsts: 1d
    - address: "127.0.0.1:$plain_port"
      redirect_https: $tls_port
    - address: "127.0.0.1:$http_port"
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  request_id_in_response: true
  log_level: info
  limits:
    max_header_bytes: 8KiB
    max_body_bytes: 64KiB
  timeouts: { handshake: 10s, idle: 60s }
  drain_timeout: 2s
  trusted_proxies: []

upstreams:
  a: { endpoints: ["http://$echo_a"] }
  b: { endpoints: ["http://$echo_b"] }
  c: { endpoints: ["http://$echo_c"] }
  rr: { endpoints: ["http://$echo_a", "http://$echo_b"] }
  dead: { endpoints: ["http://$dead"], connect_timeout: 1s }
  slow: { endpoints: ["http://$echo_a"], timeout: 500ms }
  limited: { endpoints: ["http://$echo_c"], max_connections: 2, timeout: 10s }

routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong\\n", content_type: text/plain }
  - name: exact
    match: { path: /exact }
    to: b
  - name: host-exact
    match: { host: api.test, path_prefix: /h/ }
    to: b
  - name: host-wild
    match: { host: "*.wild.test", path_prefix: /h/ }
    to: c
  - name: methods
    match: { path_prefix: /m/, methods: [POST, PUT] }
    to: b
  - name: header-value
    match: { path_prefix: /hv/, headers: [{ name: X-Canary, value: "1" }] }
    to: b
  - name: header-present
    match: { path_prefix: /hp/, headers: [{ name: X-Debug }] }
    to: c
  - name: order-first
    match: { path_prefix: /order }
    to: a
  - name: order-second
    match: { path_prefix: /order/b }
    to: b
  - name: strip
    match: { path_prefix: /strip }
    strip_prefix: /strip
    to: a
  - name: strip-add
    match: { path_prefix: /sa }
    strip_prefix: /sa
    add_prefix: /v2
    to: a
  - name: preserve
    match: { path_prefix: /preserve }
    preserve_host: true
    to: a
  - name: redirect
    match: { path_prefix: /old }
    redirect: { to: "https://new.test{path}{query}", status: 301 }
  - name: redirect-host
    match: { path_prefix: /rh }
    redirect: { to: "https://{host}/moved{path}", status: 307 }
  - name: teapot
    match: { path: /teapot }
    respond: { status: 418, body: "short and stout", content_type: text/plain }
  - name: hdrs
    match: { path_prefix: /hdrs }
    headers:
      request: { set: { x-set: s1, x-over: new }, add: { x-add: a2 }, remove: [x-remove-me] }
      response: { set: { x-resp-set: r1 }, add: { x-resp-add: r2 }, remove: [x-upstream] }
    to: a
  - name: rr
    match: { path_prefix: /rr }
    to: rr
  - name: dead
    match: { path_prefix: /dead }
    to: dead
  - name: slow
    match: { path_prefix: /slow }
    to: slow
  - name: limited
    match: { path_prefix: /limited }
    to: limited
  - name: api
    match: { path_prefix: /api }
    to: a
"""


@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes):
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG)


@pytest.fixture(scope="module", params=["h1", "h2"])
def client(request, fx):
    with fx.client(http2=request.param == "h2") as c:
        c.proto = request.param
        yield c


@pytest.fixture(scope="module")
def c1(fx):
    with fx.client(http2=False) as c:
        yield c


@pytest.fixture(scope="module")
def c2(fx):
    with fx.client(http2=True) as c:
        yield c


def echo(resp):
    assert resp.status_code == 200, f"{resp.status_code} {resp.text[:500]}"
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    return resp.json()


# ---------------------------------------------------------------------------------------------------------- protocols


def test_http_versions(client):
    r = client.get("/api/v")
    assert r.http_version == ("HTTP/2" if client.proto == "h2" else "HTTP/1.1")
    e = echo(r)
    assert e["upstream"] == "a" and e["method"] == "GET" and e["path"] == "/api/v"
    assert r.headers["x-upstream"] == "a"


@pytest.mark.parametrize("flag,expected", [("--http2", "2"), ("--http1.1", "1.1")])
def test_curl_versions(fx, certs, flag, expected):
    r = subprocess.run(["curl", "-sS", flag, "--cacert", certs.ca, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                        fx.url("/api/curl")], capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{expected} 200"


@pytest.mark.parametrize("offer,chosen", [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")])
def test_alpn(fx, certs, offer, chosen):
    with tls_connect(fx.tls_port, certs.ssl_context(alpn=offer)) as s:
        assert s.selected_alpn_protocol() == chosen


@pytest.mark.parametrize("sni,san", [("localhost", "localhost"), ("other.test", "other.test")])
def test_sni_selects_certificate(fx, certs, sni, san):
    ctx = certs.ssl_context()  # verifies the chain and that the certificate matches sni
    with tls_connect(fx.tls_port, ctx, server_hostname=sni) as s:
        sans = [v for k, v in s.getpeercert()["subjectAltName"] if k == "DNS"]
    assert sans == [san]


def test_no_sni_gets_first_certificate(fx, certs):
    ctx = certs.ssl_context()
    ctx.check_hostname = False
    with tls_connect(fx.tls_port, ctx, server_hostname=None) as s:  # no SNI
        sans = [v for k, v in s.getpeercert()["subjectAltName"] if k == "DNS"]
    assert sans == ["localhost"]


def _tls_handshake(port, certs, max_version=None):
    ctx = certs.ssl_context()
    if max_version:
        ctx.maximum_version = max_version
    with tls_connect(port, ctx) as s:
        return s.version()


TLS13_ONLY = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }], min_version: TLSv1.3 }
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong", content_type: text/plain }
"""


def test_tls_min_version(fx, certs, ficus_factory):
    # fx has min_version TLSv1.2: a TLS 1.2 client is fine
    assert _tls_handshake(fx.tls_port, certs, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    f = ficus_factory(TLS13_ONLY)
    assert _tls_handshake(f.tls_port, certs) == "TLSv1.3"
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        _tls_handshake(f.tls_port, certs, ssl.TLSVersion.TLSv1_2)


def test_hsts_on_tls(client):
    r = client.get("/ping")
    assert r.headers.get("strict-transport-security") == "max-age=86400"


# ---------------------------------------------------------------------------------------------------------- routing


def test_respond_action(client):
    r = client.get("/ping")
    assert r.status_code == 200
    assert r.text == "pong\n"
    assert r.headers["content-type"].startswith("text/plain")
    r = client.get("/teapot")
    assert r.status_code == 418 and r.text == "short and stout"


def test_no_route_404_json(client):
    r = client.get("/nothing/here?x=1")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": "no_route"}


def test_exact_path(client):
    assert echo(client.get("/exact"))["upstream"] == "b"
    assert client.get("/exact/more").status_code == 404
    assert client.get("/exactly").status_code == 404


def test_path_prefix_and_query_passed(client):
    e = echo(client.get("/api/x/y?a=1&b=two"))
    assert e["path"] == "/api/x/y?a=1&b=two"


def test_host_exact(client):
    assert echo(client.get("/h/1", headers={"Host": "api.test"}))["upstream"] == "b"
    assert client.get("/h/1", headers={"Host": "other.api.test"}).status_code == 404
    assert client.get("/h/1").status_code == 404  # Host: localhost


def test_host_wildcard_suffix(client):
    assert echo(client.get("/h/1", headers={"Host": "x.wild.test"}))["upstream"] == "c"
    assert echo(client.get("/h/1", headers={"Host": "deep.x.wild.test"}))["upstream"] == "c"
    assert client.get("/h/1", headers={"Host": "notwild.test"}).status_code == 404


def test_methods(client):
    assert echo(client.post("/m/x", content=b"1"))["upstream"] == "b"
    assert echo(client.put("/m/x", content=b"1"))["upstream"] == "b"
    assert client.get("/m/x").status_code == 404
    assert client.delete("/m/x").status_code == 404


def test_header_value_match(client):
    assert echo(client.get("/hv/x", headers={"X-Canary": "1"}))["upstream"] == "b"
    assert client.get("/hv/x", headers={"X-Canary": "2"}).status_code == 404
    assert client.get("/hv/x").status_code == 404


def test_header_presence_match(client):
    assert echo(client.get("/hp/x", headers={"X-Debug": "anything"}))["upstream"] == "c"
    assert client.get("/hp/x").status_code == 404


def test_first_match_wins(client):
    assert echo(client.get("/order/b/x"))["upstream"] == "a"


def test_strip_prefix(client):
    assert echo(client.get("/strip/foo/bar?q=1"))["path"] == "/foo/bar?q=1"
    assert echo(client.get("/strip"))["path"] == "/"


def test_strip_and_add_prefix(client):
    assert echo(client.get("/sa/x?y=1"))["path"] == "/v2/x?y=1"


def test_preserve_host_off(fx, client, echoes):
    e = echo(client.get("/api/host"))
    assert e["headers"]["host"] == f"127.0.0.1:{echoes['a'].port}"
    assert e["headers"]["x-forwarded-host"] == f"localhost:{fx.tls_port}"


def test_preserve_host_on(fx, client):
    e = echo(client.get("/preserve/x"))
    assert e["headers"]["host"] == f"localhost:{fx.tls_port}"
    e = echo(client.get("/preserve/x", headers={"Host": "custom.test"}))
    assert e["headers"]["host"] == "custom.test"


def test_redirect_action(client):
    r = client.get("/old/x/y?a=b&c=d")
    assert r.status_code == 301
    assert r.headers["location"] == "https://new.test/old/x/y?a=b&c=d"
    r = client.get("/old/z")
    assert r.status_code == 301
    assert r.headers["location"] == "https://new.test/old/z"


def test_redirect_host_placeholder(fx, client):
    r = client.get("/rh/p?q=1", headers={"Host": "shop.test"})
    assert r.status_code == 307
    assert r.headers["location"] == "https://shop.test/moved/rh/p"


# ---------------------------------------------------------------------------------------------------------- bodies


def test_post_body_reaches_upstream(client):
    e = echo(client.post("/api/post", content=b"hello world", headers={"Content-Type": "text/plain"}))
    assert e["method"] == "POST"
    assert e["body"] == "hello world"


def test_post_body_near_limit(client):
    body = ("0123456789abcdef" * 3800).encode()  # 60,800 bytes < 64KiB
    e = echo(client.post("/api/big", content=body))
    assert e["body"] == body.decode()


def test_chunked_request_body(c1):
    def gen():
        for i in range(5):
            yield f"part{i};".encode()

    e = echo(c1.post("/api/chunked", content=gen()))
    assert e["body"] == "part0;part1;part2;part3;part4;"


def test_body_over_limit_refused_before_upstream(fx, certs, client):
    """What real clients see when uploading more than max_body_bytes while still sending: H2O 2.2.5 refuses the body
    before ficus runs. HTTP/1.1 answers 413 and closes (a client still uploading may see the reset first); HTTP/2
    refuses the stream (RST_STREAM REFUSED_STREAM). This is documented in the README (Limits); either way the body
    never reaches an upstream, and the connection-level behaviour is the library's, not a crash."""
    import httpx
    try:
        r = client.post("/api/huge", content=b"x" * (4 * 1024 * 1024))
        assert r.status_code == 413
    except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
        pass
    assert not [e for e in fx.access_log() if e.get("path") == "/api/huge" and e.get("upstream")], "body reached an upstream"
    # ficus itself is fine and keeps serving
    with fx.client(http2=False) as c2:
        assert c2.get("/api/after-huge").status_code == 200


def test_body_over_limit_413_with_expect_continue(fx, certs):
    """A client that asks first (Expect: 100-continue, as curl does for large bodies) gets the 413 before uploading."""
    import subprocess
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", certs.ca, "--http1.1",
                          "-H", "Expect: 100-continue", "--data-binary", "@-", f"https://localhost:{fx.tls_port}/api/huge"],
                         input=b"x" * (4 * 1024 * 1024), capture_output=True, timeout=30)
    assert out.stdout == b"413", out


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_over_limit_413_raw_h1(fx, certs, framing):
    """The 413 itself, read by a client that sends the whole request (it fits in socket buffers) before reading."""
    body = b"x" * (200 * 1024)
    if framing == "chunked":
        head = "Transfer-Encoding: chunked\r\n"
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 16384]), body[i:i + 16384])
                           for i in range(0, len(body), 16384)) + b"0\r\n\r\n"
    else:
        head = f"Content-Length: {len(body)}\r\n"
        payload = body
    req = f"POST /api/huge HTTP/1.1\r\nHost: localhost:{fx.tls_port}\r\n{head}\r\n".encode() + payload
    with tls_connect(fx.tls_port, certs.ssl_context(alpn=["http/1.1"])) as s:
        try:
            s.sendall(req)
        except OSError:
            pass  # the server may stop reading once it has answered
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except OSError as e:
            pytest.fail(f"{e!r} before a complete response head; got {buf!r}")
    assert buf.startswith(b"HTTP/1.1 413 "), buf[:200]


def test_response_body_streamed(client):
    r = client.get("/api/_bytes/300000")
    assert r.status_code == 200
    assert len(r.content) == 300000 and r.content == b"x" * 300000


def test_upstream_status_passed_through(client):
    r = client.get("/api/_status/418")
    assert r.status_code == 418
    assert r.json()["upstream"] == "a"


# ---------------------------------------------------------------------------------------------------------- headers


def test_headers_within_limit_ok(client):
    assert client.get("/api/h", headers={"X-Big": "v" * 4000}).status_code == 200


def test_headers_over_limit_431(client):
    r = client.get("/api/h", headers={"X-Big": "v" * (10 * 1024)})
    assert r.status_code == 431


def test_x_forwarded_for_spoofing_dropped(client):
    e = echo(client.get("/api/xff", headers={"X-Forwarded-For": "6.6.6.6"}))
    assert e["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_x_forwarded_proto_https(client):
    e = echo(client.get("/api/xfp", headers={"X-Forwarded-Proto": "gopher"}))
    assert e["headers"]["x-forwarded-proto"] == "https"


def test_x_forwarded_host(fx, client):
    e = echo(client.get("/api/xfh", headers={"Host": "example.test", "X-Forwarded-Host": "evil.test"}))
    assert e["headers"]["x-forwarded-host"] == "example.test"


HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_request_id_generated(client):
    r = client.get("/api/rid")
    e = echo(r)
    rid = e["headers"].get("x-request-id", "")
    assert HEX32.match(rid), rid
    assert r.headers.get("x-request-id") == rid
    e2 = echo(client.get("/api/rid"))
    assert e2["headers"]["x-request-id"] != rid


def test_request_id_kept_when_valid(client):
    rid = "Abc-123_x.y"
    r = client.get("/api/rid", headers={"X-Request-Id": rid})
    assert echo(r)["headers"]["x-request-id"] == rid
    assert r.headers.get("x-request-id") == rid


@pytest.mark.parametrize("bad", ["has space", "semi;colon", "a/b", "x" * 129])
def test_request_id_replaced_when_invalid(client, bad):
    r = client.get("/api/rid", headers={"X-Request-Id": bad})
    rid = echo(r)["headers"]["x-request-id"]
    assert HEX32.match(rid), rid
    assert r.headers.get("x-request-id") == rid


def test_hop_by_hop_not_forwarded(fx, certs):
    req = (f"GET /api/hop HTTP/1.1\r\nHost: localhost:{fx.tls_port}\r\n"
           "Connection: keep-alive, X-Foo\r\nX-Foo: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
           "Proxy-Connection: keep-alive\r\nTrailer: X-T\r\nX-Bar: 2\r\n\r\n").encode()
    status, _, body = h1_raw(fx.tls_port, req, ca=certs.ca)
    assert status == 200, body
    h = json.loads(body)["headers"]
    assert h.get("x-bar") == "2"
    for name in ("x-foo", "keep-alive", "te", "proxy-connection", "trailer", "upgrade"):
        assert name not in h, f"{name} forwarded: {h}"
    assert "x-foo" not in h.get("connection", "").lower()


def test_headers_plugin(client):
    r = client.get("/hdrs/x", headers={"X-Over": "old", "X-Add": "a1", "X-Remove-Me": "1", "X-Keep": "k"})
    e = echo(r)
    h = e["headers"]
    assert h["x-set"] == "s1"
    assert h["x-over"] == "new"
    assert h["x-add"] == "a1, a2"
    assert "x-remove-me" not in h
    assert h["x-keep"] == "k"
    assert r.headers.get("x-resp-set") == "r1"
    assert r.headers.get("x-resp-add") == "r2"
    assert "x-upstream" not in r.headers
    # other routes are untouched by this route's plugin
    r = client.get("/api/x", headers={"X-Remove-Me": "1"})
    assert echo(r)["headers"].get("x-remove-me") == "1" and "x-resp-set" not in r.headers


# ---------------------------------------------------------------------------------------------------------- upstreams


def test_round_robin(c1):
    seen = [echo(c1.get(f"/rr/{i}"))["upstream"] for i in range(12)]
    assert seen.count("a") >= 4 and seen.count("b") >= 4, seen


def test_upstream_down_502(client):
    r = client.get("/dead/x")
    assert r.status_code == 502
    assert r.json() == {"error": "bad_gateway"}


def test_upstream_closes_502(client):
    r = client.get("/api/_close")
    assert r.status_code == 502
    assert r.json() == {"error": "bad_gateway"}


def test_upstream_timeout_504(client):
    t0 = time.monotonic()
    r = client.get("/slow/_sleep/2500")
    took = time.monotonic() - t0
    assert r.status_code == 504
    assert r.json() == {"error": "gateway_timeout"}
    assert 0.4 <= took < 0.5 + 1.8 * SLOW, f"took {took:.2f}s with a 500ms upstream timeout"


def test_fast_enough_under_timeout(client):
    assert client.get("/slow/_sleep/100").status_code == 200


def test_max_connections_503(fx):
    def one(_):
        with fx.client(http2=False) as c:
            r = c.get("/limited/_sleep/1500")
            return r.status_code, r.content

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(one, range(6)))
    codes = sorted(c for c, _ in results)
    assert set(codes) <= {200, 503}, codes
    assert codes.count(503) >= 1 and 1 <= codes.count(200) <= 2, codes
    for code, body in results:
        if code == 503:
            assert json.loads(body) == {"error": "upstream_overloaded"}


# ---------------------------------------------------------------------------------------------------------- plain listeners


def test_plain_listener_redirects_to_https(fx):
    for method in ("GET", "POST"):
        conn = http.client.HTTPConnection("127.0.0.1", fx.port("plain"), timeout=10 * SLOW)
        conn.request(method, "/foo/bar?x=1&y=2", body=b"" if method == "POST" else None,
                     headers={"Host": f"localhost:{fx.port('plain')}"})
        r = conn.getresponse()
        r.read()
        conn.close()
        assert r.status == 308, method
        assert r.getheader("location") == f"https://localhost:{fx.tls_port}/foo/bar?x=1&y=2"


def test_plain_listener_serves_routes(fx):
    conn = http.client.HTTPConnection("127.0.0.1", fx.port("http"), timeout=10 * SLOW)
    conn.request("GET", "/api/plain", headers={"Host": "localhost"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 200
    e = json.loads(body)
    assert e["headers"]["x-forwarded-proto"] == "http"
    assert r.getheader("strict-transport-security") is None


# ---------------------------------------------------------------------------------------------------------- trusted proxies

TRUSTED = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  access_log: "off"
  trusted_proxies: [127.0.0.1/32]
upstreams:
  a: { endpoints: ["http://$echo_a"] }
routes:
  - name: all
    match: { path_prefix: / }
    to: a
"""


def test_trusted_proxy_appends(ficus_factory):
    f = ficus_factory(TRUSTED)
    with f.client(http2=True) as c:
        assert echo(c.get("/x", headers={"X-Forwarded-For": "6.6.6.6"}))["headers"]["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
        assert echo(c.get("/x"))["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_request_id_not_in_response_by_default(ficus_factory):
    """Without `request_id_in_response` the id still goes upstream (and to the access log) but not to the client."""
    f = ficus_factory(TRUSTED)
    for http2 in (False, True):
        with f.client(http2=http2) as c:
            r = c.get("/x", headers={"X-Request-Id": "keep-me"})
        assert echo(r)["headers"]["x-request-id"] == "keep-me"
        assert "x-request-id" not in r.headers, dict(r.headers)


HSTS_TWO_LISTENERS = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }], hsts: 1d }
    - address: "127.0.0.1:$tls2_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
  admin: { address: "127.0.0.1:$admin_port" }
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong" }
"""


def test_hsts_is_per_listener(ficus_factory, certs):
    """Each TLS listener sends its own HSTS setting (a listener without `hsts` sends none)."""
    import httpx
    f = ficus_factory(HSTS_TWO_LISTENERS)
    for port, want in ((f.tls_port, "max-age=86400"), (f.port("tls2"), None)):
        with httpx.Client(verify=certs.ca) as c:
            r = c.get(f"https://localhost:{port}/ping")
        assert r.status_code == 200
        assert r.headers.get("strict-transport-security") == want, port
