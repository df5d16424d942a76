#!/usr/bin/env bash
# Development certificates and keys for the demo, the tests and the benchmarks. Never for production.
#
#   certs-dev/make-certs.sh           create what is missing, or expires within 7 days
#   certs-dev/make-certs.sh --force   recreate everything
#
# Produces (all ignored by git; generated, never committed):
#   dev-ca.crt / dev-ca.key            a throw-away CA (ECDSA P-256), trust it with curl --cacert certs-dev/dev-ca.crt
#   localhost.crt / localhost.key      server certificate signed by that CA, SAN DNS:localhost, IP:127.0.0.1, IP:::1
#   dev-jwt.key / dev-jwt.pub.pem      RSA 2048 key pair for signing demo JWTs (PKCS#8 private, SPKI public)
#   dev-jwks.json                      the public key as a JWKS (kid "dev"), for the demo provider
#   sso-keys                           AES-256 key ring for SSO cookies (one 64-hex-digit key per line)
# Certificates are valid 825 days (the maximum clients accept for a leaf).
set -euo pipefail

DIR=$(cd "$(dirname "$0")" && pwd)
FORCE=0
case "${1:-}" in
    --force) FORCE=1 ;;
    "") ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac
DAYS=825
RENEW_BEFORE=$((7 * 24 * 3600)) # regenerate a certificate that expires within a week

cd "$DIR"
umask 077

cert_ok() { # file exists and is still valid for RENEW_BEFORE seconds
    [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend "$RENEW_BEFORE" >/dev/null 2>&1
}

made=0
if [ $FORCE = 1 ] || ! cert_ok dev-ca.crt || [ ! -s dev-ca.key ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out dev-ca.key
    openssl req -x509 -new -key dev-ca.key -sha256 -days "$DAYS" -subj "/O=ficus dev/CN=ficus dev CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" -out dev-ca.crt
    FORCE=1 # a new CA invalidates the leaf
    made=1
fi

if [ $FORCE = 1 ] || ! cert_ok localhost.crt || [ ! -s localhost.key ] ||
    ! openssl verify -CAfile dev-ca.crt localhost.crt >/dev/null 2>&1; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out localhost.key
    ext=$(mktemp)
    trap 'rm -f "$ext" localhost.csr' EXIT
    cat >"$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
    openssl req -new -key localhost.key -subj "/O=ficus dev/CN=localhost" -out localhost.csr
    openssl x509 -req -in localhost.csr -CA dev-ca.crt -CAkey dev-ca.key -CAcreateserial -sha256 \
        -days "$DAYS" -extfile "$ext" -out localhost.crt 2>/dev/null
    rm -f localhost.csr dev-ca.srl
    made=1
fi

if [ $FORCE = 1 ] || [ ! -s dev-jwt.key ] || [ ! -s dev-jwt.pub.pem ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dev-jwt.key 2>/dev/null
    openssl pkey -in dev-jwt.key -pubout -out dev-jwt.pub.pem
    made=1
fi

# The public half of dev-jwt.key as a JWKS (kid "dev"), for the demo's `providers.dev.jwks_file`.
if [ $FORCE = 1 ] || [ ! -s dev-jwks.json ] || [ dev-jwt.pub.pem -nt dev-jwks.json ]; then
    n_hex=$(openssl rsa -pubin -in dev-jwt.pub.pem -noout -modulus 2>/dev/null | cut -d= -f2)
    /usr/bin/python3 - "$n_hex" >dev-jwks.json <<'PY'
import base64, json, sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
n = bytes.fromhex(sys.argv[1])
print(json.dumps({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "dev", "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}]}))
PY
    made=1
fi
# Demo SSO material (used only when the demo runs an OpenID provider): an AES key ring for sealed cookies.
if [ $FORCE = 1 ] || [ ! -s sso-keys ]; then
    openssl rand -hex 32 >sso-keys
    made=1
fi

# Certificates and public keys are not secret; private keys stay 0600.
chmod 0644 dev-ca.crt localhost.crt dev-jwt.pub.pem
chmod 0600 dev-ca.key localhost.key dev-jwt.key sso-keys
chmod 0644 dev-jwks.json
openssl verify -CAfile dev-ca.crt localhost.crt >/dev/null
if [ $made = 1 ]; then
    echo "certs-dev: generated; localhost.crt valid until $(openssl x509 -in localhost.crt -noout -enddate | cut -d= -f2)"
else
    echo "certs-dev: present and valid"
fi
