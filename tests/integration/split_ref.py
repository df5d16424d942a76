"""An independent reference of ficus's split bucket mapping (gateway/split.c), written from its documented contract,
for the split and migration-drill tests: bucket = fmix64(FNV-1a-64(salt, 0x00, key)); per target
u = (fmix64(bucket ^ fmix64(FNV-1a-64 seeded with offset ^ "ficus" over the name)) >> 11 + 0.5) / 2^53 and
score = weight / -ln(u); the highest score wins (ties: the earlier target)."""
import math

_M = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def _fmix64(k):
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M
    k ^= k >> 33
    return k


def _fnv1a(h, data):
    for c in data:
        h ^= c
        h = (h * _FNV_PRIME) & _M
    return h


def bucket(salt, key):
    salt = salt.encode() if isinstance(salt, str) else salt
    key = key.encode() if isinstance(key, str) else key
    return _fmix64(_fnv1a(_fnv1a(_fnv1a(_FNV_OFFSET, salt), b"\0"), key))


def name_hash(name):
    return _fmix64(_fnv1a(_FNV_OFFSET ^ 0x6669637573, name.encode()))


def pick(targets, b):
    """targets: [(name, weight), ...] -> the name bucket b maps to."""
    best, best_score = None, 0.0
    for name, weight in targets:
        if weight == 0:
            continue
        u = ((_fmix64(b ^ name_hash(name)) >> 11) + 0.5) / 9007199254740992.0
        score = weight / -math.log(u)
        if best is None or score > best_score:
            best, best_score = name, score
    return best


def side(salt, key, targets):
    return pick(targets, bucket(salt, key))
