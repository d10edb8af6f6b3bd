"""Compare two sets of same-seed runs made by benchmarks/same_seed.sh: every training scalar in TensorBoard
(inspection figures and timings excluded) and every number of the runs' metrics/params JSON.

    python benchmarks/compare_runs.py OLD_DIR NEW_DIR
"""
import json, sys, glob, math
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
def scalars(d):
    out = {}
    for f in glob.glob(f"{d}/logs/**/events*", recursive=True):
        ea = EventAccumulator(f, size_guidance={"scalars": 0}); ea.Reload()
        for t in ea.Tags()["scalars"]:
            out.setdefault(t, {}).update({e.step: e.value for e in ea.Scalars(t)})
    return out
def nums(x, p=""):
    if isinstance(x, dict):
        for k, v in x.items(): yield from nums(v, f"{p}.{k}")
    elif isinstance(x, (int, float)) and not isinstance(x, bool): yield p, float(x)
a, b = sys.argv[1], sys.argv[2]
for fam, f in [("nca", "metrics.json"), ("pde", "params.json"), ("abm", "metrics.json")]:
    sa, sb = scalars(f"{a}/{fam}"), scalars(f"{b}/{fam}")
    worst, n = 0.0, 0
    for t in sa:
        if t not in sb: print(fam, "tag missing in new:", t); continue
        d = max((abs(v - sb[t][s]) for s, v in sa[t].items() if s in sb[t]), default=0)
        if d > 1e-6: print(f"  {fam} {t}: max diff {d:.3g}")
        if any(w in t for w in ("second", "time", "per_s", "speed", "inspect/")): continue
        worst, n = max(worst, d), n + len(sa[t])
    ja, jb = dict(nums(json.load(open(f"{a}/{fam}/{f}")))), dict(nums(json.load(open(f"{b}/{fam}/{f}"))))
    jw = max((abs(ja[k] - jb[k]) for k in ja if k in jb and "second" not in k), default=0)
    loss = sa.get("train/loss") or sa.get("loss") or next(iter(sa.values()))
    print(f"{fam}: {n} TensorBoard scalars over {len(sa)} tags, max |old - new| = {worst:.3g}; {f} numbers (timings excluded) max diff {jw:.3g}; "
          f"first/last loss {list(loss.values())[0]:.6g} / {list(loss.values())[-1]:.6g}")
