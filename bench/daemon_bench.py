#!/usr/bin/env python3
"""`toyc daemon` accepting webhooks, beside adnanh/webhook; and push to first host changed.

accept: DELIVERIES signed GitHub push deliveries (each its own X-GitHub-Delivery, a real
HMAC-SHA256 X-Hub-Signature-256 over its own body) from SENDERS concurrent senders
(threads, one keep-alive connection each), to toyc with SQLite, toyc with PostgreSQL,
and adnanh/webhook (an HMAC-SHA256 trigger rule on the same header, a command that
appends the delivery id to a file). The tools take turns within each repetition, each
with a fresh store. Measured per tool: the latency of each 2xx (request written to
response read, as the sender sees it: p50, p99, max), deliveries per second (all of
them over the first send to the last answer), and the CPU the server process used.
Checked afterwards: every delivery toyc answered 2xx is in its store with a job
(`/api/deliveries`), every one webhook answered 2xx is in its file.

toyc's side of the accept run: the repo's role has an empty host group. Every delivery
is a push to the tracked branch, so each one queues a job or merges into the queued one
(the store's transaction is the full one), and the daemon's workers really claim those
jobs while the deliveries arrive: each fetches the role repo (git) and then fails for
want of hosts. That work competes with the webhooks for the same 2 cores, so it does
not flatter toyc; what it leaves out is SSH to hosts, which the second part measures.

first host: N container hosts (hosts.sh), a bare role repo, the daemon with SQLite.
A first push bootstraps and applies everywhere (measured separately: "bootstrap").
Then each repetition commits a new file content, `git push`es it to the bare repo,
sends the signed delivery, and waits for the job. Measured from just before `git push`:
the first `step` event with status 0 (a change made on a host; its `at_ms` from the
store), and the job's end.

Usage: daemon_bench.py [--deliveries 1000] [--senders 20] [--reps 3] [--hosts 1,20]
                       [--first-reps 5] [--tools toyc-sqlite,toyc-postgres,webhook]
                       (tools also: toyc-postgres-async, synchronous_commit off: a diagnostic)
                       [--no-first-host] [--max-wait 60]     (normally through daemon.sh)
"""
import argparse
import glob
import hashlib
import hmac
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
W = os.path.join(HERE, ".work")
D = os.path.join(W, "daemon")
REPO = os.path.dirname(HERE)
TOYC = os.environ.get("TOYC_BIN") or os.path.join(REPO, "target", "release", "toyc")
SECRET = "bench-webhook-secret"
REPO_NAME = "acme/bench"
ROLE = "bench"
MAX_WAIT = 60


def run(*cmd, cwd=None, env=None):
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


# ---- the machine ------------------------------------------------------------------------

def jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def busy_fraction(seconds=1.0):
    b0, t0 = jiffies()
    time.sleep(seconds)
    b1, t1 = jiffies()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(limit=0.10):
    """Wait (up to MAX_WAIT s) until the machine is at most `limit` busy; returns the last
    busy fraction seen (recorded with the run)."""
    end = time.monotonic() + MAX_WAIT
    while True:
        busy = busy_fraction()
        if busy <= limit or time.monotonic() >= end:
            return busy
        time.sleep(2)


def cpu_seconds(pid):
    """utime + stime of a process (its threads included), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- the role repo ----------------------------------------------------------------------

class RoleRepo:
    """A working repo and the bare repo it pushes to (the "git host")."""

    def __init__(self, root, runbook):
        self.work = os.path.join(root, "role")
        self.bare = os.path.join(root, "role.git")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(self.work)
        run("git", "init", "-q", "--bare", "-b", "main", self.bare)
        run("git", "init", "-q", "-b", "main", self.work)
        run("git", "-C", self.work, "remote", "add", "origin", self.bare)
        self.url = f"file://{self.bare}"
        self.head = "0" * 40
        self.commit({"runbook.rhai": runbook}, "the role", push=True)

    def commit(self, files, message, push=False):
        """Commit `files`; returns (before, after). Pushed now or with `push()`."""
        before = self.head
        for path, content in files.items():
            os.makedirs(os.path.dirname(os.path.join(self.work, path)), exist_ok=True)
            with open(os.path.join(self.work, path), "w") as f:
                f.write(content)
        env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
                   GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
        run("git", "-C", self.work, "add", "-A", env=env)
        run("git", "-C", self.work, "commit", "-q", "--allow-empty", "-m", message, env=env)
        self.head = run("git", "-C", self.work, "rev-parse", "HEAD").strip()
        if push:
            self.push()
        return before, self.head

    def push(self):
        run("git", "-C", self.work, "push", "-q", "origin", "main")


BRANCH = "main"  # --untracked-branch: another, so that toyc records the delivery and queues nothing


def push_body(before, after, n):
    """A GitHub push payload; `n` makes each body (and so its signature) its own."""
    return json.dumps({
        "ref": f"refs/heads/{BRANCH}",
        "before": before,
        "after": after,
        "forced": False,
        "repository": {"full_name": REPO_NAME, "clone_url": "https://example.invalid/bench.git"},
        "pusher": {"name": "bench"},
        "head_commit": {"id": after, "message": f"delivery {n}"},
        "commits": [],
    }).encode()


def signed(body, delivery):
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": f"sha256={digest}",
    }


# ---- the servers ------------------------------------------------------------------------

class Toyc:
    """`toyc daemon` on port 0, its log in a file."""

    def __init__(self, root, store, inventory, extra=""):
        os.makedirs(root, exist_ok=True)
        self.root = root
        with open(os.path.join(root, "secrets.yml"), "w") as f:
            f.write(f"webhook: {SECRET}\n")
        with open(os.path.join(root, "daemon.yml"), "w") as f:
            f.write(f"listen: 127.0.0.1:0\ninventory: {inventory}\nsecrets_file: secrets.yml\n"
                    f"store: \"{store}\"\n{extra}repos:\n  {REPO_NAME}:\n"
                    f"    url: \"{self.repo_url}\"\n    role: {ROLE}\n")
        self.log_path = os.path.join(root, "daemon.log")
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [TOYC, "daemon", "--config", os.path.join(root, "daemon.yml")],
            env=dict(os.environ, TOYC_STATE_DIR=os.path.join(root, "state")),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.url = None
        end = time.monotonic() + 30
        while self.url is None:
            with open(self.log_path) as f:
                for line in f:
                    if line.startswith("toyc daemon: listening on "):
                        self.url = line.split("listening on ", 1)[1].strip()
            if self.url is None:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise SystemExit(f"the daemon did not start:\n{open(self.log_path).read()}")
                time.sleep(0.05)
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        self.address = (host, int(port))
        self.path = "/hooks/github"

    repo_url = None  # set by the caller (the role repo's file:// URL)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.load(r)

    def post(self, body, headers):
        c = http.client.HTTPConnection(*self.address, timeout=30)
        c.request("POST", self.path, body=body, headers=headers)
        r = c.getresponse()
        out = (r.status, r.read())
        c.close()
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Webhook:
    """adnanh/webhook: an HMAC-SHA256 trigger rule, a command appending the delivery id."""

    def __init__(self, root, port):
        os.makedirs(root, exist_ok=True)
        self.file = os.path.join(root, "deliveries.txt")
        open(self.file, "w").close()
        script = os.path.join(root, "append.sh")
        with open(script, "w") as f:
            f.write('#!/bin/sh\nprintf \'%s\\n\' "$1" >> "$2"\n')
        os.chmod(script, 0o755)
        hooks = [{
            "id": "push",
            "execute-command": script,
            "command-working-directory": root,
            "pass-arguments-to-command": [
                {"source": "header", "name": "X-GitHub-Delivery"},
                {"source": "string", "name": self.file},
            ],
            "response-message": "queued",
            "trigger-rule-mismatch-http-response-code": 401,
            "trigger-rule": {"and": [
                {"match": {"type": "payload-hmac-sha256", "secret": SECRET,
                           "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}},
                {"match": {"type": "value", "value": "refs/heads/main",
                           "parameter": {"source": "payload", "name": "ref"}}},
            ]},
        }]
        with open(os.path.join(root, "hooks.json"), "w") as f:
            json.dump(hooks, f, indent=1)
        self.log_path = os.path.join(root, "webhook.log")
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["webhook", "-hooks", os.path.join(root, "hooks.json"), "-ip", "127.0.0.1",
             "-port", str(port)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.address = ("127.0.0.1", port)
        self.path = "/hooks/push"
        end = time.monotonic() + 30
        while True:
            try:
                http.client.HTTPConnection(*self.address, timeout=1).connect()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise SystemExit(f"webhook did not start:\n{open(self.log_path).read()}")
                time.sleep(0.05)

    post = Toyc.post
    stop = Toyc.stop

    def lines(self):
        with open(self.file) as f:
            return [line.strip() for line in f if line.strip()]


class Postgres:
    """A throwaway PostgreSQL on a Unix socket, started as tests/support/postgres.sh does
    but with PostgreSQL's durable defaults (fsync, synchronous_commit, full_page_writes
    on): the store's commit must be as durable as SQLite's to compare them."""

    def __init__(self, root):
        shutil.rmtree(root, ignore_errors=True)
        self.dir = root
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not found:
            raise SystemExit("daemon_bench: PostgreSQL not found: apt-get install postgresql")
        self.bin = found[-1]
        os.makedirs(root, mode=0o700)
        self.as_server = []
        if os.getuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            self.as_server = ["runuser", "-u", "postgres", "--"]
        subprocess.run(self.as_server + [f"{self.bin}/initdb", "-D", f"{root}/data", "-U", "postgres",
                                         "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
        subprocess.run(self.as_server + [f"{self.bin}/pg_ctl", "-D", f"{root}/data", "-l", f"{root}/log",
                                         "-w", "-t", "60", "start", "-o",
                                         f"-k {root} -p 5432 -c listen_addresses='' -c max_connections=300"],
                       check=True, capture_output=True)
        self.n = 0

    def database(self, synchronous_commit=True):
        """A fresh database; its URL. `synchronous_commit=False`: a commit does not wait for
        its WAL flush (a diagnostic: how much of the time is the flush)."""
        self.n += 1
        name = f"toyc{self.n}"
        sql = [f"CREATE DATABASE {name}"]
        if not synchronous_commit:
            sql.append(f"ALTER DATABASE {name} SET synchronous_commit = off")
        for statement in sql:
            subprocess.run(["psql", "-q", "-h", self.dir, "-p", "5432", "-U", "postgres", "-d", "postgres",
                            "-c", statement], check=True, capture_output=True)
        return f"postgresql://postgres@{self.dir.replace('/', '%2F')}:5432/{name}"

    def settings(self):
        out = subprocess.run(["psql", "-At", "-h", self.dir, "-p", "5432", "-U", "postgres", "-d", "postgres",
                              "-c", "SELECT version(), current_setting('fsync'), current_setting('synchronous_commit')"],
                             check=True, capture_output=True, text=True).stdout.strip()
        return out

    def stop(self):
        subprocess.run(self.as_server + [f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-m", "fast",
                                         "-w", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the sender -------------------------------------------------------------------------

def send_all(server, requests, senders):
    """Send `requests` ([(delivery, body, headers)]) from `senders` threads, each with
    one keep-alive connection; returns ([(delivery, status, seconds)], wall seconds,
    the sender's CPU seconds)."""
    results = [None] * len(requests)
    next_index = iter(range(len(requests)))
    lock = threading.Lock()
    start = threading.Barrier(senders + 1)

    def sender():
        conn = http.client.HTTPConnection(*server.address, timeout=60)
        start.wait()
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            delivery, body, headers = requests[i]
            t0 = time.perf_counter()
            try:
                conn.request("POST", server.path, body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(*server.address, timeout=60)
                status = 0
            results[i] = (delivery, status, time.perf_counter() - t0)
        conn.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    sender_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return results, wall, sender_cpu


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def accept_run(tool, rep, repo, a, pg):
    root = os.path.join(D, f"accept-{tool}-{rep}")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    inventory = os.path.join(root, "inventory.yml")
    with open(inventory, "w") as f:
        f.write(f"hosts: {{}}\ngroups:\n  {ROLE}:\n    hosts: []\n")
    if tool == "webhook":
        server = Webhook(root, a.webhook_port)
    else:
        store = (os.path.join(root, "toyc.sqlite") if tool == "toyc-sqlite"
                 else pg.database(synchronous_commit=tool == "toyc-postgres"))
        Toyc.repo_url = repo.url
        server = Toyc(root, store, inventory)
    before, after = repo.base
    # A few unmeasured deliveries first (connections, caches), checked like the others.
    warm = [(f"{tool}-{rep}-warm-{i}", push_body(before, after, -i)) for i in range(10)]
    measured = [(f"{tool}-{rep}-{i}", push_body(before, after, i)) for i in range(a.deliveries)]
    warm = [(d, b, signed(b, d)) for d, b in warm]
    measured = [(d, b, signed(b, d)) for d, b in measured]
    busy = wait_quiet()
    load = loadavg()
    forged = server.post(measured[0][1], dict(measured[0][2], **{"X-Hub-Signature-256": "sha256=" + "0" * 64}))
    send_all(server, warm, min(a.senders, len(warm)))
    cpu0 = cpu_seconds(server.proc.pid)
    results, wall, sender_cpu = send_all(server, measured, a.senders)
    server_cpu = cpu_seconds(server.proc.pid) - cpu0
    ok = [r for r in results if 200 <= r[1] < 300]
    lat = sorted(r[2] for r in ok)
    accepted = {d for d, s, _ in ok} | {d for d, _, _ in warm}
    # The check: every 2xx delivery is where the tool keeps them.
    if tool == "webhook":
        deadline = time.monotonic() + 10
        while True:
            kept = set(server.lines())
            if accepted <= kept or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        jobs = None
    else:
        listed = server.get(f"/api/deliveries?limit={a.deliveries + 1000}")
        # The store keys a delivery by its provider and id: `github:ID`.
        kept = {d["id"].removeprefix("github:") for d in listed
                if (d.get("job") is not None and d.get("ignored") is None) or BRANCH != "main"}
        jobs = len({d["job"] for d in listed if d["id"].removeprefix("github:") in accepted})
    missing = len(accepted - kept)
    server.stop()
    row = {
        "tool": tool, "rep": rep, "deliveries": a.deliveries, "senders": a.senders,
        "ok": len(ok), "statuses": sorted({s for _, s, _ in results}),
        "forged_status": forged[0],
        "p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000,
        "max_ms": lat[-1] * 1000 if lat else float("nan"),
        "per_s": len(results) / wall, "wall_s": wall,
        "server_cpu_s": server_cpu, "sender_cpu_s": sender_cpu,
        "missing": missing, "jobs": jobs, "busy_before": busy, "load_before": load,
    }
    print(json.dumps(row), flush=True)
    return row


# ---- push to first host changed ---------------------------------------------------------

def first_host_runs(n, a):
    subprocess.run([os.path.join(HERE, "hosts.sh"), "start", str(n)], check=True)
    root = os.path.join(D, f"first-{n}")
    shutil.rmtree(root, ignore_errors=True)
    target = "/tmp/toyc-bench-daemon"
    runbook = (f'files::directory("{target}", #{{ mode: "0755" }});\n'
               f'files::copy("version.txt", "{target}/version.txt", #{{ mode: "0644" }});\n')
    repo = RoleRepo(os.path.join(root, "git"), runbook)
    repo.commit({"files/version.txt": "0\n"}, "version 0", push=True)
    names = [line.split()[0] for line in open(os.path.join(W, "hosts.list")) if line.strip()]
    inventory = os.path.join(root, "inventory.yml")
    with open(os.path.join(W, "inventory.yml")) as f:
        text = f.read()
    with open(inventory, "w") as f:
        f.write(text + f"groups:\n  {ROLE}:\n    hosts: [{', '.join(names)}]\n")
    Toyc.repo_url = repo.url
    daemon = Toyc(os.path.join(root, "daemon"), os.path.join(root, "daemon", "toyc.sqlite"), inventory,
                  extra=f"forks: {max(20, n)}\n")
    rows = []
    try:
        for rep in range(a.first_reps + 1):
            kind = "bootstrap" if rep == 0 else "push"
            before, after = repo.commit({"files/version.txt": f"{rep + 1}\n"}, f"version {rep + 1}")
            if rep == 0:
                before = "0" * 40  # a new branch to the daemon: a full run after bootstrap
            busy = wait_quiet()
            load = loadavg()
            t0_ms = time.time() * 1000
            t0 = time.perf_counter()
            repo.push()
            body = push_body(before, after, rep)
            status, answer = daemon.post(body, signed(body, f"first-{n}-{rep}"))
            assert status == 202, (status, answer)
            answer = json.loads(answer)
            job = answer.get("queued") or answer.get("merged")
            first_ms = None
            while True:
                state = daemon.get(f"/api/jobs/{job}")
                if first_ms is None:
                    for e in state["events"]:
                        ev = e["event"]
                        if ev.get("type") == "step" and ev["data"].get("status") == 0:
                            first_ms = e["at_ms"] - t0_ms
                            break
                if state["job"]["state"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.02)
            done = (time.perf_counter() - t0) * 1000
            summary = (state["job"].get("result") or {}).get("summary") or {}
            row = {"hosts": n, "kind": kind, "rep": rep, "state": state["job"]["state"],
                   "first_changed_ms": first_ms, "job_done_ms": done,
                   "changed": summary.get("changed"), "busy_before": busy, "load_before": load}
            print(json.dumps(row), flush=True)
            if row["state"] != "succeeded" or first_ms is None:
                raise SystemExit(f"the job did not change the hosts: {json.dumps(state)[:3000]}\n"
                                 f"{open(daemon.log_path).read()[-3000:]}")
            rows.append(row)
    finally:
        daemon.stop()
    return rows


# ---- the tables -------------------------------------------------------------------------

def med(rows, key):
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else float("nan")


def tables(accept, first, a):
    out = []
    if accept:
        out.append(f"Accepting: {a.deliveries} signed deliveries from {a.senders} concurrent senders, "
                   f"{a.reps} repetitions per tool (median; min-max of the repetitions' values in brackets).\n")
        out.append("| tool | 2xx | p50 ms | p99 ms | max ms | deliveries/s | server CPU ms per delivery "
                   "| sender CPU s | jobs | 2xx not in the store |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for tool in a.tools:
            rows = [r for r in accept if r["tool"] == tool]
            if not rows:
                continue

            def cell(key, fmt="{:.1f}"):
                vals = [r[key] for r in rows]
                return f"{fmt.format(statistics.median(vals))} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"
            per = [r["server_cpu_s"] * 1000 / r["deliveries"] for r in rows]
            jobs = "-" if rows[0]["jobs"] is None else "/".join(str(r["jobs"]) for r in rows)
            out.append(f"| {tool} | {'/'.join(str(r['ok']) for r in rows)} | {cell('p50_ms')} | "
                       f"{cell('p99_ms')} | {cell('max_ms')} | {cell('per_s', '{:.0f}')} | "
                       f"{statistics.median(per):.2f} | {cell('sender_cpu_s', '{:.2f}')} | {jobs} | "
                       f"{sum(r['missing'] for r in rows)} |")
        out.append("")
    if first:
        out.append("Push to first host changed (toyc + SQLite; from just before `git push`; "
                   "median (min-max) of the pushes):\n")
        out.append("| hosts | run | pushes | first host changed ms | job done ms | changes per push |")
        out.append("|---:|---|---:|---:|---:|---:|")
        for n in sorted({r["hosts"] for r in first}):
            for kind in ("bootstrap", "push"):
                rows = [r for r in first if r["hosts"] == n and r["kind"] == kind]
                if not rows:
                    continue
                f = [r["first_changed_ms"] for r in rows]
                j = [r["job_done_ms"] for r in rows]
                out.append(f"| {n} | {kind} | {len(rows)} | {statistics.median(f):.0f} ({min(f):.0f}-{max(f):.0f}) "
                           f"| {statistics.median(j):.0f} ({min(j):.0f}-{max(j):.0f}) | {rows[0]['changed']} |")
        out.append("")
    return "\n".join(out)


def main():
    global MAX_WAIT
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deliveries", type=int, default=1000)
    p.add_argument("--senders", type=int, default=20)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tools", default="toyc-sqlite,toyc-postgres,webhook")
    p.add_argument("--hosts", default="1,20")
    p.add_argument("--first-reps", type=int, default=5)
    p.add_argument("--no-first-host", action="store_true")
    p.add_argument("--no-accept", action="store_true")
    p.add_argument("--max-wait", type=int, default=60)
    p.add_argument("--webhook-port", type=int, default=18471)
    p.add_argument("--untracked-branch", action="store_true",
                   help="a diagnostic: push to a branch toyc does not track (recorded, no job); toyc only")
    a = p.parse_args()
    global BRANCH
    if a.untracked_branch:
        BRANCH = "elsewhere"
    a.tools = [t for t in a.tools.split(",") if t]
    MAX_WAIT = a.max_wait
    os.makedirs(D, exist_ok=True)
    raw = open(os.path.join(D, "raw.jsonl"), "w")
    accept, first = [], []
    if not a.no_accept:
        repo = RoleRepo(os.path.join(D, "git"), "// nothing to do: the accept run measures the webhooks\n")
        repo.base = repo.commit({"x": "1\n"}, "x", push=True)
        pg = Postgres("/tmp/toyc-bench-pg") if any(t.startswith("toyc-postgres") for t in a.tools) else None
        if pg:
            print(f"postgresql: {pg.settings()}", flush=True)
        try:
            for rep in range(a.reps):
                # The tools take turns, so that drift in the machine's load hits all of them.
                order = a.tools[rep % len(a.tools):] + a.tools[:rep % len(a.tools)]
                for tool in order:
                    row = accept_run(tool, rep, repo, a, pg)
                    raw.write(json.dumps(row) + "\n")
                    accept.append(row)
        finally:
            if pg:
                pg.stop()
    if not a.no_first_host:
        for n in [int(x) for x in a.hosts.split(",") if x]:
            for row in first_host_runs(n, a):
                raw.write(json.dumps(row) + "\n")
                first.append(row)
    raw.close()
    text = tables(accept, first, a)
    with open(os.path.join(D, "results.md"), "w") as f:
        f.write(text)
    print(text)
    bad = [r for r in accept if r["missing"] or r["ok"] != r["deliveries"] or 200 <= r["forged_status"] < 300]
    if bad:
        raise SystemExit(f"daemon_bench: {len(bad)} run(s) lost, refused or let through a delivery: see raw.jsonl")


if __name__ == "__main__":
    main()
