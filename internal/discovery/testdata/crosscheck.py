#!/usr/bin/env python3
"""Independent check of the mmogit advertisement test vectors.

Written from docs/advertisement.md alone, with the Python 3 standard
library: Ed25519 is the pure-Python reference code of RFC 8032 section 6,
the onion address follows rend-spec-v3 section 6. For every vector in the
given vectors.json it derives the key from the seed, builds the signing
bytes, signs, builds the canonical record and compares all three with the
file; it also verifies the file's signature and checks that the record,
parsed with the json module (exact integers), re-encodes to itself.

Usage: python3 crosscheck.py testdata/vectors.json   (exit status 1 on any mismatch)
"""

import base64
import datetime
import hashlib
import json
import struct
import sys

# --- Ed25519, RFC 8032 section 6 -------------------------------------------

p = 2**255 - 19
q = 2**252 + 27742317777372353535851937790883648493


def sha512(s):
    return hashlib.sha512(s).digest()


def modp_inv(x):
    return pow(x, p - 2, p)


d = -121665 * modp_inv(121666) % p
modp_sqrt_m1 = pow(2, (p - 1) // 4, p)


def sha512_modq(s):
    return int.from_bytes(sha512(s), "little") % q


def point_add(P, Q):
    A, B = (P[1] - P[0]) * (Q[1] - Q[0]) % p, (P[1] + P[0]) * (Q[1] + Q[0]) % p
    C, D = 2 * P[3] * Q[3] * d % p, 2 * P[2] * Q[2] % p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F, G * H, F * G, E * H)


def point_mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = point_add(Q, P)
        P = point_add(P, P)
        s >>= 1
    return Q


def point_equal(P, Q):
    if (P[0] * Q[2] - Q[0] * P[2]) % p != 0:
        return False
    if (P[1] * Q[2] - Q[1] * P[2]) % p != 0:
        return False
    return True


def recover_x(y, sign):
    if y >= p:
        return None
    x2 = (y * y - 1) * modp_inv(d * y * y + 1)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p != 0:
        x = x * modp_sqrt_m1 % p
    if (x * x - x2) % p != 0:
        return None
    if (x & 1) != sign:
        x = p - x
    return x


g_y = 4 * modp_inv(5) % p
g_x = recover_x(g_y, 0)
G = (g_x, g_y, 1, g_x * g_y % p)


def point_compress(P):
    zinv = modp_inv(P[2])
    x = P[0] * zinv % p
    y = P[1] * zinv % p
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def point_decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % p)


def secret_expand(secret):
    h = sha512(secret)
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def secret_to_public(secret):
    a, _ = secret_expand(secret)
    return point_compress(point_mul(a, G))


def sign(secret, msg):
    a, prefix = secret_expand(secret)
    A = point_compress(point_mul(a, G))
    r = sha512_modq(prefix + msg)
    Rs = point_compress(point_mul(r, G))
    h = sha512_modq(Rs + A + msg)
    s = (r + h * a) % q
    return Rs + int.to_bytes(s, 32, "little")


def verify(public, msg, signature):
    A = point_decompress(public)
    R = point_decompress(signature[:32])
    if A is None or R is None or len(signature) != 64:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= q:
        return False
    h = sha512_modq(signature[:32] + public + msg)
    return point_equal(point_mul(s, G), point_add(R, point_mul(h, A)))


# --- mmogit advertisement, docs/advertisement.md ---------------------------

CONTEXT = b"mmogit/advertisement/v1\x00"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def onion_address(pub):
    checksum = hashlib.sha3_256(b".onion checksum" + pub + b"\x03").digest()[:2]
    return base64.b32encode(pub + checksum + b"\x03").decode("ascii").lower() + ".onion"


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def field(b):
    return u32(len(b)) + b


def signing_bytes(pub, onion, services, addrs, seq, ts, ex):
    out = CONTEXT + field(pub) + field(onion.encode("ascii"))
    out += u32(len(services)) + b"".join(field(s.encode("ascii")) for s in services)
    out += u32(len(addrs)) + b"".join(field(a.encode("ascii")) for a in addrs)
    return out + u64(seq) + u64(ts) + u64(ex)


def unix(ts):
    return int(datetime.datetime.strptime(ts, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc).timestamp())


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(TIME_FORMAT)


def strings(items):
    for s in items:
        # No string of a valid advertisement needs a JSON escape.
        assert all(0x21 <= ord(c) <= 0x7E and c not in '"\\<>&' for c in s), s
    return "[" + ",".join('"%s"' % s for s in items) + "]"


def canonical(pub, onion, services, addrs, seq, ts, ex, sig):
    return (
        '{"pubkey":"%s","onion_address":"%s","services":%s,"addrs":%s,"seq":%d,'
        '"timestamp":"%s","expires":"%s","signature":"%s"}'
        % (pub.hex(), onion, strings(services), strings(addrs), seq, rfc3339(ts), rfc3339(ex), sig.hex())
    )


def check(v):
    problems = []
    seed = bytes.fromhex(v["seed_hex"])
    pub = secret_to_public(seed)
    onion = onion_address(pub)
    services = sorted(set(v["services"]))
    ts = unix(v["now"])
    ex = ts + v["ttl_seconds"]
    msg = signing_bytes(pub, onion, services, v["addrs"], v["seq"], ts, ex)
    sig = sign(seed, msg)
    record = canonical(pub, onion, services, v["addrs"], v["seq"], ts, ex, sig)
    for what, got, want in [
        ("signing bytes", msg.hex(), v["signing_bytes_hex"]),
        ("signature", sig.hex(), v["signature_hex"]),
        ("record", record, v["record"]),
    ]:
        if got != want:
            problems.append("%s:\n  computed %s\n  file     %s" % (what, got, want))
    if not verify(pub, bytes.fromhex(v["signing_bytes_hex"]), bytes.fromhex(v["signature_hex"])):
        problems.append("the file's signature does not verify")
    r = json.loads(v["record"])  # Python's json keeps integers exact
    again = canonical(bytes.fromhex(r["pubkey"]), r["onion_address"], r["services"], r["addrs"], r["seq"],
                      unix(r["timestamp"]), unix(r["expires"]), bytes.fromhex(r["signature"]))
    if again != v["record"]:
        problems.append("record does not re-encode to itself:\n  %s" % again)
    return problems


def main():
    with open(sys.argv[1]) as f:
        vectors = json.load(f)
    failed = False
    for v in vectors:
        problems = check(v)
        print("%s: %s" % (v["name"], "ok" if not problems else "MISMATCH"))
        for pr in problems:
            print("  " + pr)
        failed = failed or bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
