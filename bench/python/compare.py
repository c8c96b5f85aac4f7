"""Joins our figures with the peers' (bench/gpu/run.sh): ratio = peer time / our time (>1: ours faster)."""
import glob, json, sys

folder = sys.argv[1]
ours, theirs = {}, {}
for path in glob.glob(f"{folder}/ours-*.json"):
    for f in json.load(open(path))["figures"]:
        ours[(f["Benchmark"], f["Case"], f["Metric"])] = f["Value"]
for path in glob.glob(f"{folder}/peer-*.json"):
    for f in json.load(open(path))["figures"]:
        theirs[(f["Benchmark"], f["Case"], f["Metric"])] = f["Value"]


def get(d, b, c, m):
    return d.get((b, c, m), float("nan"))


rows = sorted({(b, c) for (b, c, m) in ours} | {(b, c) for (b, c, m) in theirs})
print(f"{'benchmark':10} {'case':34} {'ours ms':>9} {'peer ms':>9} {'speedup':>8} {'ours tok/s':>11} {'peer tok/s':>11} {'ours MiB':>9} {'peer MiB':>9} {'ours MFU':>8} {'peer MFU':>8}")
for b, c in rows:
    om, pm = get(ours, b, c, "time"), get(theirs, b, c, "time")
    print(f"{b:10} {c:34} {om:9.1f} {pm:9.1f} {pm / om if om == om and pm == pm else float('nan'):8.2f} "
          f"{get(ours, b, c, 'throughput'):11.0f} {get(theirs, b, c, 'throughput'):11.0f} "
          f"{get(ours, b, c, 'peak memory'):9.0f} {get(theirs, b, c, 'peak memory'):9.0f} "
          f"{get(ours, b, c, 'MFU'):8.1f} {get(theirs, b, c, 'MFU'):8.1f}")
# Optimizer: ours flat vs peer foreach, by parameter count suffix.
opt_o = {c.split()[0]: v for (b, c, m), v in ours.items() if b == "optimizer" and m == "time"}
opt_p = {c.split()[0]: v for (b, c, m), v in theirs.items() if b == "optimizer" and m == "time"}
print("optimizer step (ms):", {**{f"ours {k}": round(v, 2) for k, v in opt_o.items()}, **{f"peer {k}": round(v, 2) for k, v in opt_p.items()}})

for m in ("decode step", "prefill+1", "per op"):
    keys = sorted({(b, c) for (b, c, mm) in list(ours) + list(theirs) if mm == m})
    for b, c in keys:
        o, t = get(ours, b, c, m), get(theirs, b, c, m)
        print(f"{b:10} {c:34} {m:12} ours {o:9.3f}  peer {t:9.3f}  peer/ours {t / o if o == o and o else float('nan'):6.2f}")
