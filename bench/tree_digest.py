# tree_digest of shared/bench/peers/bench.py, run on a host by its python3:
#   python3 -c "$(cat tree_digest.py)" ROOT
# Content and mode of every file under ROOT, var/marker excluded (it holds a date).
# Used by bench.py and tests/apply.rs to compare what each tool leaves on a host.
# No single quotes in this file: tests/apply.rs passes its text inside them.
import hashlib, os, sys
root = sys.argv[1]
h = hashlib.sha256()
for dp, dns, fns in sorted(os.walk(root)):
    dns.sort()
    for name in sorted(dns + fns):
        p = os.path.join(dp, name)
        rel = os.path.relpath(p, root)
        h.update(f"{rel} {oct(os.stat(p).st_mode)}\n".encode())
        if os.path.isfile(p) and rel != "var/marker":
            with open(p, "rb") as f:
                h.update(f.read())
print(h.hexdigest()[:12])
