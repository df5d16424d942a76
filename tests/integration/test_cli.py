"""Command line: -t (config check) with FILE:LINE errors, --help, --version, and every conf/*.yaml checks OK."""
import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import FICUS_BIN, SLOW, SOURCE_DIR, free_port

GOOD = """\
server:
  workers: 2
  listen:
    - address: "127.0.0.1:$tls_port"
      tls:
        certificates:
          - cert: "$cert"
            key: "$key"
        min_version: TLSv1.2
        hsts: 1d
    - address: "127.0.0.1:$plain_port"
      redirect_https: $tls_port
  admin: { address: "127.0.0.1:$admin_port" }
  access_log: stdout
  log_level: info
  limits:
    max_header_bytes: 16KiB
    max_body_bytes: 1MiB
  timeouts:
    handshake: 10s
    idle: 60s
  drain_timeout: 5s
  trusted_proxies: [10.0.0.0/8]
upstreams:
  app:
    endpoints: ["http://127.0.0.1:9000"]
    connect_timeout: 1s
    timeout: 30s
    max_connections: 100
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong\\n", content_type: text/plain }
  - name: moved
    match: { path_prefix: /old }
    redirect: { to: "https://example.com{path}{query}", status: 308 }
  - name: app
    match: { path_prefix: / }
    to: app
"""

# (id, [(old, new), ...]) applied to GOOD; lines marked "#<" are the acceptable error lines.
BAD = [
    ("unknown-key", [("    timeout: 30s\n", "    tmeout: 30s  #<\n")]),
    ("unknown-top-level-key", [("routes:\n", "routez: []  #<\nroutes:\n")]),
    ("wrong-type-mapping-for-sequence", [("  trusted_proxies: [10.0.0.0/8]\n", "  trusted_proxies: { a: b }  #<\n")]),
    ("wrong-type-int", [("    max_connections: 100\n", "    max_connections: many  #<\n")]),
    ("wrong-type-sequence-for-mapping", [("  limits:\n    max_header_bytes: 16KiB\n    max_body_bytes: 1MiB\n",
                                          "  limits: [16KiB, 1MiB]  #<\n")]),
    ("bad-duration", [("    connect_timeout: 1s\n", "    connect_timeout: 10x  #<\n")]),
    ("bad-duration-idle", [("    idle: 60s\n", "    idle: soon  #<\n")]),
    ("bad-size", [("    max_body_bytes: 1MiB\n", "    max_body_bytes: 1 lot  #<\n")]),
    ("unknown-upstream", [("    to: app\n", "    to: nowhere  #<\n")]),
    ("duplicate-route-name", [("  - name: moved\n", "  - name: ping  #<\n")]),
    ("two-actions", [("  - name: moved\n    match: { path_prefix: /old }\n",
                      "  - name: moved  #<\n    match: { path_prefix: /old }\n    to: app  #<\n"),
                     ("status: 308 }\n", "status: 308 }  #<\n")]),
    ("no-action", [("    respond: { status: 200, body: \"pong\\n\", content_type: text/plain }\n", ""),
                   ("  - name: ping\n", "  - name: ping  #<\n")]),
    ("missing-cert-file", [('          - cert: "$cert"\n', '          - cert: "$tmp/does-not-exist.crt"  #<\n')]),
    ("bad-redirect-status", [("status: 308 }\n", "status: 200 }  #<\n")]),
]


def render(text, certs, tmp_path):
    from string import Template
    return Template(text).substitute(
        tls_port=free_port(), plain_port=free_port(), admin_port=free_port(),
        cert=certs.localhost[0], key=certs.localhost[1], tmp=str(tmp_path))


def run_ficus(*args, cwd=None):
    return subprocess.run([FICUS_BIN, *args], capture_output=True, text=True, cwd=cwd, timeout=30 * SLOW)


def test_check_good_file(certs, tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(render(GOOD, certs, tmp_path))
    r = run_ficus("-t", "-c", str(path))
    assert r.returncode == 0, f"stdout={r.stdout!r} stderr={r.stderr!r}"
    assert f"ficus: {path}: configuration OK" in r.stdout


@pytest.mark.parametrize("case", [c[0] for c in BAD])
def test_check_bad_file_names_line(case, certs, tmp_path):
    text = GOOD
    for old, new in dict(BAD)[case]:
        assert old in text, f"test bug: {old!r} not in GOOD"
        text = text.replace(old, new, 1)
    text = render(text, certs, tmp_path)
    expected = [i + 1 for i, l in enumerate(text.splitlines()) if "#<" in l]
    assert expected
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    r = run_ficus("-t", "-c", str(path))
    numbered = "\n".join(f"{i + 1:3}: {l}" for i, l in enumerate(text.splitlines()))
    assert r.returncode == 1, f"exit {r.returncode}, stderr={r.stderr!r}\n{numbered}"
    m = re.search(r"ficus: " + re.escape(str(path)) + r":(\d+): \S", r.stderr)
    assert m, f"no 'ficus: FILE:LINE: ...' in stderr: {r.stderr!r}"
    assert int(m.group(1)) in expected, f"error names line {m.group(1)}, expected one of {expected}: {r.stderr!r}\n{numbered}"
    assert "configuration OK" not in r.stdout


def test_check_missing_file(tmp_path):
    r = run_ficus("-t", "-c", str(tmp_path / "nope.yaml"))
    assert r.returncode == 1
    assert "nope.yaml" in r.stderr


def test_help():
    r = run_ficus("--help")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "-c" in out and "-t" in out


def test_version():
    r = run_ficus("--version")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^ficus 0\.1\.0 \(h2o 2\.\d+\.\d+, OpenSSL \d", r.stdout, re.M), r.stdout


CONF_FILES = sorted(glob.glob(os.path.join(SOURCE_DIR, "conf", "*.yaml")))


def test_conf_dir_not_empty():
    assert CONF_FILES, "no conf/*.yaml"


@pytest.mark.parametrize("conf", [os.path.relpath(p, SOURCE_DIR) for p in CONF_FILES])
def test_check_repo_conf(conf, certs, tmp_path):
    """Every shipped config passes -t from the repository root (dev certs generated as make-certs.sh does)."""
    text = open(os.path.join(SOURCE_DIR, conf)).read()
    needed = sorted(set(re.findall(r"certs-dev/[\w.-]+\.(?:crt|key|pem)", text)))
    make_certs = os.path.join(SOURCE_DIR, "certs-dev", "make-certs.sh")
    cwd = SOURCE_DIR
    if needed and not all(os.path.exists(os.path.join(SOURCE_DIR, n)) for n in needed):
        if os.path.exists(make_certs):
            r = subprocess.run([make_certs], cwd=SOURCE_DIR, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, f"make-certs.sh failed: {r.stderr}"
    if not all(os.path.exists(os.path.join(SOURCE_DIR, n)) for n in needed):
        # no make-certs.sh or it does not produce these: run from a copy with the session's certificates
        cwd = str(tmp_path)
        shutil.copytree(os.path.join(SOURCE_DIR, "conf"), os.path.join(cwd, "conf"))
        for n in needed:
            os.makedirs(os.path.join(cwd, os.path.dirname(n)), exist_ok=True)
            src = certs.localhost[1] if n.endswith(".key") else certs.localhost[0]
            shutil.copy(src, os.path.join(cwd, n))
    r = run_ficus("-t", "-c", conf, cwd=cwd)
    assert r.returncode == 0, f"{conf}: exit {r.returncode}: {r.stderr}"
    assert "configuration OK" in r.stdout


RELATIVE = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$tls_port"
      tls:
        certificates:
          - cert: certs/site.crt  #<
            key: certs/site.key
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong", content_type: text/plain }
"""


def test_relative_paths_resolve_against_cwd(certs, tmp_path):
    text = render(RELATIVE, certs, tmp_path)
    conf = tmp_path / "conf.yaml"
    conf.write_text(text)
    good = tmp_path / "good"
    (good / "certs").mkdir(parents=True)
    shutil.copy(certs.localhost[0], good / "certs" / "site.crt")
    shutil.copy(certs.localhost[1], good / "certs" / "site.key")
    r = run_ficus("-t", "-c", str(conf), cwd=str(good))
    assert r.returncode == 0, r.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run_ficus("-t", "-c", str(conf), cwd=str(elsewhere))
    assert r.returncode == 1
    line = [i + 1 for i, l in enumerate(text.splitlines()) if "#<" in l][0]
    assert f"{conf}:{line}:" in r.stderr, r.stderr
