#!/usr/bin/env python3
"""toyc beside pyinfra and Ansible on the container hosts of hosts.sh, measured in one run.

workload: the 12-task job of ../shared/bench/peers (toyc: scripts/bench/workload.rhai;
pyinfra: deploy.py; Ansible: site.yml, copied from the peers at bench time), cold (an
empty tree on every host) and warm (right after a converged run: 0 changes), on the
same N containers. Every run is checked: every host reached, 12 x N changes cold and
none warm, and after each cold run the digest of h1's tree (content and mode of every
file, var/marker excluded) equal for all tools.

one host's cost: each tool on h1 alone, cold and warm: the processes it makes the host
start (h1's pid namespace counter, read from outside), h1's CPU time (its cgroup), and
toyc's SSH round trips (commands sent, from its debug log).

ad hoc: `toyc exec -- true` beside plain OpenSSH in a parallel shell loop (fresh
connections, default and curve25519 key exchange).

Reports median wall time, machine CPU (all processes, from /proc/stat), and the
controller's peak memory: the tool process itself plus what it started (sampled every
20 ms as the sum of PSS; toyc's ssh masters daemonise and leave the process tree, so
they are found by their control-socket path).

Usage: bench.py [--sizes 10,50] [--reps 5] [--ansible-reps 3,1] [--tools toyc,pyinfra,ansible]
                [--max-wait 300] [--no-adhoc]   (normally through run.sh)
"""
import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
W = os.path.join(HERE, ".work")
REPO = os.path.dirname(HERE)
TOYC = os.environ.get("TOYC_BENCH_BIN") or os.path.join(REPO, "target", "release", "toyc")  # TOYC_BENCH_BIN: another build
# beside the repository, or where TOYC_BENCH_PEERS says (a worktree elsewhere)
PEERS_SRC = os.environ.get("TOYC_BENCH_PEERS") or os.path.join(REPO, "..", "shared", "bench", "peers")
PEERS = os.path.join(W, "peers")  # copied from PEERS_SRC at bench time
VENV = os.path.join(W, "venv", "bin")
TASKS = 12
MAX_WAIT = 300
PEER_DIGEST = "7b857b383965"  # every peer's h1 digest, shared/bench/peers/RESULTS.md

# The peers' tree digest, run by the host's own python3 on h1 (tests/apply.rs uses it too).
with open(os.path.join(HERE, "tree_digest.py")) as _f:
    DIGEST_PY = _f.read()


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
    """Wait (up to MAX_WAIT s) until the machine is at most `limit` busy: other work on
    the 2 cores (builds) would otherwise be measured as the tool's. Returns the last
    busy fraction seen (recorded with the run)."""
    end = time.monotonic() + MAX_WAIT
    while True:
        busy = busy_fraction()
        if busy <= limit or time.monotonic() >= end:
            return busy
        time.sleep(2)


def hosts():
    """(name, address) of every host, as hosts.sh started them."""
    return [(name, addr) for name, addr, _ in host_ports()]


def host_ports():
    """(name, address, sshd port) of every host."""
    with open(os.path.join(W, "hosts.list")) as f:
        return [tuple(line.split()[:3]) for line in f if line.strip()]


def loopback():
    """Whether the hosts are sshd daemons on this machine (hosts.sh --loopback), sharing its
    file system: the workload's trees are then /tmp/toybench/h<i> here."""
    with open(os.path.join(W, "hosts.kind")) as f:
        return f.read().strip() == "loopback"


# How each tool reaches each host: name -> (address, port). Straight to the container
# (port 22) at RTT 0; through delay_proxy.py's port for the host otherwise.
ROUTES = {}
PROXY = None
PROXY_BASE_PORT = 20000  # below the ephemeral ports (32768-60999): a client socket could hold one


def route(rtt):
    """Point every tool at the hosts directly (rtt 0) or through a delaying proxy that adds
    `rtt` ms per round trip (half each way): toyc's inventory and known_hosts, the peers'
    hosts.list (pyinfra) and Ansible's inventory (written by its setup) all follow."""
    global PROXY
    if PROXY:
        PROXY.terminate()
        PROXY.wait()
        PROXY = None
    listed = host_ports()
    if rtt:
        maps = [f"127.0.0.1:{PROXY_BASE_PORT + i}={addr}:{port}" for i, (_, addr, port) in enumerate(listed)]
        PROXY = subprocess.Popen(["python3", os.path.join(HERE, "delay_proxy.py"), "--rtt", str(rtt)] +
                                 sum((["--map", m] for m in maps), []), stdout=subprocess.PIPE)
        if PROXY.stdout.readline().strip() != b"ready":
            raise SystemExit("delay_proxy.py did not start")
    ROUTES.clear()
    for i, (name, addr, port) in enumerate(listed):
        ROUTES[name] = ("127.0.0.1", PROXY_BASE_PORT + i) if rtt else (addr, int(port))
    keys = {}
    with open(os.path.join(W, "known_hosts.direct")) as f:
        for line in f:
            addr, key = line.split(" ", 1)
            keys[addr] = key.strip()
    with open(os.path.join(W, "known_hosts"), "w") as f:
        for name, addr, port in listed:
            a, p = ROUTES[name]
            f.write(f"{a if p == 22 else f'[{a}]:{p}'} {keys[addr if port == '22' else f'[{addr}]:{port}']}\n")
    with open(os.path.join(W, "inventory.yml"), "w") as f:
        f.write(f"ssh: {{user: root, identity: {W}/id_ed25519, known_hosts: {W}/known_hosts}}\nhosts:\n")
        for name, _, _ in listed:
            a, port = ROUTES[name]
            f.write(f"  {name}: {{address: {a}, ssh: {{port: {port}}}, vars: {{root: /tmp/toybench/{name}}}}}\n")
    if os.path.isdir(os.path.join(PEERS, ".work")):
        write_peer_hosts()


def clean_roots():
    """Cold state: the workload's tree removed on every host (untimed)."""
    if loopback():
        shutil.rmtree("/tmp/toybench", ignore_errors=True)
        return
    procs = [subprocess.Popen(["docker", "exec", f"toyc-bench-{name}", "rm", "-rf", "/tmp/toybench"])
             for name, _ in hosts()]
    for p in procs:
        p.wait()


def digest_h1():
    here = [] if loopback() else ["docker", "exec", "toyc-bench-h1"]
    p = subprocess.run(here + ["python3", "-c", DIGEST_PY, "/tmp/toybench/h1"],
                       capture_output=True, text=True)
    return p.stdout.strip() or f"error: {p.stderr.strip()[-200:]}"


# The controller's CPU: every run starts in this cpuacct cgroup, which its children join
# and cannot leave by daemonising (toyc's ssh masters, Ansible's ControlPersist ones):
# user + sys of the tool and all its ssh processes, and of nothing else (the hosts are
# containers in their own cgroups; delay_proxy.py is started outside it).
CGROUP = "/sys/fs/cgroup/cpuacct/toyc-bench-controller"


def cgroup_ns():
    try:
        with open(os.path.join(CGROUP, "cpuacct.usage")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def join_cgroup():
    try:
        with open(os.path.join(CGROUP, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        pass


def measure(argv, marker=None, prep=None, cwd=None, env=None):
    if prep:
        prep()
    try:
        os.makedirs(CGROUP, exist_ok=True)
    except OSError:
        pass
    busy = wait_quiet()
    b0, _ = jiffies()
    c0 = cgroup_ns()
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         cwd=cwd, env=env, preexec_fn=join_cgroup)
    s = Sampler(p.pid, marker)
    s.start()
    out, err = p.communicate()
    wall = time.monotonic() - start
    b1, _ = jiffies()
    s.stop.set()
    s.join()
    time.sleep(0.1)  # masters that outlive the tool by a moment
    c1 = cgroup_ns()
    ctl = round((c1 - c0) / 1e9, 3) if None not in (c0, c1) else None
    return {"wall_s": round(wall, 3), "rc": p.returncode, "own_rss_mib": round(s.peak_own_rss / 1024, 1),
            "controller_cpu_s": ctl, "load": round(os.getloadavg()[0], 1),
            "total_pss_mib": round(s.peak_total_pss / 1024, 1),
            "machine_cpu_s": round((b1 - b0) / os.sysconf("SC_CLK_TCK"), 2), "busy_before": round(busy, 2),
            "stdout": out.decode(errors="replace"), "stderr": err.decode(errors="replace")}


# ------------------------------------------------------------------------ the tools

# toyc's run directory (control sockets) goes under this short directory, so the memory
# sampler finds this run's ssh masters and not those of other toyc runs on the machine.
# It is toyc's state directory, so its run directories (control sockets) are RUN_BASE/run/
# toyc-*; on tmpfs, as XDG_RUNTIME_DIR is on a systemd machine: on this ext4 disk creating
# and removing a master's three inodes (directory, log, socket) per host and run costs
# about 1.3 ms of kernel CPU per host (ext4's recently_deleted scan; bench/README.md).
RUN_BASE = "/dev/shm/toyc-bench"
TOYC_ENV = dict(os.environ, TOYC_STATE_DIR=RUN_BASE)


class Toyc:
    name, marker, cwd, env = "toyc", RUN_BASE + "/run/toyc-", None, TOYC_ENV

    def argv(self, n):
        return [TOYC, "run", os.path.join(REPO, "scripts", "bench", "workload.rhai"),
                "-i", os.path.join(W, "inventory.yml"), "-y",
                "--vars-file", os.path.join(REPO, "scripts", "bench", "vars.yml")]

    def before(self):
        pass

    def check(self, r, n, want):
        err = r["stderr"]
        if f"{n} ok, 0 failed, 0 unreachable" not in err:
            return f"not all {n} hosts ok: {err[-500:]}"
        if (f"{want} changed" in err) != (want > 0) or (want == 0 and " changed" in err.splitlines()[-1]):
            return f"expected {want} changes: {err[-500:]}"
        return None


class Pyinfra:
    """`pyinfra -y --parallel N inventory.py deploy.py`, as the peers measured it."""
    name, marker, env = "pyinfra", None, None
    cwd = os.path.join(PEERS, "pyinfra")

    def argv(self, n):
        return [os.path.join(VENV, "pyinfra"), "-y", "--parallel", str(n), "inventory.py", "deploy.py"]

    def before(self):
        pass

    def check(self, r, n, want):
        log = r["stdout"] + r["stderr"]
        m = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", log)
        if not m:
            return f"no Grand total: {log[-500:]}"
        num = lambda s: 0 if s == "-" else int(s)
        changed, errors = num(m.group(2)), num(m.group(3))
        reached = len(set(re.findall(r"^\s+\[(h\d+)\]\s+Connected", log, re.M)))
        if reached != n or errors or changed != want:
            return f"hosts {reached}/{n}, {changed} changed (want {want}), {errors} errors: {log[-500:]}"
        return None


class Ansible:
    """ansible-playbook with the peers' fast settings (pipelining, ControlPersist, forks=N,
    no fact gathering); every run starts without masters, so it pays its own connections."""
    name, marker = "ansible", None
    cwd = os.path.join(PEERS, "ansible")
    cp = os.path.join(PEERS, ".work", "cp")

    def __init__(self):
        self.env = None

    def setup(self, n):
        inv = os.path.join(PEERS, ".work", "inv", "hosts.ini")
        os.makedirs(os.path.dirname(inv), exist_ok=True)
        with open(inv, "w") as f:
            for name, _ in hosts():
                addr, port = ROUTES[name]
                f.write(f"{name} ansible_host={addr} ansible_port={port} root=/tmp/toybench/{name}\n")
        self.env = dict(os.environ, PATH=VENV + ":" + os.environ["PATH"],
                        ANSIBLE_CONFIG=os.path.join(self.cwd, "ansible.cfg"), ANSIBLE_INVENTORY=inv,
                        ANSIBLE_FORKS=str(max(n, 5)), ANSIBLE_SSH_CONTROL_PATH_DIR=self.cp,
                        ANSIBLE_PRIVATE_KEY_FILE=os.path.join(PEERS, ".work", "keys", "id_ed25519"),
                        ANSIBLE_LOCAL_TEMP=os.path.join(PEERS, ".work", "ansible-tmp"), ANSIBLE_NOCOLOR="1")

    def argv(self, n):
        return [os.path.join(VENV, "ansible-playbook"), "site.yml"]

    def before(self):
        for s in glob.glob(os.path.join(self.cp, "*")):
            subprocess.run(["ssh", "-o", f"ControlPath={s}", "-O", "exit", "x"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def check(self, r, n, want):
        rec = re.findall(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", r["stdout"], re.M)
        changed = sum(int(x[2]) for x in rec)
        errors = sum(int(x[3]) + int(x[4]) for x in rec)
        if len(rec) != n or errors or changed != want:
            return f"hosts {len(rec)}/{n}, {changed} changed (want {want}), {errors} errors: {r['stdout'][-500:]}"
        return None


def prepare_peers():
    """Copy the peers' workload, deploy and playbook beside their `.work` (hosts.list,
    key), which their inventory and config read relative to themselves."""
    shutil.rmtree(PEERS, ignore_errors=True)
    for d in ("ansible", "pyinfra", "workload"):
        shutil.copytree(os.path.join(PEERS_SRC, d), os.path.join(PEERS, d))
    keys = os.path.join(PEERS, ".work", "keys")
    os.makedirs(keys)
    shutil.copy(os.path.join(W, "id_ed25519"), os.path.join(keys, "id_ed25519"))
    os.chmod(os.path.join(keys, "id_ed25519"), 0o600)


def write_peer_hosts():
    with open(os.path.join(PEERS, ".work", "hosts.list"), "w") as f:
        for name, _ in hosts():
            addr, port = ROUTES[name]
            f.write(f"{name} {addr} {port} /tmp/toybench/{name}\n")


# ------------------------------------------------------------------------ runs

def ssh_loop(kex):
    opts = f"-i {W}/id_ed25519 -o UserKnownHostsFile={W}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes"
    if kex:
        opts += f" -o KexAlgorithms={kex}"
    loop = " ".join(f"ssh {opts} -p {ROUTES[name][1]} root@{ROUTES[name][0]} true &" for name, _ in hosts())
    return ["bash", "-c", f"{loop} wait"]


def summarize(runs, **key):
    walls = [r["wall_s"] for r in runs]
    med = lambda k: statistics.median(r[k] for r in runs)
    return dict(key, hosts="loopback" if loopback() else "containers", reps=len(runs), median_s=statistics.median(walls), min_s=min(walls), max_s=max(walls),
                machine_cpu_s=med("machine_cpu_s"), own_rss_mib=med("own_rss_mib"),
                total_pss_mib=med("total_pss_mib"), busy_before=max(r["busy_before"] for r in runs),
                controller_cpu_s=statistics.median(r["controller_cpu_s"] or 0 for r in runs),
                load=max(r["load"] for r in runs))


def record(row):
    with open(os.path.join(W, "raw.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


class ToolFailed(Exception):
    """A tool's run failed or did not do the workload (wrong change count, host missing)."""


def run_workload(tool, n, reps, warm_up, rtt=0):
    """(cold, warm) x reps; cold from an empty tree, warm right after it."""
    tool.before()
    if warm_up:  # page cache, Python bytecode; unmeasured
        measure(tool.argv(n), tool.marker, clean_roots, tool.cwd, tool.env)
    runs = {"cold": [], "warm": []}
    digests = set()
    for rep in range(reps):
        for scenario in ("cold", "warm"):
            def prep():
                if scenario == "cold":
                    clean_roots()
                tool.before()
            r = measure(tool.argv(n), tool.marker, prep, tool.cwd, tool.env)
            problem = f"exit status {r['rc']}: {r['stderr'][-1500:]}" if r["rc"] else \
                tool.check(r, n, TASKS * n if scenario == "cold" else 0)
            if problem:
                raise ToolFailed(f"{tool.name} {scenario} at N={n}, rep {rep}: {problem}")
            if scenario == "cold":
                digests.add(digest_h1())
            runs[scenario].append(r)
            record({k: v for k, v in r.items() if k not in ("stdout", "stderr")}
                   | {"tool": tool.name, "scenario": scenario, "n": n, "rtt": rtt, "rep": rep})
    tool.before()
    return [summarize(runs[s], tool=tool.name, scenario=s, n=n, rtt=rtt, digest=",".join(sorted(digests)))
            for s in ("cold", "warm")]


def run_adhoc(n, reps, rtt=0):
    cases = {
        "toyc exec -- true": ([TOYC, "exec", "-i", os.path.join(W, "inventory.yml"), "--", "true"], Toyc.marker),
        "ssh loop (default kex)": (ssh_loop(None), None),
        "ssh loop (curve25519)": (ssh_loop("curve25519-sha256"), None),
    }
    if n > 100:  # the old fixed default, beside the one from the machine's limits
        cases["toyc exec --forks 100 -- true"] = (
            [TOYC, "exec", "--forks", "100", "-i", os.path.join(W, "inventory.yml"), "--", "true"], Toyc.marker)
    rows = []
    for name, (argv, marker) in cases.items():
        runs = [measure(argv, marker, env=TOYC_ENV) for _ in range(reps)]
        bad = [r for r in runs if r["rc"] != 0]
        if bad:
            raise SystemExit(f"{name} at N={n} failed: {bad[0]['stderr'][-2000:]}")
        if name.startswith("toyc") and any(f"{n} ok, 0 failed" not in r["stderr"] for r in runs):
            raise SystemExit(f"{name}: not every host answered")
        rows.append(summarize(runs, case=name, n=n, rtt=rtt))
    return rows


# ------------------------------------------------------------------------ the deploy example

CTL = """#!/bin/sh
set -e
release=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
base=$(dirname "$(dirname "$release")")
. "$base/shared/env"
pidfile=$base/shared/pid
stop() { if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi; }
start() { cd "$base/current"; setsid python3 -m http.server "$PORT" --bind 127.0.0.1 >>"$base/shared/log" 2>&1 </dev/null & echo $! > "$pidfile"; }
case "$1" in start) start ;; stop) stop ;; restart) stop; start ;; *) exit 2 ;; esac
"""


def deploy_release(directory, version):
    """web-VERSION.tar.gz in `directory` (alone): VERSION and bin/ctl, as tests/deploy.rs makes it."""
    import io
    import tarfile
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    with tarfile.open(os.path.join(directory, f"web-{version}.tar.gz"), "w:gz") as tar:
        for name, text, mode in (("VERSION", f"web {version}\n", 0o644), ("bin/ctl", CTL, 0o755)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))


def run_deploy(n, rtt):
    """scripts/deploy.rhai shipping `web` to every host, task by task (TOYC_NO_BATCH) and
    batched: a first deploy (fresh hosts) and an upgrade, each timed, with h1's round
    trips counted from toyc's debug log."""
    d = os.path.join(W, "deploy")
    os.makedirs(os.path.join(d, "commands"), exist_ok=True)
    shutil.copy(os.path.join(REPO, "scripts", "commands", "prune_releases.rhai"), os.path.join(d, "commands"))
    names = [name for name, _ in hosts()]
    with open(os.path.join(d, "deploy.yml"), "w") as f:
        f.write("platform: python\nroot: /srv\nconcurrency: 50\nkeep_releases: 5\n"
                f"hostgroup:\n  all: [{', '.join(names)}]\nservice:\n  web: {{hosts: [all], port: 8080}}\n")
    rows = []
    for mode in ("task by task", "batched"):
        env = dict(TOYC_ENV, RUST_LOG="toyc_engine=debug")
        if mode == "task by task":
            env["TOYC_NO_BATCH"] = "1"
        procs = [subprocess.Popen(["docker", "exec", f"toyc-bench-{name}", "sh", "-c",
                                   "/srv/web/current/bin/ctl stop 2>/dev/null; rm -rf /srv/web /etc/init.d/web"])
                 for name in names]
        for p in procs:
            p.wait()
        for run, version in (("first deploy", "1.0"), ("upgrade", "1.1")):
            deploy_release(os.path.join(d, "releases"), version)
            argv = [TOYC, "run", os.path.join(REPO, "scripts", "deploy.rhai"), "--config", os.path.join(d, "deploy.yml"),
                    "-i", os.path.join(W, "inventory.yml"), "--directory", os.path.join(d, "releases"), "-y"]
            r = measure(argv, Toyc.marker, cwd=d, env=env)
            trips = sum(1 for line in r["stderr"].splitlines() if "round trip" in line and line.rstrip().endswith("h1"))
            if r["rc"] or f"{n} ok, 0 failed" not in r["stderr"]:
                raise SystemExit(f"deploy ({mode}, {run}) failed: {r['stderr'][-1500:]}")
            row = {"case": f"deploy example, {run}, {mode}", "n": n, "rtt": rtt, "wall_s": r["wall_s"],
                   "round_trips_h1": trips, "controller_cpu_s": r["controller_cpu_s"], "load": r["load"]}
            record(row)
            rows.append(row)
    return rows


def deploy_table(rows):
    lines = ["| run | N | RTT ms | wall s | round trips per host (h1) | wall / RTT | load |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        per_rtt = f"{r['wall_s'] * 1000 / r['rtt']:.1f}" if r["rtt"] else "-"
        lines.append(f"| {r['case']} | {r['n']} | {r['rtt']} | {r['wall_s']:.2f} | {r['round_trips_h1']} | {per_rtt} | {r['load']} |")
    return "\n".join(lines)


def h1_counters():
    """(processes created so far in h1's pid namespace, h1's CPU time in ms): read from
    outside, the first by one `cat` entered into the namespace (so it costs exactly one
    pid), the second from the container's cgroup (v1 or v2); None where unreadable."""
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}} {{.Id}}", "toyc-bench-h1"],
                         capture_output=True, text=True).stdout.split()
    last = subprocess.run(["nsenter", "-t", pid[0], "-p", "cat", "/proc/sys/kernel/ns_last_pid"],
                          capture_output=True, text=True).stdout.strip()
    cpu = None
    for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{pid[1]}/cpuacct.usage", 1e-6),
                        (f"/sys/fs/cgroup/system.slice/docker-{pid[1]}.scope/cpu.stat", 1e-3)):
        try:
            with open(path) as f:
                text = f.read()
            value = int(text.split()[1] if text.startswith("usage_usec") else text)
            cpu = value * scale
            break
        except (OSError, ValueError, IndexError):
            pass
    return (int(last) if last.isdigit() else None), cpu


def census(tools):
    """Each tool on h1 alone, cold then warm: the processes it makes h1 start, h1's CPU
    time, and for toyc the commands it sends (round trips, from its debug log;
    the connection itself not counted)."""
    out = []
    for name in tools:
        tool = {"toyc": Toyc, "pyinfra": Pyinfra, "ansible": Ansible}[name]()
        if hasattr(tool, "setup"):
            tool.setup(1)
        argv = tool.argv(1) + ["-l" if name == "toyc" else "--limit", "h1"]
        env = dict(tool.env or os.environ, RUST_LOG="toyc_engine=debug") if name == "toyc" else tool.env
        subprocess.run(["docker", "exec", "toyc-bench-h1", "rm", "-rf", "/tmp/toybench"], check=True)
        for scenario in ("cold", "warm"):
            tool.before()
            (p0, c0) = h1_counters()
            p = subprocess.run(argv, cwd=tool.cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            (p1, c1) = h1_counters()
            r = {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
            problem = tool.check(r, 1, TASKS if scenario == "cold" else 0) if p.returncode == 0 else p.stderr[-500:]
            row = {"tool": name, "scenario": scenario, "problem": problem,
                   "processes": p1 - p0 - 1 if None not in (p0, p1) else None,
                   "host_cpu_ms": round(c1 - c0) if None not in (c0, c1) else None}
            if name == "toyc":
                row["round_trips"] = sum(1 for line in p.stderr.splitlines() if "round trip" in line and "h1" in line)
            out.append(row)
            print(json.dumps(row), flush=True)
        tool.before()
    return out


class Results:
    """Every table's rows, gathered across the phases of one run."""

    def __init__(self):
        self.rows, self.adhoc_rows, self.per_host, self.failures, self.deploy_rows = [], [], None, [], []


def run(res, sizes, reps, ansible_reps, tools, adhoc, rtts=(0,), deploy=False, on_loopback=False):
    """Measure every case at each size on fresh hosts (containers, or loopback sshds);
    the census (h1's processes, from its pid namespace) and the deploy example (which
    writes /srv on every host) need containers."""
    os.makedirs(RUN_BASE, exist_ok=True)
    if "pyinfra" in tools or "ansible" in tools:
        prepare_peers()
    rows, adhoc_rows, failures, deploy_rows = res.rows, res.adhoc_rows, res.failures, res.deploy_rows
    for n in sizes:
        subprocess.run([os.path.join(HERE, "hosts.sh"), "start", str(n)] + (["--loopback"] if on_loopback else []),
                       check=True)
        try:
            for rtt in rtts:
                route(rtt)
                measure([TOYC, "exec", "-i", os.path.join(W, "inventory.yml"), "--", "true"], env=TOYC_ENV)  # arp, caches
                if adhoc:
                    adhoc_rows += run_adhoc(n, reps, rtt)
                if deploy and not on_loopback:
                    deploy_rows += run_deploy(n, rtt)
                for name in tools:
                    tool = {"toyc": Toyc, "pyinfra": Pyinfra, "ansible": Ansible}[name]()
                    if hasattr(tool, "setup"):
                        tool.setup(n)
                    warm_up = n == sizes[0] and rtt == rtts[0]
                    tool_reps = ansible_reps[min(sizes.index(n), len(ansible_reps) - 1)] if name == "ansible" else reps
                    try:
                        for row in run_workload(tool, n, tool_reps, warm_up, rtt):
                            rows.append(row)
                            print(json.dumps(row), flush=True)
                    except ToolFailed as e:  # the other tools' numbers still count
                        failures.append(str(e))
                        print(f"!! {e}", flush=True)
                if res.per_host is None and rtt == 0 and not on_loopback:
                    res.per_host = census(tools)
        finally:
            route(0)
            subprocess.run([os.path.join(HERE, "hosts.sh"), "stop"], check=True)


# ------------------------------------------------------------------------ report

def paid(r):
    """Median wall time over the RTT: the round trips the run actually waited for."""
    return f"{r['median_s'] * 1000 / r['rtt']:.1f}" if r.get("rtt") else "-"


def per_host_ms(r):
    """The controller's CPU (tool + its ssh processes) per host, in ms."""
    return f"{r['controller_cpu_s'] * 1000 / r['n']:.1f}" if r.get("controller_cpu_s") else "-"


def workload_table(rows):
    lines = ["| tool | run | N | hosts | RTT ms | reps | median s | min | max | wall / RTT | machine CPU s | controller CPU ms per host | load | tool process peak RSS MiB | tool + its ssh processes, peak PSS MiB | PSS per host MiB |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['scenario']} | {r['n']} | {r.get('hosts', '-')} | {r.get('rtt', 0)} | {r['reps']} | {r['median_s']:.2f} | {r['min_s']:.2f} | "
                     f"{r['max_s']:.2f} | {paid(r)} | {r['machine_cpu_s']:.1f} | {per_host_ms(r)} | {r.get('load', '-')} | "
                     f"{r['own_rss_mib']:.1f} | {r['total_pss_mib']:.1f} | "
                     f"{r['total_pss_mib'] / r['n']:.2f} |")
    return "\n".join(lines)


def ratio_table(rows):
    by = {(r["tool"], r["scenario"], r["n"], r.get("rtt", 0)): r["median_s"] for r in rows}
    peers = [t for t in ("pyinfra", "ansible") if any(r["tool"] == t for r in rows)]
    head = "| N | RTT ms | run | toyc s | " + " | ".join(f"{p} s | {p} / toyc" for p in peers) + " |"
    lines = [head, "|---:|---:|---|---:|" + "---:|---:|" * len(peers)]
    for n in sorted({r["n"] for r in rows}):
        for rtt in sorted({r.get("rtt", 0) for r in rows}):
            for s in ("cold", "warm"):
                t = by.get(("toyc", s, n, rtt))
                if t is None:
                    continue
                cells = []
                for p in peers:
                    v = by.get((p, s, n, rtt))
                    cells += [f"{v:.2f}", f"**{v / t:.1f}x**"] if v else ["-", "-"]
                lines.append(f"| {n} | {rtt} | {s} | {t:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_table(rows, trips):
    """Issue 3's targets, at the largest N measured."""
    fleet = [r for r in rows if r.get("hosts") != "loopback"] or rows
    n = max(r["n"] for r in fleet)
    by = {(r["tool"], r["scenario"]): r for r in fleet if r["n"] == n and not r.get("rtt")}
    lines = [f"| target (N={n}) | measured | met |", "|---|---|---|"]
    for peer, factor in (("pyinfra", 4), ("ansible", 50)):
        for s in ("cold", "warm"):
            t, p = by.get(("toyc", s)), by.get((peer, s))
            if t and p:
                ratio = p["median_s"] / t["median_s"]
                lines.append(f"| {s}: toyc >= {factor}x faster than {peer} | {p['median_s']:.2f} s / {t['median_s']:.2f} s = "
                             f"{ratio:.1f}x | {'yes' if ratio >= factor else 'no'} |")
    if "warm" in trips:
        lines.append(f"| warm: <= 2 SSH round trips per host | {trips['warm']} | {'yes' if trips['warm'] <= 2 else 'no'} |")
    for s in ("cold", "warm"):
        t = by.get(("toyc", s))
        if t:
            per = t["total_pss_mib"] / n
            lines.append(f"| {s}: controller memory <= 2 MiB per connected host | {t['total_pss_mib']:.1f} MiB / {n} = "
                         f"{per:.2f} MiB | {'yes' if per <= 2 else 'no'} |")
    return "\n".join(lines)


def paid_table(rows, adhoc_rows):
    """Round trips a run waits for, from the slope of its wall time between the two largest
    RTTs measured: (wall(b) - wall(a)) / (b - a), CPU time cancelling out."""
    lines = ["| tool or case | run | N | hosts | RTT a, b ms | wall a s | wall b s | round trips paid |",
             "|---|---|---:|---|---|---:|---:|---:|"]
    keyed = [((r["tool"], r["scenario"]), r) for r in rows] + [((r["case"], ""), r) for r in adhoc_rows]
    groups = {}
    for key, r in keyed:
        groups.setdefault(key + (r["n"], r.get("hosts", "")), {})[r.get("rtt", 0)] = r["median_s"]
    for (name, scenario, n, kind), by_rtt in groups.items():
        rtts = sorted(by_rtt)
        if len(rtts) < 2 or rtts[-2] == rtts[-1]:
            continue
        a, b = rtts[-2], rtts[-1]
        trips = (by_rtt[b] - by_rtt[a]) * 1000 / (b - a)
        lines.append(f"| {name} | {scenario or '-'} | {n} | {kind} | {a}, {b} | {by_rtt[a]:.2f} | {by_rtt[b]:.2f} | {trips:.1f} |")
    return "\n".join(lines)


def scale_table(rows, adhoc_rows):
    """Item 3 of issue 17: a warm run's controller CPU per host against the plain ssh
    client's (curve25519) in the same run, and the warm wall time at N=480."""
    lines = ["| N | RTT ms | case | median s | controller CPU ms per host | x plain ssh |", "|---:|---:|---|---:|---:|---:|"]
    for n in sorted({r["n"] for r in rows if r["n"] >= 200}):
        for rtt in sorted({r.get("rtt", 0) for r in rows if r["n"] == n}):
            ssh = next((r for r in adhoc_rows if r["n"] == n and r.get("rtt", 0) == rtt
                        and r["case"] == "ssh loop (curve25519)"), None)
            base = ssh["controller_cpu_s"] / n if ssh and ssh["controller_cpu_s"] else None
            cases = [(f"toyc run, {r['scenario']}", r) for r in rows if r["n"] == n and r.get("rtt", 0) == rtt] + \
                    [(r["case"], r) for r in adhoc_rows if r["n"] == n and r.get("rtt", 0) == rtt]
            for name, r in cases:
                per = r["controller_cpu_s"] / n if r.get("controller_cpu_s") else None
                ratio = f"{per / base:.2f}" if per and base else "-"
                lines.append(f"| {n} | {rtt} | {name} | {r['median_s']:.2f} | {per_host_ms(r)} | {ratio} |")
    return "\n".join(lines)


def census_table(rows):
    lines = ["| tool | run | processes started on the host | host CPU ms | SSH round trips | check |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['scenario']} | {r['processes']} | {r['host_cpu_ms']} | "
                     f"{r.get('round_trips', '-')} | {'ok' if not r['problem'] else r['problem'][:80]} |")
    return "\n".join(lines)


def adhoc_table(rows):
    lines = ["| case | N | hosts | RTT ms | median s | min | max | wall / RTT | machine CPU s | controller CPU ms per host | load | tool process peak RSS MiB | tool + its ssh processes, peak PSS MiB | PSS per host MiB |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['n']} | {r.get('hosts', '-')} | {r.get('rtt', 0)} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | {paid(r)} | "
                     f"{r['machine_cpu_s']:.1f} | {per_host_ms(r)} | {r.get('load', '-')} | {r['own_rss_mib']:.1f} | {r['total_pss_mib']:.1f} | {r['total_pss_mib'] / r['n']:.2f} |")
    return "\n".join(lines)


def main():
    global MAX_WAIT
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50", help="host counts on container hosts")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--ansible-reps", default="1",
                    help="Ansible repetitions, one number or one per size (3,1): it takes minutes per run at N=50")
    ap.add_argument("--tools", default=None, help="any of toyc,pyinfra,ansible (all)")
    ap.add_argument("--no-ansible", action="store_true", help="skip the slow Ansible runs")
    ap.add_argument("--no-adhoc", action="store_true", help="skip `toyc exec` and the ssh loops")
    ap.add_argument("--no-deploy", action="store_true", help="skip the deploy example (scripts/deploy.rhai)")
    ap.add_argument("--rtt", default="0,20,80",
                    help="round-trip times to add through delay_proxy.py, in ms")
    ap.add_argument("--scale", action="store_true",
                    help="only the scale runs: toyc and the plain-ssh floor on loopback sshd hosts")
    ap.add_argument("--no-scale", action="store_true", help="skip the scale runs")
    ap.add_argument("--scale-sizes", default="200,480", help="host counts of the scale runs")
    ap.add_argument("--scale-rtt", default="0,80", help="round-trip times of the scale runs, in ms")
    ap.add_argument("--max-wait", type=int, default=MAX_WAIT,
                    help="seconds to wait for an idle machine before each run (0: do not wait)")
    a = ap.parse_args()
    MAX_WAIT = a.max_wait
    tools = [t for t in (a.tools or "toyc,pyinfra,ansible").split(",") if t and not (a.no_ansible and t == "ansible")]
    os.makedirs(W, exist_ok=True)
    raw = os.path.join(W, "raw.jsonl")
    if os.path.exists(raw):
        os.rename(raw, raw + f".{int(time.time())}")
    ints = lambda text: [int(x) for x in text.split(",")]
    res = Results()
    phases = []
    if not a.scale:
        phases.append(lambda: run(res, ints(a.sizes), a.reps, ints(a.ansible_reps), tools, not a.no_adhoc,
                                  ints(a.rtt), not a.no_deploy))
    if a.scale or not a.no_scale:
        phases.append(lambda: run(res, ints(a.scale_sizes), min(a.reps, 3), [1], ["toyc"], True, ints(a.scale_rtt),
                                  on_loopback=True))
    for phase in phases:
        try:
            phase()
        except (Exception, SystemExit) as e:  # the report still shows what was measured
            res.failures.append(f"{type(e).__name__}: {e}")
            print(f"!! {e}", flush=True)
    rows, adhoc_rows, per_host, failures, deploy_rows = res.rows, res.adhoc_rows, res.per_host, res.failures, res.deploy_rows
    parts = ["## Workload\n", workload_table(rows)] if rows else []
    if any(r["tool"] != "toyc" for r in rows):
        parts += ["\n## toyc's speed-up (median wall time of the peer / toyc's)\n", ratio_table(rows)]
    digests = sorted({(r["tool"], r["n"], r["digest"]) for r in rows if r["scenario"] == "cold"})
    parts.append("\nh1 tree digests after cold runs: " + ", ".join(f"{t}/N={n}: {d}" for t, n, d in digests) +
                 f" (shared/bench/peers/RESULTS.md: {PEER_DIGEST})")
    trips = {r["scenario"]: r["round_trips"] for r in per_host or [] if r["tool"] == "toyc"}
    if rows:
        parts += ["\n## Targets\n", targets_table(rows, trips)]
    if per_host:
        parts += ["\n## One host's cost (h1 alone)\n", census_table(per_host)]
    if any(r.get("rtt") for r in rows):
        parts += ["\n## Round trips paid\n", paid_table(rows, adhoc_rows)]
    if adhoc_rows:
        parts += ["\n## Ad hoc\n", adhoc_table(adhoc_rows)]
    if any(r["n"] >= 200 for r in rows):
        parts += ["\n## Scale: controller CPU per host and wall time against plain ssh\n", scale_table(rows, adhoc_rows)]
    if deploy_rows:
        parts += ["\n## The deploy example (scripts/deploy.rhai), task by task and batched\n", deploy_table(deploy_rows)]
    if failures:
        parts.append("\nFailed: " + "; ".join(f[:300] for f in failures))
    text = "\n".join(parts) + "\n"
    with open(os.path.join(W, "results.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    if failures:
        raise SystemExit(f"{len(failures)} tool run(s) failed")
    if {d for _, _, d in digests} - {PEER_DIGEST}:
        raise SystemExit("the tools left different files on h1: " + ", ".join(f"{t}/N={n}: {d}" for t, n, d in digests))


if __name__ == "__main__":
    main()
