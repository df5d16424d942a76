"""One canonical path for everything (issue 10 item 1): route matching, plugins, redirects and the upstream request
see the same path, and what cannot be made unambiguous is refused with 400 (README "Request paths").

Against a JWT-protected /admin and an open / on a legacy monolith (tests/upstreams/monolith.py) that normalises
differently (raw-prefix routing and full decoding): no confusing spelling reaches its /admin handler without a
token, over HTTP/1.1 and HTTP/2; with a token the canonical spelling does, and the upstream sees "/admin"."""
import pytest

from conftest import module_ficus
from monolith_fixtures import HS_PROVIDER, body_json, h1, h2_raw, hs_file, monolith, token  # noqa: F401 - fixtures

CONFIG = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls: { certificates: [{ cert: "$cert", key: "$key" }] }
    - address: "127.0.0.1:$redir_port"
      redirect_https: 443
  access_log: off
$paths
""" + HS_PROVIDER + """upstreams:
  mono: { endpoints: ["http://$mono"] }
  echo: { endpoints: ["http://$echo_a"] }
routes:
  - name: admin
    match: { path_prefix: /admin }
    jwt: { provider: hs, required: true, forward: { sub: x-user-id } }
    to: mono
  - name: moved
    match: { path_prefix: /old }
    redirect: { to: "https://new.test{path}{query}", status: 308 }
  - name: strip
    match: { path_prefix: /strip }
    strip_prefix: /strip
    to: echo
  - name: echo
    match: { path_prefix: /echo }
    to: echo
  - name: open
    match: { path_prefix: / }
    to: mono
"""


# (target, expected status without a token, error code or None)
ATTACKS = [
    ("//admin", 401, None),
    ("///admin//", 401, None),
    ("/%2fadmin", 400, "bad_path_escaped_slash"),
    ("/%2Fadmin", 400, "bad_path_escaped_slash"),
    ("/%5cadmin", 400, "bad_path_escaped_slash"),
    ("/\\admin", 400, "bad_path_escaped_slash"),
    ("/admin;x", 400, "bad_path_parameter"),
    ("/admin;jsessionid=1/x", 400, "bad_path_parameter"),
    ("/admin#x", 400, "bad_path_fragment"),
    ("/admin%20", 400, "bad_path_character"),
    ("/admin%09", 400, "bad_path_character"),
    ("/admin%00", 400, "bad_path_character"),
    ("/admin/x/..%2f..%2fpublic", 400, "bad_path_escaped_slash"),
    ("/public/../admin", 401, None),
    ("/public/%2e%2e/admin", 401, None),
    ("/public/.%2E/admin/", 401, None),
    ("/%61dmin", 401, None),
    ("/./admin", 401, None),
    ("/admin?x=1#y", 400, "bad_path_fragment"),
]



@pytest.fixture(scope="module")
def fx(request, tmp_path_factory, certs, echoes, monolith, hs_file):  # noqa: F811
    return module_ficus(request, tmp_path_factory, certs, echoes, CONFIG, mono=monolith.addr, hs_file=hs_file, paths="")



def get1(fx, target, tok=None, extra=b""):
    auth = b"Authorization: Bearer " + tok.encode() + b"\r\n" if tok else b""
    return h1(fx.tls_port, fx.certs.ca,
              b"GET " + target.encode() + b" HTTP/1.1\r\nHost: localhost\r\n" + auth + extra + b"Connection: close\r\n\r\n")


@pytest.mark.parametrize("target,status,code", ATTACKS)
def test_h1_confusing_paths_never_reach_admin_without_token(fx, target, status, code):
    st, _, body = get1(fx, target)
    j = body_json(body)
    assert not j.get("admin"), f"{target!r} reached the monolith's admin handler: {j}"
    assert st == status, (target, st, body)
    if code:
        assert j == {"error": code}, body


@pytest.mark.parametrize("target,status,code", [a for a in ATTACKS if a[1] == 401])
def test_h1_canonical_spellings_reach_admin_with_token(fx, target, status, code):
    st, _, body = get1(fx, target, token())
    j = body_json(body)
    assert st == 200 and j["admin"], (target, st, body)
    assert j["path"] in ("/admin", "/admin/"), j["path"]  # the upstream sees the canonical path only


@pytest.mark.parametrize("path,code", [
    ("/admin\t", "bad_path_character"),
    ("/admin x", "bad_path_character"),
    ("//admin", None),
    ("/%2fadmin", "bad_path_escaped_slash"),
    ("/admin;x", "bad_path_parameter"),
    ("/admin%20", "bad_path_character"),
    ("/admin/x/..%2f..%2fpublic", "bad_path_escaped_slash"),
])
def test_h2_path_with_whitespace_or_confusion_refused(fx, path, code):
    kind, st, body = h2_raw(fx.tls_port, fx.certs.ca,
                            [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", path)])
    j = body_json(body)
    assert not j.get("admin"), f"{path!r} reached the monolith's admin handler: {j}"
    if code is None:
        assert (kind, st) == ("status", 401), (kind, st, body)
    elif kind == "status":  # H2O may refuse some of these itself (a stream reset): never forwarded either way
        assert st == 400 and j == {"error": code}, (st, body)


def test_query_kept_as_sent_but_checked(fx):
    st, _, body = get1(fx, "/echo/a/../b?x=%2f&y=a/../b")
    assert st == 200
    assert body_json(body)["path"] == "/echo/b?x=%2f&y=a/../b"


def test_non_ascii_and_unsafe_bytes_percent_encoded_upstream(fx):
    st, _, body = h1(fx.tls_port, fx.certs.ca,
                     b"GET /echo/caf\xc3\xa9/%7euser/a%3bb HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert st == 200, body
    assert body_json(body)["path"] == "/echo/caf%C3%A9/~user/a%3Bb"


def test_strip_prefix_works_on_canonical_path(fx):
    st, _, body = get1(fx, "//strip//x/./y")
    assert st == 200, body
    assert body_json(body)["path"] == "/x/y"


def test_redirect_uses_canonical_path(fx):
    st, headers, _ = get1(fx, "/old//a/../b?q=1")
    assert st == 308
    assert dict(headers)["location"] == "https://new.test/old/b?q=1"


def test_redirect_listener_uses_canonical_path(fx):
    import socket
    with socket.create_connection(("127.0.0.1", fx.port("redir"))) as s:
        s.sendall(b"GET //a/%2e%2e/b HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        from conftest import read_h1_response
        st, headers, _ = read_h1_response(s)
    assert st == 308
    assert dict(headers)["location"] == "https://localhost/b"


@pytest.mark.parametrize("paths,target,status,upstream_path", [
    ("  paths: { escaped_slashes: decode }", "/%2fadmin", 401, None),
    ("  paths: { escaped_slashes: decode }", "/echo/x/..%2f..%2fy", 200, "/y"),
    ("  paths: { escaped_slashes: keep }", "/echo/a%2fb", 200, "/echo/a%2Fb"),
    ("  paths: { escaped_slashes: keep }", "/echo/x/..%2f..%2fy", 200, "/echo/x/..%2F..%2Fy"),
    ("  paths: { merge_slashes: false }", "/echo//a", 200, "/echo//a"),
    ("  paths: { merge_slashes: false }", "/echo//a/../b", 200, "/echo//b"),
])
def test_paths_settings(ficus_factory, monolith, hs_file, paths, target, status, upstream_path):  # noqa: F811
    f = ficus_factory(CONFIG, mono=monolith.addr, hs_file=hs_file, paths=paths)
    st, _, body = get1(f, target)
    assert st == status, body
    if upstream_path:
        assert body_json(body)["path"] == upstream_path


def test_route_paths_must_be_canonical(tmp_path, certs):
    import subprocess
    from conftest import FICUS_BIN
    for bad, msg in [("/a//b", "not in canonical form (write '/a/b'"), ("/%7euser", "write '/~user'"),
                     ("/a;b", "can never match"), ("/a/../b", "write '/b'")]:
        p = tmp_path / "c.yaml"
        p.write_text(f"server:\n  listen: [{{ address: \"127.0.0.1:1\" }}]\nroutes:\n  - name: r\n    match: {{ path_prefix: \"{bad}\" }}\n"
                     "    respond: { status: 200 }\n")
        r = subprocess.run([FICUS_BIN, "-t", "-c", str(p)], capture_output=True, text=True)
        assert r.returncode != 0 and msg in r.stderr, (bad, r.stderr)
        assert "c.yaml:5:" in r.stderr, r.stderr
