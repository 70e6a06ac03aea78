"""Side-by-side backup benchmarks: zerok against restic and borg (and rustic, bupstash when
installed) on the same inputs, interleaved runs (zerok, restic, ..., zerok, ...), medians.

Workloads (--workload, comma-separated):
- local: a mixed corpus in a local folder. Per tool and run: fresh repository -> first backup
  -> unchanged re-backup -> 5% in-place edit of the database file -> re-backup (bytes the
  repository grew) -> restore of the latest snapshot.
- wan: the same corpus in an S3 bucket (benches' zerok-s3: s3s-fs on loopback) behind a
  pipelined one-way delay (--delays, ms): first backup, unchanged re-backup, snapshots,
  check, restore. Tools that speak S3 only (zerok, restic, rustic).
Wall time and peak RSS come from /usr/bin/time; every tool syncs what it writes. Prints a
table per workload, writes compare.json and compare.svg in --out.
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tempfile, time

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

def timed(cmd, env, cwd=None, stdout=subprocess.DEVNULL):
    t = tempfile.NamedTemporaryFile(delete=False); t.close()
    start = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name] + cmd, env=env, cwd=cwd, check=True,
                   stdout=stdout, stderr=subprocess.DEVNULL)
    secs = time.perf_counter() - start  # /usr/bin/time rounds to 10 ms
    kb = open(t.name).read().split()[-1]
    os.unlink(t.name)
    return secs, int(kb) / 1024

def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)

class Zerok:
    name = "zerok"
    s3 = True
    def __init__(self, exe): self.exe = exe
    def init(self, repo, work, env=None):
        self.env = dict(os.environ, ZEROK_HOME=f"{work}/zerok-home", ZEROK_CACHE_DIR=f"{work}/zerok-cache", **(env or {}))
        subprocess.run([self.exe, "init", "--vault", repo, "--json"], env=self.env, check=True, stdout=subprocess.DEVNULL)
    def url(self, bucket): return f"s3://{bucket}/vault"
    def backup(self, repo, src): return timed([self.exe, "backup", src, "--vault", repo], self.env)
    def restore(self, repo, out): return timed([self.exe, "restore", "latest", "--target", out, "--vault", repo], self.env)
    def snapshots(self, repo): return timed([self.exe, "snapshots", "--vault", repo], self.env)
    def check(self, repo): return timed([self.exe, "check", "--vault", repo], self.env)

class Restic:
    name = "restic"
    s3 = True
    exe = "restic"
    def init(self, repo, work, env=None):
        self.env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_CACHE_DIR=f"{work}/{self.name}-cache", **(env or {}))
        subprocess.run([self.exe, "init", "-r", repo], env=self.env, check=True, stdout=subprocess.DEVNULL)
    def url(self, bucket): return f"s3:{self.endpoint}/{bucket}/repo"
    def backup(self, repo, src): return timed([self.exe, "-r", repo, "backup", src], self.env)
    def restore(self, repo, out): return timed([self.exe, "-r", repo, "restore", "latest", "--target", out], self.env)
    def snapshots(self, repo): return timed([self.exe, "-r", repo, "snapshots"], self.env)
    def check(self, repo): return timed([self.exe, "-r", repo, "check"], self.env)

class Rustic(Restic):
    """rustic takes restic's repository layout and flags for what is measured here."""
    name = "rustic"
    exe = "rustic"
    def init(self, repo, work, env=None):
        self.env = dict(os.environ, RUSTIC_PASSWORD="bench", RUSTIC_CACHE_DIR=f"{work}/rustic-cache", **(env or {}))
        subprocess.run([self.exe, "-r", repo, "init"], env=self.env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    def url(self, bucket):
        return (f"opendal:s3?bucket={bucket}&root=/repo&endpoint={self.endpoint}&region=us-east-1"
                f"&access_key_id={self.keys[0]}&secret_access_key={self.keys[1]}")
    def restore(self, repo, out): return timed([self.exe, "-r", repo, "restore", "latest", out], self.env)

class Borg:
    name = "borg"
    s3 = False
    def init(self, repo, work, env=None):
        self.env = dict(os.environ, BORG_PASSPHRASE="bench", BORG_BASE_DIR=f"{work}/borg-base")
        self.n = 0
        subprocess.run(["borg", "init", "--encryption=repokey", repo], env=self.env, check=True, stdout=subprocess.DEVNULL)
    def backup(self, repo, src):
        self.n += 1
        return timed(["borg", "create", "--compression", "zstd,3", f"{repo}::a{self.n}", src], self.env)
    def restore(self, repo, out):
        os.makedirs(out)
        return timed(["borg", "extract", f"{repo}::a{self.n}"], self.env, cwd=out)

class Bupstash:
    name = "bupstash"
    s3 = False
    def init(self, repo, work, env=None):
        key = f"{work}/bupstash.key"
        if not os.path.exists(key):
            subprocess.run(["bupstash", "new-key", "-o", key], check=True, stdout=subprocess.DEVNULL)
        self.env = dict(os.environ, BUPSTASH_KEY=key, BUPSTASH_REPOSITORY=repo,
                        XDG_CACHE_HOME=f"{work}/bupstash-cache")
        subprocess.run(["bupstash", "init"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        self.last = None
    def backup(self, repo, src):
        with tempfile.TemporaryFile("w+") as out:
            r = timed(["bupstash", "put", src], self.env, stdout=out)
            out.seek(0)
            self.last = out.read().strip()
        return r
    def restore(self, repo, out):
        os.makedirs(out)
        return timed(["bupstash", "restore", "--into", out, f"id={self.last}"], self.env)

PEERS = (Restic, Borg, Rustic, Bupstash)

def peers(only=None):
    """restic and borg (the script installs them), rustic and bupstash when installed; only
    those named in `only` (a list) when given."""
    return [p() for p in PEERS if shutil.which(p.exe if hasattr(p, "exe") else p.name)
            and (only is None or p.name in only)]

def run_one(tool, pristine, work):
    src = f"{work}/corpus"
    shutil.copytree(pristine, src, symlinks=True)
    os.sync()  # every tool starts on a quiet disk, not behind the copy's writeback
    repo = f"{work}/repo-{tool.name}"
    os.makedirs(work, exist_ok=True)
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
    colors = {"zerok": "#2b8a3e", "restic": "#1971c2", "borg": "#e8590c", "rustic": "#9c36b5", "bupstash": "#868e96"}
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

def s3_env(server):
    return {"AWS_ACCESS_KEY_ID": server["access_key"], "AWS_SECRET_ACCESS_KEY": server["secret_key"],
            "AWS_REGION": server["region"], "AWS_DEFAULT_REGION": server["region"],
            "AWS_ENDPOINT_URL": server["endpoint"], "AWS_ALLOW_HTTP": "true"}

class S3:
    """benches' zerok-s3 serving `root`, behind `delay_ms` each way; stops when closed."""
    def __init__(self, exe, root, delay_ms):
        os.makedirs(root, exist_ok=True)
        self.root = root
        self.proc = subprocess.Popen([exe, "--root", root, "--delay-ms", str(delay_ms)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.proc.stdout.readline())
    def bucket(self, name):
        os.makedirs(f"{self.root}/{name}", exist_ok=True)
        return name
    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

def run_wan(tool, src, work, server, n):
    """One tool across the delayed link: first backup, re-backup, snapshots, check, restore."""
    tool.endpoint, tool.keys = server.info["endpoint"], (server.info["access_key"], server.info["secret_key"])
    repo = tool.url(server.bucket(f"{tool.name}-{n}"))
    tool.init(repo, work, s3_env(server.info))
    r = {}
    r["first_s"], r["first_rss_mb"] = tool.backup(repo, src)
    r["rebackup_s"], _ = tool.backup(repo, src)
    r["snapshots_s"], _ = tool.snapshots(repo)
    r["check_s"], _ = tool.check(repo)
    r["restore_s"], r["restore_rss_mb"] = tool.restore(repo, f"{work}/restored-{tool.name}")
    shutil.rmtree(f"{work}/restored-{tool.name}", ignore_errors=True)
    return r

def medians(runs):
    keys = next(iter(runs.values()))[0].keys()
    return {t: {k: statistics.median(r[k] for r in rs) for k in keys} for t, rs in runs.items()}

def print_table(med, cols):
    print(f"{'tool':8}" + "".join(f"{c:>13}" for _, c in cols))
    for t in med:
        print(f"{t:8}" + "".join(f"{med[t][k]:13.2f}" for k, _ in cols))

def wan(a, tools, work):
    """The corpus in S3 behind each delay of --delays; returns the report."""
    pristine = f"{work}/pristine-wan"
    corpus(pristine, a.wan_size_mib)
    size_mb = du(pristine) / 1e6
    tools = [t for t in tools if t.s3]
    report = {"corpus_mb": size_mb, "runs": a.runs, "delays_ms": {}}
    for delay in a.delays:
        server = S3(a.s3, f"{work}/s3-{delay}", delay)
        try:
            runs = {t.name: [] for t in tools}
            for i in range(a.runs):
                for t in tools:
                    runs[t.name].append(run_wan(t, pristine, f"{work}/run", server, i))
                    shutil.rmtree(f"{work}/run", ignore_errors=True)
        finally:
            server.close()
        shutil.rmtree(f"{work}/s3-{delay}", ignore_errors=True)
        med = medians(runs)
        print(f"\nwan: corpus {size_mb:.0f} MB in S3 (s3s-fs) behind {delay} ms each way, {a.runs} interleaved runs, medians")
        print_table(med, [("first_s", "first s"), ("rebackup_s", "re-backup s"), ("snapshots_s", "snapshots s"),
                          ("check_s", "check s"), ("restore_s", "restore s"), ("restore_rss_mb", "restore RSS")])
        ratios = {o: {f"{k[:-2]}_speedup": med[o][k] / med["zerok"][k] for k in
                      ("first_s", "rebackup_s", "snapshots_s", "check_s", "restore_s")} for o in med if o != "zerok"}
        for o, r in ratios.items():
            print(f"zerok vs {o}: " + ", ".join(f"{k.replace('_speedup', '')} {v:.2f}x" for k, v in r.items()))
        report["delays_ms"][str(delay)] = {"medians": med, "ratios": ratios, "all_runs": runs}
    return report

def local(a, tools, work):
    """The mixed corpus in a local folder; returns the report."""
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
    shutil.rmtree(pristine, ignore_errors=True)
    med = medians(runs)
    for t in med:
        med[t]["first_mb_s"] = size_mb / med[t]["first_s"]
    print(f"local: corpus {size_mb:.0f} MB, {a.runs} interleaved runs, medians; machine: {os.cpu_count()} cores")
    print_table(med, [("first_s", "first s"), ("first_mb_s", "MB/s"), ("first_rss_mb", "RSS MB"), ("rebackup_s", "re-backup s"),
                      ("edited_added_mb", "edit +MB"), ("restore_s", "restore s"), ("restore_rss_mb", "restore RSS"), ("repo_mb", "repo MB")])
    ratios = {}
    for other in (t for t in med if t != "zerok"):
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
    return report

def lstat_walk(path):
    """Seconds for a bare walk that lstats every entry (find's %s needs the size)."""
    start = time.perf_counter()
    subprocess.run(["find", path, "-printf", "%s\n"], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start

def count_tree(path):
    files = dirs = 0
    for _, ds, fs in os.walk(path):
        dirs += len(ds); files += len(fs)
    return files, dirs + 1

def run_three(tool, src, work, restore=True):
    """First backup, unchanged re-backup, restore; stored bytes after the first."""
    repo = f"{work}/repo-{tool.name}"
    os.makedirs(work, exist_ok=True)
    tool.init(repo, work)
    r = {}
    r["first_s"], r["first_rss_mb"] = tool.backup(repo, src)
    r["repo_mb"] = du(repo) / 1e6
    r["rebackup_s"], r["rebackup_rss_mb"] = tool.backup(repo, src)
    if restore:
        os.sync()
        r["restore_s"], _ = tool.restore(repo, f"{work}/restored-{tool.name}")
        shutil.rmtree(f"{work}/restored-{tool.name}", ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)
    return r

def report_three(title, runs, limits, a):
    med = medians(runs)
    print(f"\n{title}, {a.runs} interleaved runs, medians; " + ", ".join(f"{k} {v:.2f} s" for k, v in limits.items()))
    print_table(med, [("first_s", "first s"), ("first_rss_mb", "RSS MB"), ("rebackup_s", "re-backup s"),
                      ("restore_s", "restore s"), ("repo_mb", "stored MB")])
    ratios = {o: {"first_speedup": med[o]["first_s"] / med["zerok"]["first_s"],
                  "rebackup_speedup": med[o]["rebackup_s"] / med["zerok"]["rebackup_s"],
                  "restore_speedup": med[o]["restore_s"] / med["zerok"]["restore_s"],
                  "stored_ratio": med["zerok"]["repo_mb"] / med[o]["repo_mb"]} for o in med if o != "zerok"}
    for o, r in ratios.items():
        print(f"zerok vs {o}: first {r['first_speedup']:.2f}x, re-backup {r['rebackup_speedup']:.2f}x, "
              f"restore {r['restore_speedup']:.2f}x, stored {r['stored_ratio']:.2f} of {o}'s")
    return {"medians": med, "ratios": ratios, "limits": limits, "all_runs": runs}

def tree(a, tools, work):
    """A real tree of many files in many folders (--tree, read in place)."""
    src = os.path.abspath(a.tree)
    files, dirs = count_tree(src)
    size_mb = du(src) / 1e6
    runs = {t.name: [] for t in tools}
    walks, copies = [], []
    for i in range(a.runs):
        walks.append(lstat_walk(src))
        start = time.perf_counter()
        subprocess.run(["cp", "-a", src, f"{work}/cp-a"], check=True)
        copies.append(time.perf_counter() - start)
        shutil.rmtree(f"{work}/cp-a")
        for t in tools:
            runs[t.name].append(run_three(t, src, f"{work}/run"))
            shutil.rmtree(f"{work}/run", ignore_errors=True)
    limits = {"lstat walk": statistics.median(walks), "cp -a": statistics.median(copies)}
    rep = report_three(f"tree: {src} ({files} files in {dirs} folders, {size_mb:.0f} MB)", runs, limits, a)
    rep.update(path=src, files=files, dirs=dirs, mb=size_mb)
    return rep

def small_corpus(root, files, folders, seed=11):
    """`files` files of 200 B-4 KB of JSON-like text in `folders` folders."""
    rnd = random.Random(seed)
    words = "sync vault device cursor relay snapshot chunk pack error ok user session push pull index tree".split()
    for d in range(folders):
        os.makedirs(f"{root}/d{d:04}")
    for i in range(files):
        size = rnd.randrange(200, 4097)
        parts, n = [], 0
        while n < size:
            w = f'"{rnd.choice(words)}": {rnd.randrange(10**6)}, '
            parts.append(w); n += len(w)
        with open(f"{root}/d{i % folders:04}/f{i:06}.json", "w") as f:
            f.write("{" + "".join(parts)[:size - 2] + "}")

def small(a, tools, work):
    """Many small files: first backup and what is stored."""
    src = f"{work}/small"
    small_corpus(src, a.small_files, 1000)
    size_mb = du(src) / 1e6
    runs = {t.name: [] for t in tools}
    for i in range(a.runs):
        for t in tools:
            os.sync()
            runs[t.name].append(run_three(t, src, f"{work}/run"))
            shutil.rmtree(f"{work}/run", ignore_errors=True)
    rep = report_three(f"small: {a.small_files} files of 200 B-4 KB in 1000 folders ({size_mb:.0f} MB)", runs,
                       {"lstat walk": lstat_walk(src)}, a)
    shutil.rmtree(src, ignore_errors=True)
    return rep

def make_db(path, mb, seed=5):
    """An app database of about `mb` MB, written by SQL."""
    import sqlite3
    rnd = random.Random(seed)
    words = "sync vault device cursor relay snapshot chunk pack error ok user session push pull index tree".split()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body TEXT, n INTEGER, data BLOB)")
    db.execute("CREATE INDEX items_name ON items(name)")
    rows = mb * 1_000_000 // 1500  # rows of about 1.4 KB: a message, a note, a record with text
    db.executemany("INSERT INTO items (name, body, n, data) VALUES (?, ?, ?, ?)",
                   ((f"{rnd.choice(words)}-{i}", " ".join(rnd.choice(words) for _ in range(rnd.randrange(150, 250))),
                     rnd.randrange(10**9), rnd.randbytes(64)) for i in range(rows)))
    db.commit()
    db.close()
    return rows

def day_of_use(path, rows, seed=6):
    """A day of use by SQL: 2% of rows updated, 1% inserted, 0.5% deleted, at random."""
    import sqlite3
    rnd = random.Random(seed)
    db = sqlite3.connect(path)
    db.executemany("UPDATE items SET n = ?, body = substr(body, 1, length(body) - 10) || ? WHERE id = ?",
                   ((rnd.randrange(10**9), f"{rnd.randrange(10**10):010}", rnd.randrange(1, rows + 1))
                    for _ in range(rows // 50)))
    db.executemany("INSERT INTO items (name, body, n, data) VALUES (?, ?, ?, ?)",
                   ((f"new-{i}", "inserted today " * 90, i, rnd.randbytes(64)) for i in range(rows // 100)))
    db.executemany("DELETE FROM items WHERE id = ?", ((rnd.randrange(1, rows + 1),) for _ in range(rows // 200)))
    db.commit()
    db.close()

def changed_pages(before, after, page=4096):
    n = 0
    with open(before, "rb") as a, open(after, "rb") as b:
        while True:
            x, y = a.read(page), b.read(page)
            if not x and not y:
                return n
            n += x != y

def sqlite_db(a, tools, work):
    """An app database after a day of use: bytes each tool adds."""
    pristine = f"{work}/pristine.db"
    rows = make_db(pristine, a.db_mb)
    size_mb = os.path.getsize(pristine) / 1e6
    edited = f"{work}/edited.db"
    shutil.copy(pristine, edited)
    day_of_use(edited, rows)
    floor = changed_pages(pristine, edited) * 4096 / 1e6
    runs = {t.name: [] for t in tools}
    for i in range(a.runs):
        for t in tools:
            src = f"{work}/run/app"
            os.makedirs(src)
            shutil.copy(pristine, f"{src}/app.db")
            repo = f"{work}/run/repo-{t.name}"
            t.init(repo, f"{work}/run")
            r = {}
            r["first_s"], _ = t.backup(repo, src)
            before = du(repo)
            day_of_use(f"{src}/app.db", rows)
            r["second_s"], _ = t.backup(repo, src)
            r["added_mb"] = (du(repo) - before) / 1e6
            runs[t.name].append(r)
            shutil.rmtree(f"{work}/run", ignore_errors=True)
    med = medians(runs)
    print(f"\nsqlite: a {size_mb:.0f} MB database after a day of use (2% rows updated, 1% inserted, 0.5% deleted "
          f"by SQL; the pages that changed: {floor:.1f} MB), {a.runs} interleaved runs, medians")
    print_table(med, [("first_s", "first s"), ("second_s", "second s"), ("added_mb", "added MB")])
    ratios = {o: {"added_ratio": med["zerok"]["added_mb"] / med[o]["added_mb"]} for o in med if o != "zerok"}
    for o, r in ratios.items():
        print(f"zerok vs {o}: bytes added {r['added_ratio']:.2f} of {o}'s")
    os.unlink(pristine); os.unlink(edited)
    return {"db_mb": size_mb, "changed_pages_mb": floor, "medians": med, "ratios": ratios, "all_runs": runs}

WORKLOADS = ("local", "wan", "tree", "small", "sqlite")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zerok", required=True)
    ap.add_argument("--limit", help="zerok-limit binary: measures this machine's limit for the first backup")
    ap.add_argument("--s3", help="zerok-s3 binary: the S3 server of the wan workload")
    ap.add_argument("--workload", default="local", help=f"comma-separated, of: {', '.join(WORKLOADS)}")
    ap.add_argument("--size-mib", type=int, default=300, help="local: corpus size")
    ap.add_argument("--wan-size-mib", type=int, default=113, help="wan: corpus size")
    ap.add_argument("--delays", default="10,40", help="wan: one-way delays in ms, comma-separated")
    ap.add_argument("--tree", default=sys.prefix, help="tree: the real tree backed up in place (default: this Python's)")
    ap.add_argument("--small-files", type=int, default=200_000, help="small: how many files")
    ap.add_argument("--db-mb", type=int, default=288, help="sqlite: database size")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peers", help="comma-separated peers to run (default: every one installed)")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    a.delays = [int(d) for d in a.delays.split(",") if d]
    workloads = [w for w in a.workload.split(",") if w]
    if any(w not in WORKLOADS for w in workloads):
        sys.exit(f"compare: unknown workload in {a.workload!r} (known: {', '.join(WORKLOADS)})")
    if "wan" in workloads and not a.s3:
        sys.exit("compare: the wan workload needs --s3 (the zerok-s3 binary)")
    tools = [Zerok(a.zerok)] + peers(a.peers.split(",") if a.peers is not None else None)
    report = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as work:
        if "local" in workloads:
            report.update(local(a, tools, work))
        if "wan" in workloads:
            report["wan"] = wan(a, tools, work)
        if "tree" in workloads:
            report["tree"] = tree(a, tools, work)
        if "small" in workloads:
            report["small"] = small(a, tools, work)
        if "sqlite" in workloads:
            report["sqlite"] = sqlite_db(a, tools, work)
    os.makedirs(a.out, exist_ok=True)
    json.dump(report, open(f"{a.out}/compare.json", "w"), indent=2)
    if "medians" in report:
        svg(report["medians"], list(report["medians"]), f"{a.out}/compare.svg")

if __name__ == "__main__":
    main()
