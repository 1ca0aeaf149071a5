#!/usr/bin/env python3
"""Load benchmark: a release build of latch on 127.0.0.1, driven by wrk.

Builds `latch` in release mode, starts it on a free port with a fresh data
directory, and measures with wrk (Debian's; installed when missing), each run
bounded by --seconds:

  GET /healthz (the HTTP baseline) and GET /t/demo/users/me (three
  alternating rounds each, medians kept), POST
  /t/demo/auth/login, POST /t/demo/auth/refresh (every rotation durable before
  its answer), and /users/me again while a login storm runs beside it;

plus start-to-ready on an existing data directory (median of five), idle RSS
after start, and peak RSS over the whole run. Prints a Markdown table of the
runs and one of the targets from the benchmarks issue. Traffic goes only to
127.0.0.1 and every run stops by itself.

Usage: python3 benches/load.py [--seconds 10] [--argon2-ms MS]
The login target needs the single-hash time: --argon2-ms, or else the
criterion result of `cargo bench -p latch-benches --bench server` if present.

With --store postgres it measures the PostgreSQL store instead, beside sled
in the same run: a throwaway PostgreSQL cluster (Debian's `postgresql`,
installed when missing) on a Unix socket in a temporary directory, one latch
node on sled and one on PostgreSQL, /users/me (three alternating rounds,
medians kept), login and refresh on each; then a second node on the same
database, with wrk driving both nodes at once (the two-node figures are the
sum over both nodes).

With --suite tokens it measures the verified-token cache: /users/me with 100,
10,000 and 50,000 distinct live access tokens of one tenant (made by chains of
refreshes), each request carrying the next token of the list, three
alternating rounds, medians kept; the target is 10,000 tokens at ≥ 90 % of
the 100-token figure. RSS is read after each count's rounds.

With --suite scale it measures a store with many users, beside one with
1,000: for each size, a fresh server, the users imported through
POST /t/demo/admin/users/import (one PBKDF2 hash for all: the import does
no hashing) and timed with the peak RSS meanwhile, then the data's size on
disk, start to ready (median of 3) and idle RSS; then both servers run side
by side, /users/me and login in three alternating rounds (medians kept),
then an online backup of each (GET /admin/backup) and the peak RSS since
the restart. --users sets the large size
(default 1,000,000); with --store postgres each size gets a fresh
PostgreSQL cluster and the size is pg_database_size. Targets: login within
10 % of the 1,000-user figure, start to ready ≤ 1 s.
"""

import glob
import urllib.parse

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = ROOT / "benches" / "load" / "wrk.lua"
OPERATOR_TOKEN = "load-benchmark-operator-token-0123456789"
EMAIL = "load@example.com"
PASSWORD = "a long load-test passphrase"
REFRESH_SESSIONS = 64


def ensure_wrk():
    if shutil.which("wrk"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=False)
    if not shutil.which("wrk"):
        subprocess.run(sudo + ["apt-get", "update"], check=True)
        subprocess.run(sudo + ["apt-get", "install", "-y", "wrk"], check=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The release binary on 127.0.0.1:port with its data in `directory`
    (and `extra` arguments, such as a --store URL)."""

    def __init__(self, binary, directory, port, extra=()):
        self.binary, self.directory, self.port, self.extra = binary, directory, port, list(extra)
        self.base = f"http://127.0.0.1:{port}"
        self.process = None

    def start(self):
        """Starts the server; returns seconds from spawn until /readyz answers 200."""
        config = self.directory / "latch.toml"
        config.write_text("auth_rate_limit_per_minute = 0\n")
        env = dict(os.environ, LATCH_OPERATOR_TOKEN=OPERATOR_TOKEN, LATCH_LOG="warn")
        began = time.perf_counter()
        self.process = subprocess.Popen(
            [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}",
             "--data-dir", str(self.directory / "data"), "--config", str(config), *self.extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = began + 30
        while time.perf_counter() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return time.perf_counter() - began
            except OSError:
                pass
            time.sleep(0.002)
        raise SystemExit("latch did not become ready within 30 s")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)

    def status(self, field):
        """A /proc status field in kB (VmRSS: now, VmHWM: peak)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def post(self, path, body, token=None):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base + path, json.dumps(body).encode(), headers)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)


def wrk(server, path, seconds, threads, connections, mode=("get",), headers=()):
    """Runs wrk against `path`; returns its JSON summary with requests/s added."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(WRK_SCRIPT)]
    for header in headers:
        command += ["-H", header]
    command += [server.base + path, "--", *mode]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads([line for line in output.splitlines() if line.startswith("{")][-1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def argon2_seconds(given_ms):
    if given_ms:
        return given_ms / 1000
    estimates = ROOT / "target/criterion/argon2id-m19456-t2-p1/hash/new/estimates.json"
    if estimates.exists():
        return json.loads(estimates.read_text())["median"]["point_estimate"] / 1e9
    return None


class Postgres:
    """A throwaway PostgreSQL cluster in a directory of its own under /tmp
    (which its user can reach), on a Unix socket there only; as root it runs
    as Debian's `postgres` user (PostgreSQL refuses root). fsync and
    synchronous_commit stay at their defaults (on): the figures include every
    commit reaching the disk."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
        if not bins:
            sudo = [] if os.geteuid() == 0 else ["sudo"]
            subprocess.run(sudo + ["apt-get", "update"], check=True)
            subprocess.run(sudo + ["apt-get", "install", "-y", "postgresql"], check=True)
            bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
        directory = Path(tempfile.mkdtemp(prefix="latch-bench-pg-"))
        self.bin, self.directory = Path(bins[-1]), directory
        self.as_owner = []
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        data = directory / "data"
        subprocess.run(self.as_owner + [str(self.bin / "initdb"), "--pgdata", str(data), "--username", "latch",
                                        "--auth", "trust"], check=True, capture_output=True)
        subprocess.run(self.as_owner + [str(self.bin / "pg_ctl"), "--pgdata", str(data), "--log",
                                        str(directory / "server.log"), "--wait", "--options",
                                        f"-c listen_addresses='' -k {directory} -c max_connections=100", "start"],
                       check=True, capture_output=True)
        socket_dir = urllib.parse.quote(str(directory), safe="")
        self.url = f"postgresql://latch@{socket_dir}:5432/postgres"

    def size_bytes(self):
        """The database's size on disk (pg_database_size)."""
        socket_dir = str(self.directory)
        out = subprocess.run([str(self.bin / "psql"), "-h", socket_dir, "-U", "latch", "-d", "postgres", "-Atc",
                              "SELECT pg_database_size('postgres')"], check=True, capture_output=True, text=True)
        return int(out.stdout.strip())

    def stop(self):
        subprocess.run(self.as_owner + [str(self.bin / "pg_ctl"), "--pgdata", str(self.directory / "data"),
                                        "--mode", "fast", "stop"], check=False, capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def report(rows, every_run):
    """Prints the targets; exits non-zero if any request of `every_run` failed."""
    print("\n| target | measured | met |")
    print("|---|---|---|")
    for name, measured, met in rows:
        print(f"| {name} | {measured} | {'yes' if met else 'n/a' if met is None else '**no**'} |")
    errors = sum(run["errors"] for run in every_run)
    if errors:
        print(f"\n{errors} requests failed: the figures above are not valid", file=sys.stderr)
        sys.exit(1)


def table(runs):
    print("| run | requests/s | p50 | p99 | errors |")
    print("|---|---|---|---|---|")
    for name, run in runs.items():
        print(f"| {name} | {run['rps']:,.0f} | {run['p50_us'] / 1000:.2f} ms | {run['p99_us'] / 1000:.2f} ms | {run['errors']} |")


def setup_users(server, sessions):
    """Registers the benchmark user; returns its access token and `sessions` refresh tokens."""
    tokens = server.post("/t/demo/auth/register", {"email": EMAIL, "password": PASSWORD})
    return tokens["access_token"], more_sessions(server, sessions)


def compare_stores(binary, seconds):
    """sled and PostgreSQL side by side in one run, then two nodes on PostgreSQL."""
    cores = os.cpu_count()
    s = seconds
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        database = Postgres()
        try:
            key = tmp / "master.key"
            shared = ["--master-key-file", str(key), "--public-url", "https://auth.latch.test"]
            (tmp / "sled").mkdir()
            (tmp / "node-a").mkdir()
            (tmp / "node-b").mkdir()
            on_sled = Server(binary, tmp / "sled", free_port(), ["--master-key-file", str(tmp / "sled.key")])
            node_a = Server(binary, tmp / "node-a", free_port(), ["--store", database.url, *shared])
            node_b = Server(binary, tmp / "node-b", free_port(), ["--store", database.url, *shared])
            on_sled.start()
            node_a.start()
            sled_access, sled_refresh = setup_users(on_sled, REFRESH_SESSIONS)
            pg_access, pg_refresh = setup_users(node_a, REFRESH_SESSIONS)
            login = ("login", json.dumps({"email": EMAIL, "password": PASSWORD}))
            files = {}
            for name, tokens in [("sled", sled_refresh), ("postgres", pg_refresh),
                                 ("node-a", pg_refresh[:REFRESH_SESSIONS // 2]), ("node-b", pg_refresh[REFRESH_SESSIONS // 2:])]:
                files[name] = tmp / f"refresh-{name}"
                files[name].write_text("\n".join(tokens) + "\n")

            runs, rounds = {}, {"sled": [], "postgres": []}
            for _ in range(3):
                rounds["sled"].append(wrk(on_sled, "/t/demo/users/me", s, 2, 64,
                                          headers=[f"Authorization: Bearer {sled_access}"]))
                rounds["postgres"].append(wrk(node_a, "/t/demo/users/me", s, 2, 64,
                                              headers=[f"Authorization: Bearer {pg_access}"]))
            median_run = lambda results: sorted(results, key=lambda run: run["rps"])[1]
            runs["sled: GET /users/me (median of 3)"] = median_run(rounds["sled"])
            runs["PostgreSQL: GET /users/me (median of 3)"] = median_run(rounds["postgres"])
            runs["sled: POST /auth/login"] = wrk(on_sled, "/t/demo/auth/login", s, 2, 16, mode=login)
            runs["PostgreSQL: POST /auth/login"] = wrk(node_a, "/t/demo/auth/login", s, 2, 16, mode=login)
            runs["sled: POST /auth/refresh"] = wrk(on_sled, "/t/demo/auth/refresh", s, REFRESH_SESSIONS,
                                                   REFRESH_SESSIONS, mode=("refresh", str(files["sled"])))
            # The tokens of the PostgreSQL sessions are used up by this run;
            # the two-node run starts from fresh ones.
            runs["PostgreSQL: POST /auth/refresh"] = wrk(node_a, "/t/demo/auth/refresh", s, REFRESH_SESSIONS,
                                                         REFRESH_SESSIONS, mode=("refresh", str(files["postgres"])))
            on_sled.stop()

            # Two nodes on the one database, wrk on both at once.
            node_b.start()
            fresh = more_sessions(node_a, REFRESH_SESSIONS)
            files["node-a"].write_text("\n".join(fresh[:REFRESH_SESSIONS // 2]) + "\n")
            files["node-b"].write_text("\n".join(fresh[REFRESH_SESSIONS // 2:]) + "\n")
            both = {}
            def on(node, name, *run_args, **run_kwargs):
                both[name] = wrk(node, *run_args, **run_kwargs)
            for label, make in [
                ("GET /users/me", lambda node, name: threading.Thread(target=on, args=(node, name, "/t/demo/users/me", s, 1, 32),
                                                                     kwargs={"headers": [f"Authorization: Bearer {pg_access}"]})),
                ("POST /auth/refresh", lambda node, name: threading.Thread(
                    target=on, args=(node, name, "/t/demo/auth/refresh", s, REFRESH_SESSIONS // 2, REFRESH_SESSIONS // 2),
                    kwargs={"mode": ("refresh", str(files[name]))})),
            ]:
                both.clear()
                threads = [make(node_a, "node-a"), make(node_b, "node-b")]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                a, b = both["node-a"], both["node-b"]
                runs[f"2 nodes: {label} (sum; A + B)"] = {
                    "rps": a["rps"] + b["rps"], "p50_us": max(a["p50_us"], b["p50_us"]),
                    "p99_us": max(a["p99_us"], b["p99_us"]), "errors": a["errors"] + b["errors"]}
            node_a.stop()
            node_b.stop()
        finally:
            database.stop()

    print(f"latch load benchmark, sled beside PostgreSQL: release build, {cores} cores, wrk, {s} s per run, "
          "127.0.0.1; PostgreSQL on the same machine, fsync and synchronous_commit on\n")
    table(runs)
    sled_me, pg_me = runs["sled: GET /users/me (median of 3)"], runs["PostgreSQL: GET /users/me (median of 3)"]
    pg_refresh_rps = runs["PostgreSQL: POST /auth/refresh"]["rps"]
    login_ratio = runs["PostgreSQL: POST /auth/login"]["rps"] / runs["sled: POST /auth/login"]["rps"]
    ratios = sorted(p["rps"] / q["rps"] for q, p in zip(rounds["sled"], rounds["postgres"]))
    rows = [
        ("refresh on PostgreSQL ≥ 2,000/s, each rotation committed", f"{pg_refresh_rps:,.0f}/s", pg_refresh_rps >= 2000),
        ("/users/me on PostgreSQL ≥ 50 % of sled",
         f"{pg_me['rps'] / sled_me['rps']:.0%} (rounds: {', '.join(f'{r:.0%}' for r in ratios)})",
         pg_me["rps"] >= 0.5 * sled_me["rps"]),
        ("login on PostgreSQL unchanged (hashing-bound)", f"{login_ratio:.2f}× sled", login_ratio >= 0.9),
    ]
    report(rows, [*runs.values(), *rounds["sled"], *rounds["postgres"]])


def more_sessions(server, sessions):
    """`sessions` new refresh tokens of the (registered) benchmark user."""
    return [server.post("/t/demo/auth/login", {"email": EMAIL, "password": PASSWORD})["refresh_token"]
            for _ in range(sessions)]


def live_tokens(server, count, chains=16):
    """`count` distinct live access tokens of the benchmark user: `chains`
    sessions, each refreshed in turn (every refresh answers a new access
    token; the ones before stay valid until they expire)."""
    refresh = more_sessions(server, chains)
    per_chain = -(-count // chains)
    made = [[] for _ in range(chains)]

    def chain(i):
        token = refresh[i]
        for _ in range(per_chain):
            answer = server.post("/t/demo/auth/refresh", {"refresh_token": token})
            made[i].append(answer["access_token"])
            token = answer["refresh_token"]

    workers = [threading.Thread(target=chain, args=(i,)) for i in range(chains)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    tokens = [token for tokens in made for token in tokens][:count]
    if len(set(tokens)) != count:
        raise SystemExit(f"made {len(set(tokens))} distinct tokens, not {count}")
    return tokens


def token_suite(binary, seconds):
    """/users/me with 100, 10,000 and 50,000 distinct live tokens."""
    counts = [100, 10_000, 50_000]
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(binary, Path(tmp), free_port())
        server.start()
        server.post("/t/demo/auth/register", {"email": EMAIL, "password": PASSWORD})
        began = time.perf_counter()
        tokens = live_tokens(server, max(counts))
        made_in = time.perf_counter() - began
        files = {}
        for count in counts:
            files[count] = Path(tmp) / f"tokens-{count}"
            files[count].write_text("\n".join(tokens[:count]) + "\n")
        rounds, rss = {count: [] for count in counts}, {}
        for _ in range(3):
            for count in counts:
                rounds[count].append(wrk(server, "/t/demo/users/me", seconds, 2, 64, mode=("tokens", str(files[count]))))
                rss[count] = server.status("VmRSS")
        peak_rss_kb = server.status("VmHWM")
        server.stop()

    median_run = lambda results: sorted(results, key=lambda run: run["rps"])[1]
    runs = {f"GET /t/demo/users/me, {count:,} distinct tokens (median of 3)": median_run(rounds[count])
            for count in counts}
    print(f"latch token-cache benchmark: release build, {os.cpu_count()} cores, wrk, {seconds} s per run, "
          f"127.0.0.1; {max(counts):,} tokens made by refresh in {made_in:.1f} s\n")
    table(runs)
    print()
    for count in counts:
        print(f"- RSS after the {count:,}-token rounds: {rss[count] / 1024:.1f} MB")
    print(f"- peak RSS: {peak_rss_kb / 1024:.1f} MB")
    base, ten = (median_run(rounds[c])["rps"] for c in (100, 10_000))
    ratios = sorted(t["rps"] / h["rps"] for h, t in zip(rounds[100], rounds[10_000]))
    rows = [("/users/me with 10,000 tokens ≥ 90 % of 100",
             f"{ten / base:.0%} (rounds: {', '.join(f'{r:.0%}' for r in ratios)})", ten >= 0.9 * base)]
    fifty = median_run(rounds[50_000])["rps"]
    rows.append(("/users/me with 50,000 tokens (no target)", f"{fifty / base:.0%} of the 100-token figure", None))
    report(rows, [run for results in rounds.values() for run in results])


def passlib_pbkdf2(password, rounds=29000):
    """A passlib `$pbkdf2-sha256$` hash of `password` (stdlib only)."""
    import base64
    import hashlib
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    ab64 = lambda raw: base64.b64encode(raw).decode().rstrip("=").replace("+", ".")
    return f"$pbkdf2-sha256${rounds}${ab64(salt)}${ab64(digest)}"


def import_users(server, count, path):
    """Writes `count` users to `path` and imports them; returns seconds and the totals line."""
    hashed = passlib_pbkdf2(PASSWORD)
    with open(path, "w") as out:
        for i in range(count):
            out.write(json.dumps({"email": f"user-{i:07d}@example.com", "password_hash": hashed,
                                  "name": f"User {i}", "email_verified": True}) + "\n")
    size = path.stat().st_size
    began = time.perf_counter()
    with open(path, "rb") as body:
        request = urllib.request.Request(server.base + "/t/demo/admin/users/import", data=body, method="POST", headers={
            "content-type": "application/x-ndjson", "content-length": str(size),
            "authorization": f"Bearer {OPERATOR_TOKEN}"})
        last = b""
        with urllib.request.urlopen(request, timeout=3600) as answer:
            for line in answer:
                last = line
    seconds = time.perf_counter() - began
    totals = json.loads(last)
    if totals.get("created") != count:
        raise SystemExit(f"the import answered {totals}")
    return seconds, size


def scale_suite(binary, seconds, large, store):
    """A store with 1,000 users beside one with `large` users (sled, or a
    fresh PostgreSQL cluster for each size): both are built and restarted,
    then measured side by side in alternating rounds (medians kept)."""
    sizes = [1_000, large]
    results = {size: {} for size in sizes}
    servers, databases = {}, []
    login = ("login", json.dumps({"email": EMAIL, "password": PASSWORD}))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            for size in sizes:
                directory = tmp / f"users-{size}"
                directory.mkdir()
                database = Postgres() if store == "postgres" else None
                if database:
                    databases.append(database)
                server = Server(binary, directory, free_port(), ["--store", database.url] if database else [])
                servers[size] = server
                server.start()
                token = server.post("/t/demo/auth/register", {"email": EMAIL, "password": PASSWORD})["access_token"]
                took, file_bytes = import_users(server, size - 1, directory / "users.ndjson")
                (directory / "users.ndjson").unlink()
                r = results[size]
                r.update(token=token, imported=size - 1, import_s=took, file_mb=file_bytes / 1e6, import_peak_mb=server.status("VmHWM") / 1024)
                server.stop()
                if database:
                    r["data_mb"] = database.size_bytes() / 1e6
                else:
                    r["data_mb"] = sum(f.stat().st_size for f in (directory / "data").rglob("*") if f.is_file()) / 1e6
                starts = []
                for attempt in range(3):
                    starts.append(server.start())
                    if attempt < 2:
                        server.stop()
                r["start_ms"] = statistics.median(starts) * 1000
            time.sleep(1)
            for size in sizes:
                results[size]["idle_mb"] = servers[size].status("VmRSS") / 1024
            # Side by side: the machine's noise moves both alike.
            rounds = {size: {"me": [], "login": []} for size in sizes}
            for _ in range(3):
                for size in sizes:
                    server, token = servers[size], results[size]["token"]
                    rounds[size]["me"].append(wrk(server, "/t/demo/users/me", seconds, 2, 64,
                                                  headers=[f"Authorization: Bearer {token}"]))
                    rounds[size]["login"].append(wrk(server, "/t/demo/auth/login", seconds, 2, 16, mode=login))
            median_run = lambda runs: sorted(runs, key=lambda run: run["rps"])[1]
            for size in sizes:
                server, r = servers[size], results[size]
                r["me"], r["login"] = median_run(rounds[size]["me"]), median_run(rounds[size]["login"])
                began = time.perf_counter()
                backup = urllib.request.Request(server.base + "/admin/backup",
                                                headers={"authorization": f"Bearer {OPERATOR_TOKEN}"})
                backup_bytes = 0
                with urllib.request.urlopen(backup, timeout=3600) as answer:
                    while chunk := answer.read(1 << 20):
                        backup_bytes += len(chunk)
                r["backup_s"], r["backup_mb"] = time.perf_counter() - began, backup_bytes / 1e6
                r["peak_mb"] = server.status("VmHWM") / 1024
        finally:
            for server in servers.values():
                if server.process and server.process.poll() is None:
                    server.stop()
            for database in databases:
                database.stop()

    where = "PostgreSQL (on the same machine)" if store == "postgres" else "sled"
    print(f"latch scale benchmark: release build, {os.cpu_count()} cores, {where}, wrk, {seconds} s per run, 127.0.0.1\n")
    header = " | ".join(f"{size:,} users" for size in sizes)
    print(f"| measure | {header} |")
    print("|---" * (len(sizes) + 1) + "|")
    rows = [
        ("import through the API", lambda r: f"{r['imported'] / r['import_s']:,.0f} users/s ({r['import_s']:.1f} s, {r['file_mb']:.0f} MB file)"),
        ("peak RSS during the import", lambda r: f"{r['import_peak_mb']:.1f} MB"),
        ("data on disk (sled directory; PostgreSQL: pg_database_size)", lambda r: f"{r['data_mb']:.0f} MB"),
        ("start to ready (median of 3)", lambda r: f"{r['start_ms']:.0f} ms"),
        ("idle RSS after start", lambda r: f"{r['idle_mb']:.1f} MB"),
        ("GET /users/me (median of 3)", lambda r: f"{r['me']['rps']:,.0f}/s, p99 {r['me']['p99_us'] / 1000:.2f} ms"),
        ("POST /auth/login (median of 3)", lambda r: f"{r['login']['rps']:.1f}/s, p99 {r['login']['p99_us'] / 1000:.0f} ms"),
        ("online backup (GET /admin/backup)", lambda r: f"{r['backup_s']:.1f} s ({r['backup_mb']:.0f} MB)"),
        ("peak RSS after the restart (load, backup)", lambda r: f"{r['peak_mb']:.1f} MB"),
    ]
    for name, show in rows:
        print(f"| {name} | " + " | ".join(show(results[size]) for size in sizes) + " |")
    small, big = results[sizes[0]], results[sizes[1]]
    login_ratio = big["login"]["rps"] / small["login"]["rps"]
    login_rounds = sorted(b["rps"] / a["rps"] for a, b in zip(rounds[sizes[0]]["login"], rounds[sizes[1]]["login"]))
    targets = [
        (f"login with {large:,} users within 10 % of 1,000",
         f"{login_ratio:.0%} (rounds: {', '.join(f'{x:.0%}' for x in login_rounds)})", abs(login_ratio - 1) <= 0.10),
        (f"start to ready with {large:,} users ≤ 1 s", f"{big['start_ms']:.0f} ms", big["start_ms"] <= 1000),
        ("/users/me (no target)", f"{big['me']['rps'] / small['me']['rps']:.0%} of the 1,000-user figure", None),
    ]
    report(targets, [run for size in sizes for kind in ("me", "login") for run in rounds[size][kind]])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--argon2-ms", type=float, help="single argon2id hash time for the login target")
    parser.add_argument("--store", choices=["sled", "postgres"], default="sled",
                        help="postgres: measure PostgreSQL beside sled, and two nodes")
    parser.add_argument("--suite", choices=["default", "tokens", "scale"], default="default",
                        help="tokens: /users/me with 100, 10,000 and 50,000 distinct live tokens; "
                             "scale: a store of --users users beside one of 1,000")
    parser.add_argument("--users", type=int, default=1_000_000, help="the large store's users (--suite scale)")
    args = parser.parse_args()

    ensure_wrk()
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "latch-server"], cwd=ROOT, check=True)
    binary = ROOT / "target" / "release" / "latch"
    cores = os.cpu_count()
    if args.store == "postgres" and args.suite == "default":
        compare_stores(binary, args.seconds)
        return
    if args.suite == "tokens":
        token_suite(binary, args.seconds)
        return
    if args.suite == "scale":
        scale_suite(binary, args.seconds, args.users, args.store)
        return

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(binary, Path(tmp), free_port())
        server.start()
        tokens = server.post("/t/demo/auth/register", {"email": EMAIL, "password": PASSWORD})
        refresh = [server.post("/t/demo/auth/login", {"email": EMAIL, "password": PASSWORD})["refresh_token"]
                   for _ in range(REFRESH_SESSIONS)]
        server.stop()

        # Start to ready on the existing data directory; idle RSS after the last start.
        starts = []
        for attempt in range(5):
            starts.append(server.start())
            if attempt < 4:
                server.stop()
        time.sleep(1)
        idle_rss_kb = server.status("VmRSS")

        access = tokens["access_token"]
        me_header = [f"Authorization: Bearer {access}"]
        login = ("login", json.dumps({"email": EMAIL, "password": PASSWORD}))
        tokens_file = Path(tmp) / "refresh-tokens"
        tokens_file.write_text("\n".join(refresh) + "\n")
        s = args.seconds

        runs = {}
        # The baseline and /users/me alternate over three rounds and each
        # keeps its median round: this machine's noise moves both alike.
        rounds = {"healthz": [], "me": []}
        for _ in range(3):
            rounds["healthz"].append(wrk(server, "/healthz", s, 2, 64))
            rounds["me"].append(wrk(server, "/t/demo/users/me", s, 2, 64, headers=me_header))
        median_run = lambda results: sorted(results, key=lambda run: run["rps"])[1]
        runs["GET /healthz (median of 3)"] = median_run(rounds["healthz"])
        runs["GET /t/demo/users/me (median of 3)"] = median_run(rounds["me"])
        runs["POST /t/demo/auth/login"] = wrk(server, "/t/demo/auth/login", s, 2, 16, mode=login)
        runs["POST /t/demo/auth/refresh"] = wrk(
            server, "/t/demo/auth/refresh", s, REFRESH_SESSIONS, REFRESH_SESSIONS, mode=("refresh", str(tokens_file)))
        quiet = wrk(server, "/t/demo/users/me", s, 1, 16, headers=me_header)
        runs["GET /users/me, 16 connections"] = quiet

        storm = {}
        def login_storm():
            storm["login"] = wrk(server, "/t/demo/auth/login", s + 2, 1, 16, mode=login)
        beside = threading.Thread(target=login_storm)
        beside.start()
        time.sleep(1)
        stormy = wrk(server, "/t/demo/users/me", s, 1, 16, headers=me_header)
        beside.join()
        runs["GET /users/me, 16 connections, during a login storm"] = stormy
        runs["POST /auth/login (the storm beside it)"] = storm["login"]
        peak_rss_kb = server.status("VmHWM")
        server.stop()

    print(f"latch load benchmark: release build, {cores} cores, wrk, {s} s per run, 127.0.0.1\n")
    table(runs)

    healthz, me = runs["GET /healthz (median of 3)"], runs["GET /t/demo/users/me (median of 3)"]
    login_rps, refresh_rps = runs["POST /t/demo/auth/login"]["rps"], runs["POST /t/demo/auth/refresh"]["rps"]
    hash_seconds = argon2_seconds(args.argon2_ms)
    start_ms = statistics.median(starts) * 1000
    rows = []
    if hash_seconds:
        ceiling = cores / hash_seconds
        rows.append(("login ≥ 90 % of cores ÷ argon2 hash time",
                     f"{login_rps:.1f}/s = {login_rps / ceiling:.0%} of {ceiling:.1f}/s ({hash_seconds * 1000:.1f} ms hash)",
                     login_rps >= 0.9 * ceiling))
    else:
        rows.append(("login ≥ 90 % of cores ÷ argon2 hash time", f"{login_rps:.1f}/s (no hash time: see --argon2-ms)", None))
    ratios = sorted(m["rps"] / h["rps"] for h, m in zip(rounds["healthz"], rounds["me"]))
    rows.append(("/users/me ≥ 50 % of /healthz", f"{me['rps'] / healthz['rps']:.0%} (rounds: {', '.join(f'{r:.0%}' for r in ratios)})",
                 me["rps"] >= 0.5 * healthz["rps"]))
    rows.append(("/users/me p99 in a login storm ≤ 2× without",
                 f"{stormy['p99_us'] / quiet['p99_us']:.2f}× ({quiet['p99_us'] / 1000:.2f} → {stormy['p99_us'] / 1000:.2f} ms)",
                 stormy["p99_us"] <= 2 * quiet["p99_us"]))
    rows.append(("refresh ≥ 2,000/s, each rotation durable", f"{refresh_rps:,.0f}/s", refresh_rps >= 2000))
    rows.append(("peak RSS under load ≤ 96 MB", f"{peak_rss_kb / 1024:.1f} MB", peak_rss_kb <= 96 * 1024))
    rows.append(("idle RSS after start ≤ 24 MB", f"{idle_rss_kb / 1024:.1f} MB", idle_rss_kb <= 24 * 1024))
    rows.append(("start to ready on an existing data dir ≤ 250 ms",
                 f"{start_ms:.0f} ms (median of 5)", start_ms <= 250))
    report(rows, [*runs.values(), *rounds["healthz"], *rounds["me"]])


if __name__ == "__main__":
    main()
