"""TLS cipher policy and OCSP stapling (issue 10 item 11), checked with `openssl s_client` against listeners with an
RSA and an ECDSA certificate: by default only ECDHE + AEAD suites on TLS 1.2 (no CBC, no static RSA), configured
`tls.ciphers` / `tls.ciphersuites` / `tls.curves` apply, a certificate's `ocsp_file` is stapled."""
import datetime
import os
import subprocess

import pytest

from conftest import FICUS_BIN, SLOW

CONFIG = """\
server:
  workers: 1
  listen:
    - address: "127.0.0.1:$rsa_port"
      tls:
        certificates: [{ cert: "$rsa_cert", key: "$rsa_key"$ocsp }]
$policy
    - address: "127.0.0.1:$tls_port"
      tls:
        certificates: [{ cert: "$cert", key: "$key" }]
$policy
  access_log: off
routes:
  - name: ping
    match: { path: /ping }
    respond: { status: 200, body: "pong" }
"""


def run_openssl(*args, cwd=None, stdin=subprocess.DEVNULL):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd, stdin=stdin, timeout=30 * SLOW)


@pytest.fixture(scope="module")
def rsa(certs):
    """An RSA-2048 leaf for localhost signed by the test CA, and a good OCSP response for it."""
    d = certs.dir
    key, csr, crt, ext = (os.path.join(d, f"rsa.{x}") for x in ("key", "csr", "crt", "ext"))
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for args in (["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
                 ["x509", "-req", "-in", csr, "-CA", certs.ca, "-CAkey", certs.ca_key, "-set_serial", "4242", "-days", "30",
                  "-sha256", "-extfile", ext, "-out", crt]):
        r = run_openssl(*args, cwd=d)
        assert r.returncode == 0, r.stderr
    # OCSP: an index with the leaf as valid, a request, a response signed by the CA
    idx, req, resp = (os.path.join(d, x) for x in ("index.txt", "ocsp.req", "ocsp.der"))
    # the CA database `openssl ocsp -index` reads: one valid entry (serial 4242 = 0x1092)
    subj = run_openssl("x509", "-in", crt, "-noout", "-subject", "-nameopt", "compat", cwd=d).stdout.split("=", 1)[1].strip()
    end = run_openssl("x509", "-in", crt, "-noout", "-enddate", cwd=d).stdout.strip().split("=", 1)[1]
    end = datetime.datetime.strptime(" ".join(end.split()), "%b %d %H:%M:%S %Y %Z").strftime("%y%m%d%H%M%SZ")
    with open(idx, "w") as f:
        f.write(f"V\t{end}\t\t1092\tunknown\t{subj}\n")
    r = run_openssl("ocsp", "-issuer", certs.ca, "-cert", crt, "-reqout", req, "-no_nonce", cwd=d)
    assert r.returncode == 0, r.stderr
    r = run_openssl("ocsp", "-index", idx, "-rsigner", certs.ca, "-rkey", certs.ca_key, "-CA", certs.ca, "-reqin", req,
                    "-respout", resp, "-ndays", "7", cwd=d)
    assert r.returncode == 0, r.stderr
    return {"rsa_cert": crt, "rsa_key": key, "ocsp_der": resp}


def handshake(port, *args):
    """openssl s_client against 127.0.0.1:port: the negotiated cipher, or None when the handshake failed."""
    r = run_openssl("s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *args)
    for line in r.stdout.splitlines():
        if "Cipher is " in line:
            c = line.split("Cipher is ", 1)[1].strip()
            return None if c == "(NONE)" else c
    return None


@pytest.fixture
def start(ficus_factory, rsa):
    def make(policy="", ocsp=""):
        return ficus_factory(CONFIG, policy=policy, ocsp=ocsp, **{k: v for k, v in rsa.items() if k != "ocsp_der"})
    return make


@pytest.mark.parametrize("cipher", ["AES128-SHA", "AES256-SHA256", "AES128-GCM-SHA256", "AES256-GCM-SHA384",
                                    "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384", "DHE-RSA-AES128-GCM-SHA256"])
def test_rsa_listener_refuses_cbc_and_static_rsa(start, cipher):
    f = start()
    assert handshake(f.port("rsa"), "-tls1_2", "-cipher", cipher) is None, cipher


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256"])
def test_ecdsa_listener_refuses_cbc(start, cipher):
    f = start()
    assert handshake(f.tls_port, "-tls1_2", "-cipher", cipher) is None, cipher


def test_defaults_are_ecdhe_aead(start):
    f = start()
    assert handshake(f.port("rsa"), "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256"
    assert handshake(f.port("rsa"), "-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305") == "ECDHE-RSA-CHACHA20-POLY1305"
    assert handshake(f.tls_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384") == "ECDHE-ECDSA-AES256-GCM-SHA384"
    assert handshake(f.tls_port, "-tls1_3") in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
    # whatever the client offers, TLS 1.2 ends on an ECDHE AEAD suite
    c = handshake(f.port("rsa"), "-tls1_2", "-cipher", "ALL:@SECLEVEL=0")
    assert c is not None and c.startswith("ECDHE-") and ("GCM" in c or "CHACHA20" in c), c


def test_configured_values_apply(start):
    f = start(policy='        ciphers: "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"\n'
                     '        ciphersuites: "TLS_CHACHA20_POLY1305_SHA256"\n'
                     '        curves: "secp384r1"')
    assert handshake(f.tls_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256") is None
    assert handshake(f.tls_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384") == "ECDHE-ECDSA-AES256-GCM-SHA384"
    assert handshake(f.tls_port, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256") is None
    assert handshake(f.tls_port, "-tls1_3") == "TLS_CHACHA20_POLY1305_SHA256"
    assert handshake(f.tls_port, "-tls1_3", "-groups", "X25519") is None
    assert handshake(f.tls_port, "-tls1_3", "-groups", "secp384r1") == "TLS_CHACHA20_POLY1305_SHA256"


def ocsp_status(port):
    r = run_openssl("s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", "-status")
    return r.stdout


def test_ocsp_stapled_from_file(start, rsa):
    f = start(ocsp=f', ocsp_file: "{rsa["ocsp_der"]}"')
    out = ocsp_status(f.port("rsa"))
    assert "OCSP Response Status: successful" in out, out[-2000:]
    assert "Cert Status: good" in out, out[-2000:]
    # the other listener has no ocsp_file: nothing stapled
    assert "OCSP response: no response sent" in ocsp_status(f.tls_port)


@pytest.mark.parametrize("policy,ocsp,msg", [
    ('        ciphers: "NO-SUCH-CIPHER"', "", "no usable TLS 1.2 cipher in 'NO-SUCH-CIPHER'"),
    ('        ciphersuites: "TLS_NOPE"', "", "invalid TLS 1.3 ciphersuites 'TLS_NOPE'"),
    ('        curves: "nocurve"', "", "invalid curves 'nocurve'"),
    ("", ', ocsp_file: "$tmp/none.der"', "cannot open OCSP response"),
    ("", ', ocsp_file: "$rsa_key"', "is not a DER OCSP response"),
])
def test_bad_values_are_config_errors(tmp_path, rsa, certs, policy, ocsp, msg):
    text = (CONFIG.replace("$policy", policy).replace("$ocsp", ocsp).replace("$rsa_cert", rsa["rsa_cert"])
            .replace("$rsa_key", rsa["rsa_key"]).replace("$cert", certs.localhost[0]).replace("$key", certs.localhost[1])
            .replace("$rsa_port", "1").replace("$tls_port", "2").replace("$tmp", str(tmp_path)))
    p = tmp_path / "c.yaml"
    p.write_text(text)
    r = subprocess.run([FICUS_BIN, "-t", "-c", str(p)], capture_output=True, text=True)
    assert r.returncode != 0 and msg in r.stderr, r.stderr
    assert "c.yaml:" in r.stderr
