#!/usr/bin/python3
"""Keys, JWKS and tokens for loadtest/bench-features.sh (python3-jwcrypto).

    mint_tokens.py DIR [--count N] [--iss I] [--aud A]

Writes into DIR (reused while DIR/stamp is younger than a day and matches the arguments):
  rs.key / rs.pub.pem   RSA 2048 (kid "rs", RS256); rs.pub.pem is what haproxy's jwt_verify reads
  es.key                P-256 (kid "es", ES256)
  ed.key                Ed25519 (kid "ed", EdDSA)
  jwks.json             the three public keys (the benchmark provider's jwks_file)
  warm-rs.txt           one RS256 token (the warm-cache runs send it on every request)
  miss-{rs,es,ed}.txt   N distinct valid tokens each (distinct sub/jti), one per line: every request a new token
  bad-{rs,es,ed}.txt    one forged token each: a real kid and a valid header, a different payload, the original
                        signature (rejected as bad_signature after a full signature verification)
  malformed.txt         a two-segment token (rejected before any signature work)
Tokens expire in two days.
"""
import json
import os
import sys
import time

from jwcrypto import jwk, jws
from jwcrypto.common import base64url_encode, json_encode


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    out = args[0]
    count, iss, aud = 30000, "https://bench.ficus.test/", "api://ficus-bench"
    i = 1
    while i < len(args):
        if args[i] == "--count":
            count = int(args[i + 1])
        elif args[i] == "--iss":
            iss = args[i + 1]
        elif args[i] == "--aud":
            aud = args[i + 1]
        else:
            sys.exit("mint_tokens: unknown argument " + args[i])
        i += 2
    os.makedirs(out, exist_ok=True)
    stamp_path = os.path.join(out, "stamp")
    want = json.dumps({"count": count, "iss": iss, "aud": aud})
    try:
        with open(stamp_path) as f:
            stamp = json.load(f)
        if stamp["args"] == want and time.time() - stamp["made"] < 86400:
            print(f"mint_tokens: reusing {out} (made {int(time.time() - stamp['made'])} s ago)", file=sys.stderr)
            return
    except (OSError, ValueError, KeyError):
        pass

    keys = {
        "rs": ("RS256", jwk.JWK.generate(kty="RSA", size=2048, kid="rs", alg="RS256", use="sig")),
        "es": ("ES256", jwk.JWK.generate(kty="EC", crv="P-256", kid="es", alg="ES256", use="sig")),
        "ed": ("EdDSA", jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed", alg="EdDSA", use="sig")),
    }
    for kid, (_, key) in keys.items():
        with open(os.path.join(out, kid + ".key"), "wb") as f:
            f.write(key.export_to_pem(private_key=True, password=None))
    with open(os.path.join(out, "rs.pub.pem"), "wb") as f:
        f.write(keys["rs"][1].export_to_pem())
    with open(os.path.join(out, "jwks.json"), "w") as f:
        f.write(json.dumps({"keys": [json.loads(k.export_public()) for _, k in keys.values()]}))

    now = int(time.time())

    def token(kid, n):
        alg, key = keys[kid]
        claims = {"iss": iss, "aud": aud, "sub": f"user{n}", "jti": f"{kid}-{n}", "iat": now, "exp": now + 2 * 86400,
                  "scope": "bench"}
        s = jws.JWS(json_encode(claims).encode())
        s.add_signature(key, alg=alg, protected=json_encode({"alg": alg, "typ": "JWT", "kid": kid}))
        return s.serialize(compact=True)

    def write(name, lines):
        tmp = os.path.join(out, name + ".tmp")
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, os.path.join(out, name))

    t0 = time.time()
    write("warm-rs.txt", [token("rs", 0)])
    for kid in keys:
        write(f"miss-{kid}.txt", [token(kid, n) for n in range(1, count + 1)])
        h, _, sig = token(kid, 0).split(".")
        forged = base64url_encode(json_encode({"iss": iss, "aud": aud, "sub": "mallory", "iat": now,
                                                "exp": now + 2 * 86400, "scope": "bench admin"}))
        write(f"bad-{kid}.txt", [f"{h}.{forged}.{sig}"])
    write("malformed.txt", [token("rs", 0).rsplit(".", 1)[0]])
    with open(stamp_path, "w") as f:
        json.dump({"args": want, "made": time.time()}, f)
    print(f"mint_tokens: {3 * count + 5} tokens in {time.time() - t0:.0f} s into {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
