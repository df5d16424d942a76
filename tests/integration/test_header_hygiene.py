"""Request header hygiene at entry (issue 10 items 3, 4, 10; issue 9 item 2), black-box over real sockets against
the legacy monolith (tests/upstreams/monolith.py), which shows the headers it received and how a WSGI/CGI reader
maps them (X_User_Id and X-User-Id are both HTTP_X_USER_ID).

- obs-fold and any header with an empty name, a bad character in its name, or NUL/CR/LF in its value: 400, on
  HTTP/1.1 and HTTP/2, never forwarded (before: an empty-named header reached the upstream, ASan aborted);
- Connection-named headers are removed before any plugin sets a header, and never ficus's own;
- underscores: dropped by default, `reject` → 400, `allow` → kept, but no '_'/'-'/case variant of an identity header
  ever reaches the upstream;
- framing and Host: CL+TE, differing Content-Lengths, two Hosts → 400 (and the connection closed); no Host → no
  internal name in X-Forwarded-Host; a Host that is not an authority → 400; HTTP/2 cookie crumbs → one Cookie;
  Forwarded and X-Real-IP replaced unless the peer is trusted; `Upgrade: h2c` only when configured."""
import socket

import pytest

from conftest import module_ficus, read_h1_response
from monolith_fixtures import HS_PROVIDER, body_json, h1, h1_closes_after, h2_raw, hs_file, monolith, token  # noqa: F401 - fixtures

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
    - address: "127.0.0.1:$plain_port"
  access_log: off
$extra
""" + HS_PROVIDER + """upstreams:
  mono: { endpoints: ["http://$mono"] }
routes:
  - name: id
    match: { path_prefix: /id }
    jwt: { provider: hs, required: true, forward: { sub: x-user-id } }
    to: mono
  - name: open
    match: { path_prefix: / }
    to: mono
"""




@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes, monolith, hs_file):  # noqa: F811
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG, mono=monolith.addr, hs_file=hs_file, extra="")



def req(fx, path="/x", headers=b"", host=b"Host: localhost\r\n", version=b"HTTP/1.1", body=b""):
    return h1(fx.tls_port, fx.certs.ca, b"GET " + path.encode() + b" " + version + b"\r\n" + host + headers +
              b"Connection: close\r\n\r\n" + body)


def received(body):
    """(headers dict lower-case name -> [values], environ) as the monolith got them."""
    j = body_json(body)
    hd = {}
    for k, v in j.get("headers", []):
        hd.setdefault(k.lower(), []).append(v)
    return hd, j.get("environ", {})


# ---------------------------------------------------------------------------------------------------- 10.4 malformed


@pytest.mark.parametrize("raw,code", [
    (b"X-A: a\r\n b\r\n", "bad_header_obs_fold"),
    (b"X-A: a\r\n Transfer-Encoding: chunked\r\n", "bad_header_obs_fold"),
    (b"X-A: a\r\n\tx\r\n", "bad_header_obs_fold"),
])
def test_h1_obs_fold_refused_and_closed(fx, raw, code):
    status, body, closed = h1_closes_after(fx.tls_port, fx.certs.ca,
                                           b"GET /x HTTP/1.1\r\nHost: localhost\r\n" + raw + b"\r\n")
    assert status == 400 and body_json(body) == {"error": code}, body
    assert closed, "the connection stayed open after a malformed head"


@pytest.mark.parametrize("name,value", [
    ("x-a", "a\x00b"), ("x-a", "a\rb"), ("x-a", "a\nb"), ("", "b"), ("x a", "b"), ("x:a", "b"), ("x\x00a", "b"),
])
def test_h2_bad_fields_never_forwarded(fx, name, value):
    kind, st, body = h2_raw(fx.tls_port, fx.certs.ca, [(":method", "GET"), (":scheme", "https"),
                                                       (":authority", "localhost"), (":path", "/x"), (name, value)])
    # H2O 2.2.5's HPACK decoder refuses most of these itself (400 "found an invalid character ..." or a reset);
    # whatever it hands over, ficus refuses: never forwarded either way
    assert kind == "reset" or st == 400, (kind, st, body)
    assert "path" not in body_json(body), body


def test_h1_nul_in_value_refused(fx):
    st, _, body = req(fx, headers=b"X-A: a\x00b\r\n")
    assert st == 400, body


# ---------------------------------------------------------------------------------------------------- 10.3 Connection


def test_connection_cannot_remove_identity_header(fx):
    st, _, body = req(fx, "/id", b"Authorization: Bearer " + token().encode() + b"\r\nConnection: x-user-id\r\n")
    assert st == 200, body
    hd, env = received(body)
    assert hd.get("x-user-id") == ["alice"], hd
    assert env.get("HTTP_X_USER_ID") == ["alice"], env


def test_connection_plus_lookalike_cannot_impersonate(fx):
    st, _, body = req(fx, "/id", b"Authorization: Bearer " + token().encode() +
                      b"\r\nConnection: x-user-id\r\nX_User_Id: admin\r\nx-user_id: admin\r\nX-USER-ID: admin\r\n")
    assert st == 200, body
    _, env = received(body)
    assert env.get("HTTP_X_USER_ID") == ["alice"], env


def test_connection_cannot_remove_forwarding_headers(fx):
    st, _, body = req(fx, "/x", b"Connection: x-forwarded-for, x-request-id, x-forwarded-proto, forwarded, x-real-ip\r\n")
    assert st == 200, body
    hd, _ = received(body)
    for h in ("x-forwarded-for", "x-request-id", "x-forwarded-proto", "forwarded", "x-real-ip"):
        assert h in hd, (h, hd)


def test_connection_named_client_header_still_hop_by_hop(fx):
    st, _, body = req(fx, "/x", b"Connection: keep-alive, X-Foo\r\nX-Foo: 1\r\nX-Bar: 2\r\nKeep-Alive: 5\r\n")
    assert st == 200, body
    hd, _ = received(body)
    assert "x-foo" not in hd and "keep-alive" not in hd and hd.get("x-bar") == ["2"], hd


# ---------------------------------------------------------------------------------------------------- 9.2 underscores


def test_underscore_headers_dropped_by_default(fx):
    st, _, body = req(fx, "/x", b"X_User_Id: admin\r\nX_Custom: 1\r\nX-Keep: 1\r\n")
    assert st == 200, body
    hd, env = received(body)
    assert "HTTP_X_USER_ID" not in env and "HTTP_X_CUSTOM" not in env, env
    assert hd.get("x-keep") == ["1"]


@pytest.mark.parametrize("variant", [b"X-User-Id", b"x-USER-id", b"X_User_Id", b"x-user_id"])
def test_identity_variants_stripped_on_open_route(fx, variant):
    st, _, body = req(fx, "/x", variant + b": admin\r\n")
    assert st == 200, body
    assert "HTTP_X_USER_ID" not in received(body)[1]


def test_underscore_reject_and_allow(ficus_factory, monolith, hs_file):  # noqa: F811
    rej = ficus_factory(CONFIG, mono=monolith.addr, hs_file=hs_file, extra="  limits: { underscore_headers: reject }")
    st, _, body = req(rej, "/x", b"X_Custom: 1\r\n")
    assert st == 400 and body_json(body) == {"error": "underscore_header"}, body
    allow = ficus_factory(CONFIG, mono=monolith.addr, hs_file=hs_file, extra="  limits: { underscore_headers: allow }")
    st, _, body = req(allow, "/id", b"Authorization: Bearer " + token().encode() +
                      b"\r\nX_Custom: 1\r\nX_User_Id: admin\r\nX_Forwarded_For: 6.6.6.6\r\n")
    assert st == 200, body
    hd, env = received(body)
    assert env.get("HTTP_X_CUSTOM") == ["1"], env
    assert env.get("HTTP_X_USER_ID") == ["alice"], env  # look-alikes of ficus's headers go whatever the setting
    assert env.get("HTTP_X_FORWARDED_FOR") == ["127.0.0.1"], env


# ---------------------------------------------------------------------------------------------------- 10.10 framing, host


@pytest.mark.parametrize("head", [
    b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
])
def test_ambiguous_framing_refused_and_closed(fx, head):
    status, body, closed = h1_closes_after(fx.tls_port, fx.certs.ca, head)
    assert status == 400 and body_json(body) == {"error": "bad_framing"}, body
    assert closed


def test_content_length_list_refused_by_h2o(fx):
    status, body, closed = h1_closes_after(fx.tls_port, fx.certs.ca, b"POST /x HTTP/1.1\r\nHost: localhost\r\n"
                                           b"Content-Length: 5, 6\r\n\r\nhello!")
    assert status == 400 and closed, body  # H2O's own "broken content-length header"


def test_identical_content_lengths_accepted(fx):
    status, body, _ = h1_closes_after(fx.tls_port, fx.certs.ca, b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
                                      b"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
    assert status == 200, body


def test_two_hosts_refused(fx):
    status, body, closed = h1_closes_after(fx.tls_port, fx.certs.ca,
                                           b"GET /x HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
    assert status == 400 and body_json(body) == {"error": "duplicate_host"}, body
    assert closed


def test_http11_without_host_refused(fx):
    st, _, body = req(fx, host=b"")
    assert st == 400 and body_json(body) == {"error": "missing_host"}, body


def test_http10_without_host_has_no_internal_name(fx):
    st, _, body = req(fx, host=b"", version=b"HTTP/1.0")
    assert st == 200, body
    hd, _ = received(body)
    assert "x-forwarded-host" not in hd, hd
    assert "listener" not in body.decode(), body


@pytest.mark.parametrize("host", [b"evil@example.com", b"a/b", b"a?b", b"a#b", b"a,b", b"localhost:99999", b"a\\b"])
def test_invalid_authority_refused(fx, host):
    st, _, body = req(fx, host=b"Host: " + host + b"\r\n")
    assert st == 400, body
    assert body_json(body) == {"error": "bad_host"}, body


def test_h2_invalid_authority_refused(fx):
    kind, st, body = h2_raw(fx.tls_port, fx.certs.ca, [(":method", "GET"), (":scheme", "https"),
                                                       (":authority", "evil@example.com"), (":path", "/x")])
    assert kind == "reset" or (st == 400 and body_json(body) == {"error": "bad_host"}), (kind, st, body)


def test_h2_cookie_crumbs_joined(fx):
    kind, st, body = h2_raw(fx.tls_port, fx.certs.ca, [(":method", "GET"), (":scheme", "https"),
                                                       (":authority", "localhost"), (":path", "/x"),
                                                       ("cookie", "a=1"), ("x-mid", "m"), ("cookie", "b=2"),
                                                       ("cookie", "c=3")])
    assert (kind, st) == ("status", 200), (kind, st, body)
    hd, _ = received(body)
    assert hd["cookie"] == ["a=1; b=2; c=3"], hd


def test_forwarded_and_real_ip_replaced_from_untrusted_peer(fx):
    st, _, body = req(fx, "/x", b"Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n")
    assert st == 200, body
    hd, _ = received(body)
    assert hd["x-real-ip"] == ["127.0.0.1"], hd
    assert hd["x-forwarded-for"] == ["127.0.0.1"], hd
    assert hd["forwarded"] == [f'for=127.0.0.1;host="localhost";proto=https'], hd
    assert "6.6.6.6" not in body.decode()


def test_forwarded_and_real_ip_kept_from_trusted_peer(ficus_factory, monolith, hs_file):  # noqa: F811
    f = ficus_factory(CONFIG, mono=monolith.addr, hs_file=hs_file, extra="  trusted_proxies: [127.0.0.1/32]")
    st, _, body = req(f, "/x", b"Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\n")
    assert st == 200, body
    hd, _ = received(body)
    assert hd["x-real-ip"] == ["6.6.6.6"], hd
    assert hd["x-forwarded-for"] == ["6.6.6.6, 127.0.0.1"], hd
    assert hd["forwarded"] == ['for=6.6.6.6, for=127.0.0.1;host="localhost";proto=https'], hd


H2C_UPGRADE = (b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")


def plain_request(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        return read_h1_response(s)


def test_h2c_upgrade_refused_by_default(fx):
    st, headers, body = plain_request(fx.port("plain"), H2C_UPGRADE)
    assert st == 200, (st, body)  # answered over HTTP/1.1, as if Upgrade were not there
    hd, _ = received(body)
    assert "upgrade" not in hd and "http2-settings" not in hd


def test_h2c_upgrade_when_configured(ficus_factory, monolith, hs_file):  # noqa: F811
    f = ficus_factory(CONFIG, mono=monolith.addr, hs_file=hs_file, extra="  http2: { h2c: true }")
    with socket.create_connection(("127.0.0.1", f.port("plain")), timeout=10) as s:
        s.sendall(H2C_UPGRADE)
        assert s.recv(4096).startswith(b"HTTP/1.1 101 ")
