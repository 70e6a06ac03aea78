"""Side-by-side backup benchmark: zerok, restic and borg on the same corpus.

Interleaved runs (zerok, restic, borg, zerok, ...), medians over runs. For each tool and run:
fresh repository -> first backup -> unchanged re-backup -> 5% in-place edit of the database
file -> re-backup (bytes the repository grew) -> restore of the latest snapshot. Wall time
and peak RSS come from /usr/bin/time; every tool writes to a local repository and syncs
what it writes. Prints a table, writes compare.json and compare.svg in --out.
"""
import argparse, json, os, random, shutil, statistics, subprocess, tempfile, time

def corpus(root, size_mib, seed=7):
    """Deterministic mixed corpus: random blobs, text logs, an app database, 800 small files."""
    rnd = random.Random(seed)
    total = size_mib << 20
    os.makedirs(f"{root}/media"); os.makedirs(f"{root}/logs"); os.makedirs(f"{root}/small")
    for i in range(4):
        with open(f"{root}/media/blob{i}.bin", "wb") as f:
            f.write(rnd.randbytes(int(total * 0.40 / 4)))
    words = "sync vault device cursor relay snapshot chunk pack error ok user session push pull index tree".split()
    for i in range(3):
        lines, n = [], 0
        while n < total * 0.30 / 3:
            l = f"2026-11-24T10:{rnd.randrange(60):02}:{rnd.randrange(60):02}Z {rnd.choice(words)} {rnd.choice(words)}={rnd.randrange(10**6)} {rnd.choice(words)}\n"
            lines.append(l); n += len(l)
        with open(f"{root}/logs/app{i}.log", "w") as f:
            f.write("".join(lines))
    pages = int(total * 0.25) // 4096
    with open(f"{root}/app.db", "wb") as f:
        for p in range(pages):  # a page: header, some records (compressible), some random
            rec = (f"row{p:08d}|" + rnd.choice(words) * 20).encode()
            f.write((rec * (2048 // len(rec) + 1))[:2048] + rnd.randbytes(2048))
    for i in range(800):
        with open(f"{root}/small/f{i:03d}.json", "w") as f:
            f.write(json.dumps({"id": i, "name": rnd.choice(words), "values": [rnd.randrange(1000) for _ in range(rnd.randrange(5, 200))]}))
    return f"{root}/app.db"

def edit_db(path, seed):
    """Rewrites 5% of the database in place: 10 runs of 0.5% each."""
    rnd = random.Random(seed)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for _ in range(10):
            f.seek(rnd.randrange(0, size - size // 200) // 4096 * 4096)
            f.write(rnd.randbytes(size // 200))

def timed(cmd, env, cwd=None):
    t = tempfile.NamedTemporaryFile(delete=False); t.close()
    start = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name] + cmd, env=env, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secs = time.perf_counter() - start  # /usr/bin/time rounds to 10 ms
    kb = open(t.name).read().split()[-1]
    os.unlink(t.name)
    return secs, int(kb) / 1024

def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)

class Zerok:
    name = "zerok"
    def __init__(self, exe): self.exe = exe
    def init(self, repo, work):
        self.env = dict(os.environ, ZEROK_HOME=f"{work}/zerok-home")
        subprocess.run([self.exe, "init", "--vault", repo, "--json"], env=self.env, check=True, stdout=subprocess.DEVNULL)
    def backup(self, repo, src): return timed([self.exe, "backup", src, "--vault", repo], self.env)
    def restore(self, repo, out): return timed([self.exe, "restore", "latest", "--target", out, "--vault", repo], self.env)

class Restic:
    name = "restic"
    def init(self, repo, work):
        self.env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=f"{work}/restic-cache")
        subprocess.run(["restic", "init", "-r", repo], env=self.env, check=True, stdout=subprocess.DEVNULL)
    def backup(self, repo, src): return timed(["restic", "-r", repo, "backup", src], self.env)
    def restore(self, repo, out): return timed(["restic", "-r", repo, "restore", "latest", "--target", out], self.env)

class Borg:
    name = "borg"
    def init(self, repo, work):
        self.env = dict(os.environ, BORG_PASSPHRASE="bench", BORG_BASE_DIR=f"{work}/borg-base")
        self.n = 0
        subprocess.run(["borg", "init", "--encryption=repokey", repo], env=self.env, check=True, stdout=subprocess.DEVNULL)
    def backup(self, repo, src):
        self.n += 1
        return timed(["borg", "create", "--compression", "zstd,3", f"{repo}::a{self.n}", src], self.env)
    def restore(self, repo, out):
        os.makedirs(out)
        return timed(["borg", "extract", f"{repo}::a{self.n}"], self.env, cwd=out)

def run_one(tool, pristine, work):
    src = f"{work}/corpus"
    shutil.copytree(pristine, src, symlinks=True)
    os.sync()  # every tool starts on a quiet disk, not behind the copy's writeback
    repo = f"{work}/repo-{tool.name}"
    tool.init(repo, work)
    r = {}
    r["first_s"], r["first_rss_mb"] = tool.backup(repo, src)
    r["repo_mb"] = du(repo) / 2**20
    r["rebackup_s"], _ = tool.backup(repo, src)
    before = du(repo)
    edit_db(f"{src}/app.db", 99)
    r["edited_s"], _ = tool.backup(repo, src)
    r["edited_added_mb"] = (du(repo) - before) / 2**20
    r["restore_s"], r["restore_rss_mb"] = tool.restore(repo, f"{work}/restored-{tool.name}")
    for d in (src, repo, f"{work}/restored-{tool.name}"):
        shutil.rmtree(d, ignore_errors=True)
    return r

def svg(results, tools, path):
    metrics = [("first_s", "first backup s"), ("rebackup_s", "re-backup s"), ("restore_s", "restore s"), ("edited_added_mb", "5% edit: MB added")]
    colors = {"zerok": "#2b8a3e", "restic": "#1971c2", "borg": "#e8590c"}
    w, h, pad = 860, 300, 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">']
    gw = (w - pad) / len(metrics)
    for gi, (key, label) in enumerate(metrics):
        top = max(results[t][key] for t in tools) or 1
        for ti, t in enumerate(tools):
            v = results[t][key]; bh = (h - 90) * v / top
            x = pad + gi * gw + ti * (gw - 30) / len(tools); y = h - 50 - bh
            out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{(gw - 40) / len(tools):.0f}" height="{bh:.0f}" fill="{colors[t]}"/>')
            out.append(f'<text x="{x:.0f}" y="{y - 4:.0f}">{v:.2f}</text>')
        out.append(f'<text x="{pad + gi * gw:.0f}" y="{h - 30}">{label}</text>')
    for ti, t in enumerate(tools):
        out.append(f'<rect x="{pad + ti * 90}" y="{h - 18}" width="12" height="12" fill="{colors[t]}"/><text x="{pad + ti * 90 + 16}" y="{h - 8}">{t}</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zerok", required=True)
    ap.add_argument("--limit", help="zerok-limit binary: measures this machine's limit for the first backup")
    ap.add_argument("--size-mib", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    tools = [Zerok(a.zerok), Restic(), Borg()]
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as work:
        pristine = f"{work}/pristine"
        corpus(pristine, a.size_mib)
        size_mb = du(pristine) / 1e6
        limit = None
        if a.limit:
            os.sync()
            limit = json.loads(subprocess.run([a.limit, pristine, "--disk-dir", work], check=True,
                                              capture_output=True, text=True).stdout)
        runs = {t.name: [] for t in tools}
        for i in range(a.runs):
            for t in tools:
                runs[t.name].append(run_one(t, pristine, f"{work}/run"))
                shutil.rmtree(f"{work}/run", ignore_errors=True)
                os.sync()
    keys = runs["zerok"][0].keys()
    med = {t: {k: statistics.median(r[k] for r in rs) for k in keys} for t, rs in runs.items()}
    for t in med:
        med[t]["first_mb_s"] = size_mb / med[t]["first_s"]
    print(f"corpus {size_mb:.0f} MB, {a.runs} interleaved runs, medians; machine: {os.cpu_count()} cores")
    cols = [("first_s", "first s"), ("first_mb_s", "MB/s"), ("first_rss_mb", "RSS MB"), ("rebackup_s", "re-backup s"),
            ("edited_added_mb", "edit +MB"), ("restore_s", "restore s"), ("restore_rss_mb", "restore RSS"), ("repo_mb", "repo MB")]
    print(f"{'tool':8}" + "".join(f"{c:>13}" for _, c in cols))
    for t in med:
        print(f"{t:8}" + "".join(f"{med[t][k]:13.2f}" for k, _ in cols))
    ratios = {}
    for other in ("restic", "borg"):
        ratios[other] = {
            "first_backup_speedup": med[other]["first_s"] / med["zerok"]["first_s"],
            "rebackup_speedup": med[other]["rebackup_s"] / med["zerok"]["rebackup_s"],
            "restore_speedup": med[other]["restore_s"] / med["zerok"]["restore_s"],
            "edited_added_ratio": med["zerok"]["edited_added_mb"] / max(med[other]["edited_added_mb"], 1e-9),
            "peak_rss_ratio": med["zerok"]["first_rss_mb"] / med[other]["first_rss_mb"],
        }
        r = ratios[other]
        print(f"zerok vs {other}: first backup {r['first_backup_speedup']:.2f}x, re-backup {r['rebackup_speedup']:.2f}x, "
              f"restore {r['restore_speedup']:.2f}x, edit bytes {r['edited_added_ratio']:.2f} of {other}'s, peak RSS {r['peak_rss_ratio']:.2f} of {other}'s")
    report = {"corpus_mb": size_mb, "runs": a.runs, "medians": med, "ratios": ratios, "all_runs": runs}
    if limit:
        share = med["zerok"]["first_mb_s"] / limit["limit_mb_s"]
        report["limit"], report["first_backup_share_of_limit"] = limit, share
        print(f"machine limit for this first backup: {limit['limit_mb_s']:.0f} MB/s, {limit['bound']}-bound "
              f"(CPU pipeline {limit['cpu_limit_mb_s']:.0f} MB/s on {limit['cores']} cores; disk "
              f"{limit['disk_write_mb_s']:.0f} MB/s synced / stored ratio {limit['stored_ratio']:.2f} = "
              f"{limit['disk_limit_mb_s']:.0f} MB/s); zerok's first backup reaches {100 * share:.0f}% of it")
    os.makedirs(a.out, exist_ok=True)
    json.dump(report, open(f"{a.out}/compare.json", "w"), indent=2)
    svg(med, list(med), f"{a.out}/compare.svg")

if __name__ == "__main__":
    main()
