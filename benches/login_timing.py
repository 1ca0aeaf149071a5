#!/usr/bin/env python3
"""Does a failed login's timing tell whether the email exists?

Builds `latch` in release mode, starts it on a free port with a fresh data
directory (the same way as benches/load.py), creates a tenant that never
locks accounts, and sends --pairs pairs of failing logins, one after the
other: a known email with a wrong password, then an unknown email. Prints the
median and the 10th/90th percentiles of each, and the difference of the
medians, all from this one run. A timing belongs in a benchmark, not in a
pass/fail test: this machine is shared and noisy.

Usage: python3 benches/login_timing.py [--pairs 200]
Traffic goes only to 127.0.0.1 and the run stops by itself.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import OPERATOR_TOKEN, ROOT, Server, free_port  # noqa: E402

PASSWORD = "a long timing-test passphrase"


def failed_login(server, email):
    """Seconds a failing login took; it must fail with 401."""
    body = json.dumps({"email": email, "password": "not the password!"}).encode()
    request = urllib.request.Request(
        f"{server.base}/t/timing/auth/login", body, {"content-type": "application/json"}
    )
    began = time.perf_counter()
    try:
        urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as answer:
        elapsed = time.perf_counter() - began
        if answer.code != 401:
            raise SystemExit(f"expected 401, got {answer.code}")
        return elapsed
    raise SystemExit("a wrong password logged in")


def summary(samples):
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
    return statistics.median(samples) * 1000, pick(0.1), pick(0.9)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "latch-server"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as directory:
        server = Server(ROOT / "target" / "release" / "latch", Path(directory), free_port())
        server.start()
        try:
            server.post("/admin/tenants", {"id": "timing", "lockout_threshold": 0}, OPERATOR_TOKEN)
            server.post("/t/timing/admin/users", {"email": "known@example.com", "password": PASSWORD}, OPERATOR_TOKEN)
            for _ in range(10):  # warm-up: the dummy hash, caches
                failed_login(server, "known@example.com")
                failed_login(server, "nobody@example.com")
            known, unknown = [], []
            for n in range(args.pairs):
                # Alternate which goes first, so drift favours neither.
                order = [("known@example.com", known), (f"nobody{n}@example.com", unknown)]
                for email, samples in order if n % 2 == 0 else reversed(order):
                    samples.append(failed_login(server, email))
        finally:
            server.stop()
    known_median, known_p10, known_p90 = summary(known)
    unknown_median, unknown_p10, unknown_p90 = summary(unknown)
    print(f"failed logins, {args.pairs} pairs, release build, 127.0.0.1, one run\n")
    print("| email | median | p10 | p90 |")
    print("|---|---|---|---|")
    print(f"| known (wrong password) | {known_median:.2f} ms | {known_p10:.2f} ms | {known_p90:.2f} ms |")
    print(f"| unknown | {unknown_median:.2f} ms | {unknown_p10:.2f} ms | {unknown_p90:.2f} ms |")
    print(f"\nknown − unknown, medians: {known_median - unknown_median:+.2f} ms "
          f"(ratio {known_median / unknown_median:.3f})")


if __name__ == "__main__":
    main()
