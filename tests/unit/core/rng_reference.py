#!/usr/bin/env python3
"""Independent reference values for core_test.cpp's known-value RNG tests.

Written from the published algorithms, not from fedpp's code: SplitMix64 (Steele, Lea, Flood 2014;
https://prng.di.unimi.it/splitmix64.c), xoshiro256++ (Blackman & Vigna 2018;
https://prng.di.unimi.it/xoshiro256plusplus.c), Lemire's nearly divisionless bounded integers
(Lemire 2019, "Fast random integer generation in an interval", algorithm 5), and the stream key
derivation that fedpp/core/rng.hpp documents: h = mix(seed), then h = mix(h ^ mix(x + c_x)) for
x = round, client, purpose with the three documented odd constants. Python integers are exact, so
the arithmetic is done mod 2^64 explicitly. Run: python3 tests/unit/core/rng_reference.py
"""

M = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    """The SplitMix64 output function applied to z + golden gamma."""
    z = (z + GOLDEN) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def splitmix64_stream(seed, n):
    """The first n outputs of the SplitMix64 generator started at state `seed`."""
    out, state = [], seed
    for _ in range(n):
        state = (state + GOLDEN) & M
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        out.append(z ^ (z >> 31))
    return out


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class Xoshiro256pp:
    """xoshiro256++ seeded from SplitMix64 started at `key`, as fedpp::Rng documents it.

    fedpp's seeding takes outputs 2..5 of the SplitMix64 stream (its constructor advances the
    state by the golden gamma before the finaliser, which advances it once more), not 1..4.
    """

    def __init__(self, key):
        self.s = splitmix64_stream(key, 5)[1:]

    def next(self):
        s = self.s
        result = (rotl((s[0] + s[3]) & M, 23) + s[0]) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * 2.0**-53

    def uniform_index(self, n):
        m = self.next() * n
        low = m & M
        if low < n:
            threshold = ((1 << 64) - n) % n
            while low < threshold:
                m = self.next() * n
                low = m & M
        return m >> 64


def stream_key(seed, rnd, client, purpose):
    h = mix64(seed)
    h = mix64(h ^ mix64((rnd + 0x51ED270B27B1F2CB) & M))
    h = mix64(h ^ mix64((client + 0x2545F4914F6CDD1D) & M))
    h = mix64(h ^ mix64((purpose + 0x632BE59BD9B4E019) & M))
    return h


def hexes(values):
    return ", ".join(f"0x{v:016x}ULL" for v in values)


if __name__ == "__main__":
    print("splitmix64(0), first 4:", hexes(splitmix64_stream(0, 4)))
    print("mix64(0), mix64(1), mix64(~0):", hexes([mix64(0), mix64(1), mix64(M)]))
    r = Xoshiro256pp(0)
    print("Rng(0), first 4:", hexes([r.next() for _ in range(4)]))
    r = Xoshiro256pp(12345)
    print("Rng(12345), first 4:", hexes([r.next() for _ in range(4)]))
    key = stream_key(42, 3, 7, 4)
    r = Xoshiro256pp(key)
    print("make_rng(42, 3, 7, shuffle) key and first 3:", hexes([key] + [r.next() for _ in range(3)]))
    key = stream_key(1, 0, M, 3)
    r = Xoshiro256pp(key)
    print("make_rng(1, 0, server_stream, partition) first 2:", hexes([r.next() for _ in range(2)]))
    r = Xoshiro256pp(7)
    print("Rng(7).uniform() x3:", ", ".join(repr(r.uniform()) for _ in range(3)))
    r = Xoshiro256pp(7)
    n = (1 << 63) + 1  # threshold 2^63 - 1: about half of the draws are rejected
    print("Rng(7).uniform_index(2^63 + 1) x8:", hexes([r.uniform_index(n) for _ in range(8)]))
    r = Xoshiro256pp(7)
    print("Rng(7).uniform_index(10) x12:", [r.uniform_index(10) for _ in range(12)])
