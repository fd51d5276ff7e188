#!/usr/bin/env python3
"""toyc supervise beside supervisord on the same N trivial programs (`sleep`), one run.

For each supervisor: start it with N programs and wait until all run; then its RSS
(the supervisor process alone, not its programs), its CPU over an idle minute, the time
from a crash (SIGKILL of a program) to the restarted process running (several programs,
each crashed once, so no backoff is involved), and the time from SIGTERM to the
supervisor and every program gone. Raw numbers go to bench/.work/supervise/raw.json, the
table to stdout.

    python3 bench/supervise.py --toyc target/release/toyc [--programs 50] [--idle 60]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, ".work", "supervise")
TICKS = os.sysconf("SC_CLK_TCK")


def children(pid):
    """The children of `pid` (every thread's), by /proc."""
    out = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    out.update(int(c) for c in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def programs_of(sup, marks):
    """{mark: pid} of the supervisor's children running `sleep MARK`."""
    found = {}
    for child in children(sup):
        argv = cmdline(child)
        if len(argv) >= 2 and argv[0].endswith(b"sleep") and argv[1] in marks:
            found[argv[1]] = child
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15, index 11 and 12 after the command name.
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_for(what, predicate, limit=120):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    sys.exit(f"bench: {what}: not within {limit}s")


def git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def setup_toyc(n, marks):
    root = os.path.join(WORK, "toyc")
    repo = os.path.join(root, "repo")
    os.makedirs(repo)
    with open(os.path.join(repo, "README"), "w") as f:
        f.write("a program\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("-c", "user.name=bench", "-c", "user.email=bench@toyc", "commit", "-qm", "one", cwd=repo)
    conf = os.path.join(root, "conf")
    os.makedirs(conf)
    for i, mark in enumerate(marks):
        with open(os.path.join(conf, f"p{i:02}.yml"), "w") as f:
            f.write(
                f"repository: {{remote path: {repo}, local path: {root}/live/p{i:02}, branch: main}}\n"
                # Polling is toyc's job, not supervisord's: out of the idle minute.
                "timing: {minimum: 3600, maximum: 3600}\n"
                f"application: {{start: exec sleep {mark.decode()}}}\n"
            )
    return root, conf


def setup_supervisord(n, marks):
    root = os.path.join(WORK, "supervisord")
    os.makedirs(os.path.join(root, "logs"))
    lines = [
        "[supervisord]",
        "nodaemon=true",
        f"logfile={root}/supervisord.log",
        f"pidfile={root}/supervisord.pid",
        f"childlogdir={root}/logs",
        "[unix_http_server]",
        f"file={root}/supervisor.sock",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{root}/supervisor.sock",
    ]
    for i, mark in enumerate(marks):
        lines += [
            f"[program:p{i:02}]",
            f"command=sleep {mark.decode()}",
            "autorestart=true",
            "startretries=1000000",
            f"stdout_logfile={root}/logs/p{i:02}.log",
            "redirect_stderr=true",
        ]
    conf = os.path.join(root, "supervisord.conf")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    return root, conf


def measure(name, argv, env, marks, idle, crashes):
    sup = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.monotonic()
    wait_for(f"{name}: all programs running", lambda: len(programs_of(sup.pid, marks)) == len(marks))
    started = time.monotonic() - t0
    time.sleep(5)  # settle: startup work done, caches warm
    rss = rss_kb(sup.pid)
    c0, w0 = cpu_seconds(sup.pid), time.monotonic()
    time.sleep(idle)
    c1, w1 = cpu_seconds(sup.pid), time.monotonic()
    idle_cpu = (c1 - c0) / (w1 - w0) * 100

    restarts = []
    for mark in list(marks)[:crashes]:
        before = programs_of(sup.pid, {mark})[mark]
        t = time.monotonic()
        os.kill(before, signal.SIGKILL)
        while True:
            now = programs_of(sup.pid, {mark}).get(mark)
            if now and now != before:
                break
            if time.monotonic() - t > 30:
                sys.exit(f"bench: {name}: `sleep {mark.decode()}` not restarted within 30s")
            time.sleep(0.0005)
        restarts.append((time.monotonic() - t) * 1000)
        time.sleep(0.3)

    pids = list(programs_of(sup.pid, marks).values())
    t = time.monotonic()
    sup.send_signal(signal.SIGTERM)
    sup.wait(timeout=120)
    while any(alive(p) for p in pids):
        if time.monotonic() - t > 120:
            sys.exit(f"bench: {name}: programs still running 120s after SIGTERM")
        time.sleep(0.005)
    stop_all = time.monotonic() - t
    return {
        "supervisor": name,
        "programs": len(marks),
        "start_all_s": round(started, 2),
        "rss_mb": round(rss / 1024, 1),
        "idle_cpu_percent": round(idle_cpu, 3),
        "idle_seconds": idle,
        "restart_ms": [round(r, 1) for r in restarts],
        "restart_median_ms": round(statistics.median(restarts), 1),
        "restart_max_ms": round(max(restarts), 1),
        "stop_all_s": round(stop_all, 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toyc", default=os.path.join(HERE, "..", "target", "release", "toyc"))
    parser.add_argument("--supervisord", default=shutil.which("supervisord") or "supervisord")
    parser.add_argument("--programs", type=int, default=50)
    parser.add_argument("--idle", type=int, default=60, help="seconds of idle CPU measured")
    parser.add_argument("--crashes", type=int, default=10)
    args = parser.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    results = []

    marks = {str(4_000_000 + i).encode() for i in range(args.programs)}
    root, conf = setup_toyc(args.programs, sorted(marks))
    env = dict(os.environ, TOYC_STATE_DIR=os.path.join(root, "state"))
    env.pop("TOYC_STORE", None)
    results.append(measure("toyc supervise", [args.toyc, "supervise", "-c", conf], env,
                           marks, args.idle, args.crashes))

    marks = {str(5_000_000 + i).encode() for i in range(args.programs)}
    root, conf = setup_supervisord(args.programs, sorted(marks))
    results.append(measure("supervisord", [args.supervisord, "-c", conf], dict(os.environ),
                           marks, args.idle, args.crashes))

    with open(os.path.join(WORK, "raw.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"| supervisor | RSS | idle CPU ({args.idle} s) | crash → restarted, median (max) of "
          f"{args.crashes} | SIGTERM → all {args.programs} stopped | all started |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['supervisor']} | {r['rss_mb']} MB | {r['idle_cpu_percent']:.3f} % | "
              f"{r['restart_median_ms']} ms ({r['restart_max_ms']} ms) | {r['stop_all_s']} s | "
              f"{r['start_all_s']} s |")


if __name__ == "__main__":
    main()
