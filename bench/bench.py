#!/usr/bin/env python3
"""toyc benchmarks against the container hosts of hosts.sh, measured in one run.

ad hoc: `toyc exec -- true` on N hosts, beside plain OpenSSH in a parallel shell loop
(fresh connections, default and curve25519 key exchange). Reports the median wall time
and the controller's peak memory: toyc itself plus the ssh processes it started
(sampled every 20 ms as the sum of their RSS; ssh masters daemonise and leave the
process tree, so they are found by their control-socket path).

Usage: bench.py [--sizes 10,50] [--reps 5]   (normally through run.sh)
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
W = os.path.join(HERE, ".work")
TOYC = os.path.join(HERE, "..", "target", "release", "toyc")


def mem_kib(pid, field):
    """VmRSS from status, or Pss from smaps_rollup (shared pages divided among their users)."""
    path = f"/proc/{pid}/status" if field == "VmRSS:" else f"/proc/{pid}/smaps_rollup"
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(pid):
    out, todo = set(), [pid]
    table = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                s = f.read()
            table[int(st.split("/")[2])] = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(c for c, pp in table.items() if pp == p and c not in out)
    return out, table


class Sampler(threading.Thread):
    """Every 20 ms: the tool process's own RSS, and the summed PSS of everything it runs:
    its process tree plus daemonised ssh masters whose command line names `marker`
    (toyc's per-run directory prefix). PSS, because 50 ssh processes share most pages."""

    def __init__(self, pid, marker):
        super().__init__(daemon=True)
        self.pid, self.marker, self.stop = pid, marker, threading.Event()
        self.peak_own_rss, self.peak_total_pss = 0, 0

    def run(self):
        while not self.stop.wait(0.02):
            tree, table = children(self.pid)
            masters = {p for p in table if p not in tree and self.marker and self.marker in cmdline(p) and "ssh" in cmdline(p)}
            self.peak_own_rss = max(self.peak_own_rss, mem_kib(self.pid, "VmRSS:"))
            self.peak_total_pss = max(self.peak_total_pss, sum(mem_kib(p, "Pss:") for p in tree | masters))


def busy_fraction(seconds=1.0):
    def jiffies():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4], sum(v)
    b0, t0 = jiffies()
    time.sleep(seconds)
    b1, t1 = jiffies()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(limit=0.10, max_wait=300):
    """Wait (up to max_wait s) until the machine is at most `limit` busy: other work on
    the 2 cores (builds) would otherwise be measured as toyc's."""
    end = time.monotonic() + max_wait
    while busy_fraction() > limit and time.monotonic() < end:
        time.sleep(2)


def clean_roots():
    """Cold state: the workload's tree removed on every host (untimed)."""
    names = [f"toyc-bench-{name}" for name, _ in hosts()]
    procs = [subprocess.Popen(["docker", "exec", n, "rm", "-rf", "/tmp/toybench"]) for n in names]
    for p in procs:
        p.wait()


def measure(argv, marker=None, prep=None):
    if prep:
        prep()
    wait_quiet()
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    s = Sampler(p.pid, marker)
    s.start()
    out, err = p.communicate()
    wall = time.monotonic() - start
    s.stop.set()
    s.join()
    return {"wall_s": round(wall, 3), "rc": p.returncode, "own_rss_mib": round(s.peak_own_rss / 1024, 1),
            "total_pss_mib": round(s.peak_total_pss / 1024, 1),
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}


def hosts():
    with open(os.path.join(W, "hosts.list")) as f:
        return [line.split() for line in f if line.strip()]


def ssh_loop(kex):
    opts = f"-i {W}/id_ed25519 -o UserKnownHostsFile={W}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes"
    if kex:
        opts += f" -o KexAlgorithms={kex}"
    loop = " ".join(f"ssh {opts} root@{addr} true &" for _, addr in hosts())
    return ["bash", "-c", f"{loop} wait"]


def run(sizes, reps):
    rows = []
    for n in sizes:
        subprocess.run([os.path.join(HERE, "hosts.sh"), "start", str(n)], check=True)
        try:
            workload = [TOYC, "run", os.path.join(HERE, "..", "scripts", "bench", "workload.rhai"),
                        "-i", os.path.join(W, "inventory.yml"), "-y",
                        "--vars-file", os.path.join(HERE, "..", "scripts", "bench", "vars.yml")]
            cases = {
                "toyc exec -- true": ([TOYC, "exec", "-i", os.path.join(W, "inventory.yml"), "--", "true"], "/toyc-"),
                "toyc workload cold (12 tasks)": (workload, "/toyc-", clean_roots, 12 * n),
                "toyc workload warm (12 tasks)": (workload, "/toyc-", None, 0),
                "ssh loop (default kex)": (ssh_loop(None), None),
                "ssh loop (curve25519)": (ssh_loop("curve25519-sha256"), None),
            }
            measure(cases["toyc exec -- true"][0], "/toyc-")  # warm-up: page cache, arp
            for name, (argv, marker, *rest) in cases.items():
                prep, changes = (rest + [None, None])[:2]
                if name.startswith("toyc workload warm"):
                    measure(workload, "/toyc-")  # make sure the hosts are converged first
                runs = [measure(argv, marker, prep) for _ in range(reps)]
                bad = [r for r in runs if r["rc"] != 0]
                if bad:
                    raise SystemExit(f"{name} at N={n} failed: {bad[0]['stderr'][-2000:]}")
                if name.startswith("toyc"):
                    for r in runs:
                        if f"{n} ok, 0 failed, 0 unreachable" not in r["stderr"]:
                            raise SystemExit(f"toyc did not reach all {n} hosts: {r['stderr'][-500:]}")
                        if changes is not None and (f"{changes} changed" in r["stderr"]) != (changes > 0):
                            raise SystemExit(f"{name}: expected {changes} changes: {r['stderr'][-500:]}")
                walls = [r["wall_s"] for r in runs]
                row = {"case": name, "n": n, "median_s": statistics.median(walls), "min_s": min(walls),
                       "max_s": max(walls), "own_rss_mib": statistics.median(r["own_rss_mib"] for r in runs),
                       "total_pss_mib": statistics.median(r["total_pss_mib"] for r in runs)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            if n == sizes[0]:
                trips = round_trips(n)
                print(json.dumps({"round_trips_h1": trips}), flush=True)
                with open(os.path.join(W, "round_trips.json"), "w") as f:
                    json.dump(trips, f)
        finally:
            subprocess.run([os.path.join(HERE, "hosts.sh"), "stop"], check=True)
    return rows


def round_trips(n):
    """Commands toyc sends to h1 (connection setup excluded) in a cold and a warm run
    of the workload, from its debug log."""
    workload = [TOYC, "run", os.path.join(HERE, "..", "scripts", "bench", "workload.rhai"),
                "-i", os.path.join(W, "inventory.yml"), "-y", "-l", "h1",
                "--vars-file", os.path.join(HERE, "..", "scripts", "bench", "vars.yml")]
    env = dict(os.environ, RUST_LOG="toyc_engine=debug")
    out = {}
    clean_roots()
    for scenario in ("cold", "warm"):
        p = subprocess.run(workload, env=env, capture_output=True, text=True)
        out[scenario] = sum(1 for line in p.stderr.splitlines() if "round trip" in line and "h1" in line)
    return out


def table(rows):
    lines = ["| case | N | median s | min | max | tool process peak RSS MiB | tool + its ssh processes, peak PSS MiB | PSS per host MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['n']} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | "
                     f"{r['own_rss_mib']:.1f} | {r['total_pss_mib']:.1f} | {r['total_pss_mib'] / r['n']:.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    rows = run([int(s) for s in a.sizes.split(",")], a.reps)
    t = table(rows)
    os.makedirs(W, exist_ok=True)
    with open(os.path.join(W, "results.md"), "w") as f:
        f.write(t + "\n")
    print("\n" + t)


if __name__ == "__main__":
    main()
