#!/usr/bin/python3
"""`make bench`: the gateway measured against this machine's own limits.

Runs everything on loopback, bounded in time: a bare libmicrohttpd server
and raw SQLite inserts as baselines, then the gateway (submit, status, list,
dashboard polling, memory, scaling with the stored count) and dispatch to
ten kubesim clusters against kubesim's own create rate. Writes the results
as JSON (--out) and prints a Markdown table. Load comes from wrk (Lua
scripts in contrib/bench/wrk) and, where a rate or a sequence matters, from
this script.

The postgres phase measures submit and status on the PostgreSQL store with
one and three gateway replicas next to SQLite's, by the same procedure,
against raw PostgreSQL inserts (pgbench) measured in the same run.

usage: contrib/bench/run.py [--build DIR] [--out FILE] [--seconds S]
"""
import argparse
import asyncio
import datetime
import glob
import http.client
import json
import os
import platform
import pwd
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WRK_DIR = os.path.join(HERE, "wrk")
BODY_FILE = os.path.join(HERE, "job.json")
TEAMS = 20
CLUSTERS = 10
STATUS_HOT = 8000    # running jobs polled: the working set of status reads
STATUS_COLD = 50000  # jobs at random out of the million


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class Proc:
    """A server process of the bench: its pid, CPU time and memory."""

    def __init__(self, args, port, log_path):
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        self.port = port
        wait_port(port, self.p)

    def _status(self, field):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB -> MiB
        return 0.0

    def rss_mib(self):
        return self._status("VmRSS")

    def peak_rss_mib(self):
        return self._status("VmHWM")

    def cpu_seconds(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, kill=False):
        if self.p.poll() is None:
            self.p.kill() if kill else self.p.terminate()
            self.p.wait(30)
        self.log.close()


def wrk(url, script, args, conns, seconds, threads=1):
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s",
           "-s", os.path.join(WRK_DIR, script), url, "--"] + args
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                         env=dict(os.environ, BENCH_WRK_DIR=WRK_DIR))
    m = re.search(r"^BENCH (.*)$", out.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no result: {out.stdout} {out.stderr}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / r["seconds"]
    return r


class Client:
    """Plain HTTP/1.1 keep-alive calls for setup and checks."""

    def __init__(self, port, token=None):
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, headers=None):
        h = {"Content-Type": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data else None)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else None


# ---- the gateway and its store ----

class Bench:
    def __init__(self, build, workdir, seconds):
        self.build, self.work, self.seconds = build, workdir, seconds
        self.results = {}
        self.body = open(BODY_FILE, "rb").read()

    def gateway(self, data, config_extra="", port=None):
        port = port or free_port()
        cfg = os.path.join(data, "bench.yaml")
        with open(cfg, "w") as f:
            f.write("log:\n  level: warn\nauth:\n  rate_per_second: 1000000\n  burst: 1000000\n")
            f.write("http:\n  max_connections_per_ip: 1024\n")
            f.write(config_extra)
        return Proc([os.path.join(self.build, "sparkgw"), "--config", cfg, "--data", data,
                     "--listen", f"127.0.0.1:{port}"], port, os.path.join(data, "gateway.log"))

    def token(self, data):
        out = subprocess.run([os.path.join(self.build, "sparkgw"), "token", "create", "--data", data,
                              "--team", "bench", "--role", "admin", "--owner", "bench"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]

    def new_data(self, name):
        d = os.path.join(self.work, name)
        os.makedirs(d)
        return d

    # -- baselines --

    def http_baseline(self):
        port = free_port()
        one = os.path.join(self.work, "one-path.txt")
        with open(one, "w") as f:
            f.write("/baseline\n")
        p = Proc([os.path.join(self.build, "bench-http-baseline"), f"127.0.0.1:{port}", "2"],
                 port, os.path.join(self.work, "http-baseline.log"))
        try:
            # Baselines are the best of two runs: noise on a shared machine
            # then lowers the gateway's ratios, never raises them.
            r = max((wrk(f"http://127.0.0.1:{port}", "paths.lua", [one], 64, self.seconds)
                     for _ in range(2)), key=lambda x: x["rps"])
        finally:
            p.stop()
        self.results["http_baseline"] = {"rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                                         "connections": 64}
        log(f"HTTP baseline: {r['rps']:.0f} req/s")

    def store_baseline(self):
        best = {}
        for k in range(2):
            out = subprocess.run([os.path.join(self.build, "bench-store-baseline"),
                                  os.path.join(self.work, f"store-baseline-{k}.db"), BODY_FILE,
                                  str(max(2, self.seconds // 2))],
                                 capture_output=True, text=True, check=True)
            for key, v in json.loads(out.stdout).items():
                best[key] = max(best.get(key, 0), v)
        self.results["store_baseline"] = best
        log(f"store baseline: {best}")

    # -- submit --

    def submit_run(self, port, token, conns, seconds, tag):
        return wrk(f"http://127.0.0.1:{port}", "submit.lua", [BODY_FILE, tag, token], conns, seconds)

    def submit(self):
        data = self.new_data("submit")
        token = self.token(data)
        gw = self.gateway(data)
        try:
            time.sleep(0.5)
            idle = gw.rss_mib()
            runs = {}
            for conns in (16, 64):
                r = self.submit_run(gw.port, token, conns, self.seconds, f"c{conns}")
                runs[conns] = r
                log(f"submit c{conns}: {r['rps']:.0f}/s p99 {r['p99_ms']:.1f} ms {r['statuses']}")
            peak = gw.peak_rss_mib()
        finally:
            # Killed, not stopped: what was answered 201 must be on disk.
            gw.stop(kill=True)
        created = sum(r["statuses"].get("201", 0) for r in runs.values())
        db = sqlite3.connect(f"file:{data}/sparkgw.db?mode=ro", uri=True)
        stored = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
        db.close()
        base = self.results["store_baseline"]["jobs_per_s_64_per_txn"]
        self.results["submit"] = {
            str(c): {"rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                     "p999_ms": r["p999_ms"], "statuses": r["statuses"],
                     "socket_errors": r["socket_errors"], "ratio_to_store_64": r["rps"] / base}
            for c, r in runs.items()}
        self.results["submit_durability"] = {"answered_201": created, "stored_after_kill_9": stored}
        self.results["memory"] = {"idle_mib": idle, "peak_under_submit_load_mib": peak}
        log(f"durability: {created} answered 201, {stored} stored after kill -9")

    # -- PostgreSQL: one and three replicas, next to SQLite --

    def store_figures(self, gws, token, ids_of, tag):
        """Submit (64 connections over the replicas) then status GETs of the
        newest jobs submitted, the same way on any store."""
        def parallel(fn):
            out = [None] * len(gws)
            threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, fn(k))) for k in range(len(gws))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return out
        conns = 64 // len(gws)
        sub = parallel(lambda k: self.submit_run(gws[k].port, token, conns, self.seconds, f"{tag}-{k}"))
        paths = os.path.join(self.work, f"status-{tag}.txt")
        ids = ids_of(STATUS_HOT)
        with open(paths, "w") as f:
            for i in ids:
                f.write(f"/api/v1/jobs/{i}\n")
        parallel(lambda k: wrk(f"http://127.0.0.1:{gws[k].port}", "paths.lua", [paths, token], conns, 2))
        st = parallel(lambda k: wrk(f"http://127.0.0.1:{gws[k].port}", "paths.lua", [paths, token], conns,
                                    self.seconds))
        row = {"replicas": len(gws),
               "submit_rps": sum(r["rps"] for r in sub), "submit_p99_ms": max(r["p99_ms"] for r in sub),
               "submit_statuses": {k: sum(r["statuses"].get(k, 0) for r in sub)
                                   for k in set().union(*(r["statuses"] for r in sub))},
               "status_rps": sum(r["rps"] for r in st), "status_p99_ms": max(r["p99_ms"] for r in st),
               "status_jobs": len(ids)}
        log(f"{tag}: submit {row['submit_rps']:.0f}/s p99 {row['submit_p99_ms']:.1f} ms "
            f"{row['submit_statuses']}; status {row['status_rps']:.0f}/s p99 {row['status_p99_ms']:.1f} ms")
        return row

    def postgres(self):
        pg = Postgres()
        try:
            bench_db = pg.database("baseline")
            pg.sql("baseline", "CREATE TABLE rows (id bigserial PRIMARY KEY, body text NOT NULL)")
            row = "INSERT INTO rows (body) VALUES (repeat('x', 2048));\n"
            one = max(pg.pgbench("baseline", row, max(2, self.seconds // 2)) for _ in range(2))
            many = max(pg.pgbench("baseline", "BEGIN;\n" + row * 64 + "COMMIT;\n", max(2, self.seconds // 2))
                       for _ in range(2)) * 64
            del bench_db
            base = {"rows_per_s_1_per_txn": one, "rows_per_s_64_per_txn": many}
            log(f"PostgreSQL baseline: {one:.0f} rows/s 1/txn, {many:.0f} 64/txn")
            rows = {}
            # SQLite by the same procedure, for the comparison.
            data = self.new_data("pg-compare-sqlite")
            token = self.token(data)
            gw = self.gateway(data)
            try:
                def sqlite_ids(n):
                    db = sqlite3.connect(f"file:{data}/sparkgw.db?mode=ro", uri=True)
                    ids = [r[0] for r in db.execute("SELECT id FROM jobs ORDER BY seq DESC LIMIT ?", (n,))]
                    db.close()
                    return ids
                rows["sqlite_1"] = self.store_figures([gw], token, sqlite_ids, "sqlite-1")
            finally:
                gw.stop()
            for n in (1, 3):
                dsn = pg.database(f"replicas{n}")
                extra = f"store: {{driver: postgres, dsn: '{dsn}'}}\n"
                out = subprocess.run([os.path.join(self.build, "sparkgw"), "token", "create", "--dsn", dsn,
                                      "--team", "bench", "--role", "admin", "--owner", "bench"],
                                     capture_output=True, text=True, check=True)
                token = out.stdout.strip().splitlines()[-1]
                gws = [self.gateway(self.new_data(f"pg{n}-r{k}"), extra) for k in range(n)]
                try:
                    rows[f"postgres_{n}"] = self.store_figures(
                        gws, token, lambda m, n=n: pg.sql(f"replicas{n}",
                                                          f"SELECT id FROM jobs ORDER BY seq DESC LIMIT {m}"),
                        f"postgres-{n}")
                finally:
                    for g in gws:
                        g.stop()
            for key, r in rows.items():
                if key.startswith("postgres"):
                    r["submit_ratio_to_postgres_64"] = r["submit_rps"] / many
            self.results["postgres"] = {"baseline": base, "runs": rows}
        finally:
            pg.stop()

    # -- a store of many jobs --

    def seed(self, data, total):
        """Grows the store to `total` jobs shaped as the gateway writes them:
        labels (20 teams), the submitted spec, five events each, mostly
        finished, 3% running. Written straight to SQLite while no gateway runs."""
        db = sqlite3.connect(os.path.join(data, "sparkgw.db"))
        have = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
        if total <= have:
            return
        doc = json.loads(self.body)
        spec = json.dumps(doc["spec"], separators=(",", ":"))
        db.executescript("PRAGMA journal_mode = DELETE; PRAGMA synchronous = OFF;"
                         " PRAGMA cache_size = -262144;")
        start = time.time()
        ev0 = db.execute("SELECT coalesce(max(seq), 0) FROM job_events").fetchone()[0]
        now = int(time.time() * 1000)
        params = {"lo": have + 1, "hi": total, "spec": spec, "now": now, "ev0": ev0, "have": have}
        with db:
            db.execute("CREATE TEMP TABLE n (i INTEGER PRIMARY KEY, state TEXT, created INTEGER, team TEXT)")
            db.execute("""
                WITH RECURSIVE c(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM c WHERE i < :hi)
                INSERT INTO n SELECT i,
                    CASE WHEN i % 100 < 3 THEN 'RUNNING' WHEN i % 100 < 8 THEN 'FAILED'
                         WHEN i % 100 < 10 THEN 'CANCELLED' ELSE 'SUCCEEDED' END,
                    :now - 864000000 + i * 10, printf('t%02d', i % 20)
                FROM c""", params)
            db.execute("""
                INSERT INTO jobs (seq, id, name, user, state, reason, labels, spec, created_ms,
                    updated_ms, rv, cluster, namespace, driver_pod, spark_ui, placement, priority,
                    team, pool, cores_milli, memory_mib, gpus, run, ttl_s, cleaned_ms)
                SELECT 1000000000 + i, printf('jseed%016d', i), 'daily-sessionize', 'bench', state,
                    CASE state WHEN 'RUNNING' THEN 'Running' WHEN 'FAILED' THEN 'NonZeroExitCode'
                         WHEN 'CANCELLED' THEN 'Cancelled' ELSE 'Completed' END,
                    json_object('accelerator', 'cpu', 'priority', 'normal', 'team', team,
                                'workload', 'etl'),
                    :spec, created, created + 600000, :ev0 + (i - :have) * 5,
                    printf('sim-%02d', i % 10), 'spark-jobs', printf('jseed%016d-driver', i), NULL,
                    json_object('pool', 'batch', 'cluster', printf('sim-%02d', i % 10),
                                'namespace', 'spark-jobs', 'namespaceGroup', 'shared'),
                    4, team, 'batch', 3000, 12288, 0, 1, -1,
                    CASE state WHEN 'RUNNING' THEN 0 ELSE created + 4200000 END
                FROM n""", params)
            for k, key in enumerate(("accelerator", "priority", "team", "workload")):
                value = {"accelerator": "'cpu'", "priority": "'normal'", "team": "team",
                         "workload": "'etl'"}[key]
                db.execute(f"INSERT INTO job_labels (job_seq, key, value, state)"
                           f" SELECT 1000000000 + i, '{key}', {value}, state FROM n")
            db.execute("""
                INSERT INTO job_events (seq, job_seq, time_ms, state, previous, reason)
                SELECT :ev0 + (i - :have - 1) * 5 + k, 1000000000 + i, created + k * 1000,
                    CASE k WHEN 1 THEN 'QUEUED' WHEN 2 THEN 'DISPATCHING' WHEN 3 THEN 'SUBMITTED'
                           WHEN 4 THEN 'RUNNING' ELSE state END,
                    CASE k WHEN 1 THEN NULL WHEN 2 THEN 'QUEUED' WHEN 3 THEN 'DISPATCHING'
                           WHEN 4 THEN 'SUBMITTED' ELSE 'RUNNING' END,
                    CASE k WHEN 1 THEN 'Submitted' WHEN 2 THEN 'Claimed' WHEN 3 THEN 'DriverCreated'
                           WHEN 4 THEN 'Running' ELSE 'Completed' END
                FROM n, (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
                         UNION ALL SELECT 5)
                WHERE k < 5 OR state <> 'RUNNING'""", params)
            db.execute("DROP TABLE n")
        db.executescript("PRAGMA journal_mode = WAL;")
        db.close()
        os.sync()  # the seed's writeback is not the gateway's to wait for
        log(f"seeded {have} -> {total} jobs in {time.time() - start:.1f} s")

    def list_paths(self, path):
        with open(path, "w") as f:
            for t in range(TEAMS):
                f.write(f"/api/v1/jobs?labelSelector=team%3Dt{t:02d}&state=RUNNING&limit=50\n")

    def status_paths(self, data, path, hot):
        """Job paths to GET: the newest running jobs (what pollers ask for),
        or as many jobs picked at random from the whole store."""
        db = sqlite3.connect(f"file:{data}/sparkgw.db?mode=ro", uri=True)
        sql = ("SELECT id FROM jobs WHERE state = 'RUNNING' ORDER BY seq DESC LIMIT :n" if hot else
               "SELECT id FROM jobs WHERE seq IN (SELECT 1000000000 + abs(random()) % 1000000 + 1"
               " FROM jobs LIMIT :n)")
        ids = [r[0] for r in db.execute(sql, {"n": STATUS_HOT if hot else STATUS_COLD})]
        db.close()
        with open(path, "w") as f:
            for i in ids:
                f.write(f"/api/v1/jobs/{i}\n")
        return len(ids)

    def scaling(self):
        data = self.new_data("stored")
        token = self.token(data)  # also creates and migrates the store
        lists = os.path.join(self.work, "list-paths.txt")
        self.list_paths(lists)
        short = max(2, self.seconds // 2)
        rows = {}
        for total in (10_000, 100_000, 1_000_000):
            self.seed(data, total)
            gw = self.gateway(data)
            try:
                time.sleep(0.5)
                row = {"idle_rss_mib": gw.rss_mib()}
                lst = wrk(f"http://127.0.0.1:{gw.port}", "paths.lua", [lists, token], 1, short)
                row.update(list_p50_ms=lst["p50_ms"], list_p99_ms=lst["p99_ms"], list_rps=lst["rps"])
                sub = self.submit_run(gw.port, token, 64, short, f"s{total}")
                row.update(submit_rps=sub["rps"], submit_p99_ms=sub["p99_ms"])
                if total == 1_000_000:
                    self.million(gw, data, token, lists, row)
                row["rss_after_mib"] = gw.rss_mib()
            finally:
                gw.stop()
            rows[str(total)] = row
            log(f"{total} stored: {row}")
        self.results["scaling"] = rows

    def million(self, gw, data, token, lists, row):
        """Status, list and polling on the store of a million jobs."""
        base = self.results["http_baseline"]["rps"]
        status = {}
        for kind in ("hot", "cold"):
            paths = os.path.join(self.work, f"status-{kind}.txt")
            n = self.status_paths(data, paths, kind == "hot")
            if kind == "hot":  # pollers ask for the same jobs again and again
                wrk(f"http://127.0.0.1:{gw.port}", "paths.lua", [paths, token], 64, 2)
            st = wrk(f"http://127.0.0.1:{gw.port}", "paths.lua", [paths, token], 64, self.seconds)
            status[kind] = {"rps": st["rps"], "p50_ms": st["p50_ms"], "p99_ms": st["p99_ms"],
                            "statuses": st["statuses"], "distinct_jobs": n,
                            "ratio_to_http_baseline": st["rps"] / base}
            log(f"status {kind}: {st['rps']:.0f}/s ({st['rps'] / base:.0%} of baseline) {st['statuses']}")
        self.results["status"] = status
        lst = wrk(f"http://127.0.0.1:{gw.port}", "paths.lua", [lists, token], 1, self.seconds)
        self.results["list"] = {"p50_ms": lst["p50_ms"], "p99_ms": lst["p99_ms"], "rps": lst["rps"],
                                "connections": 1, "statuses": lst["statuses"]}
        log(f"list: p50 {lst['p50_ms']:.2f} ms p99 {lst['p99_ms']:.2f} ms")
        self.results["memory"]["rss_1m_jobs_after_reads_mib"] = gw.rss_mib()
        self.polling(gw, token)

    # -- dashboards polling while jobs are submitted --

    def polling(self, gw, token, pollers=200, submit_rate=200):
        seconds = self.seconds * 2
        alone = asyncio.run(load_mix(gw, token, self.body, 0, submit_rate, seconds))
        both = asyncio.run(load_mix(gw, token, self.body, pollers, submit_rate, seconds))
        self.results["polling"] = {
            "pollers": pollers, "submissions_per_s": submit_rate, "seconds": seconds,
            "gateway_cpu_submissions_only": alone["cpu"],
            "gateway_cpu_with_pollers": both["cpu"],
            "polls_per_s": both["polls"] / seconds, "poll_p50_ms": both["poll_p50_ms"],
            "poll_p99_ms": both["poll_p99_ms"], "jobs_seen_per_poll": both["jobs_per_poll"],
            "submitted_per_s": both["submitted"] / seconds}
        log(f"polling: {self.results['polling']}")

    # -- dispatch to ten kubesim clusters --

    def kubesims(self, ports):
        sims = []
        for i, port in enumerate(ports):
            sims.append(Proc([os.path.join(self.build, "kubesim"), "--listen", f"127.0.0.1:{port}",
                              "--name", f"sim-{i:02d}", "--nodes", "64", "--node-cpu", "64",
                              "--node-memory", "512Gi", "--namespace", "spark-jobs"],
                             port, os.path.join(self.work, f"kubesim-{i}.log")))
        return sims

    def shared(self):
        """Small SQL jobs on a pool's shared servers against the same jobs on
        drivers of their own: pods that ran and API server calls per job."""
        data = self.new_data("shared")
        port = free_port()
        kubeconfig = os.path.join(data, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster: {{server: "
                    f"'http://127.0.0.1:{port}'}}\ncontexts:\n- name: s\n  context: {{cluster: s, user: u}}\n"
                    f"users:\n- name: u\n  user: {{}}\n")
        policy = (f"clusters:\n  - {{name: s, kubeconfig: {kubeconfig}, context: s, mode: driver-pod}}\n"
                  "pools:\n  - name: sql\n    clusters: [s]\n"
                  "    sharedServers: {namespace: spark-shared, minServers: 1, maxServers: 2,"
                  " maxJobsPerServer: 16}\n"
                  "namespaceGroups:\n  - name: all\n    namespaces: [spark-jobs, spark-shared]\n"
                  "dispatch:\n  workers: 16\nscheduler:\n  cluster_qps: 10000\n  cluster_concurrency: 64\n")
        sim = Proc([os.path.join(self.build, "kubesim"), "--listen", f"127.0.0.1:{port}", "--name", "s",
                    "--nodes", "16", "--node-cpu", "64", "--node-memory", "512Gi", "--namespace", "spark-jobs",
                    "--namespace", "spark-shared"], port, os.path.join(self.work, "kubesim-shared.log"))
        token = self.token(data)
        gw = self.gateway(data, policy)
        jobs = 200
        out = {}
        try:
            c = Client(gw.port, token)

            def calls():
                conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
                conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
                text = conn.getresponse().read().decode()
                return sum(float(m) for m in re.findall(r"^sparkgw_apiserver_requests_total\{[^}]*\} (\S+)$",
                                                         text, re.M))

            for _ in range(100):  # the shared server up
                if c.call("POST", "/api/v1/jobs?dryRun=true", self.sql_body("shared"))[0] == 200 and \
                        count_pods(port, "spark-shared", "app.kubernetes.io%2Fcomponent%3Dspark-shared-server") >= 1:
                    break
                time.sleep(0.2)
            time.sleep(2)
            for execution in ("shared", "dedicated"):
                before_calls, first = calls(), job_count(data)
                t0 = time.time()
                submit_many(gw.port, token, self.sql_body(execution), jobs, 8)
                while ended_jobs(data) < first + jobs and time.time() - t0 < 300:
                    time.sleep(0.5)
                elapsed = time.time() - t0
                time.sleep(1)
                db = sqlite3.connect(f"file:{data}/sparkgw.db?mode=ro", uri=True)
                pods = db.execute("SELECT count(*) FROM pod_usage WHERE role <> 'statement' AND job_seq > ?",
                                  (first,)).fetchone()[0]
                ok = db.execute("SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED' AND seq > ?",
                                (first,)).fetchone()[0]
                db.close()
                servers = count_pods(port, "spark-shared",
                                     "app.kubernetes.io%2Fcomponent%3Dspark-shared-server") if execution == "shared" else 0
                out[execution] = {"jobs": jobs, "succeeded": ok, "seconds": round(elapsed, 1),
                                  "pods_per_job": (pods + servers) / jobs,
                                  "api_calls_per_job": (calls() - before_calls) / jobs}
                log(f"shared: {execution}: {out[execution]}")
        finally:
            gw.stop()
            sim.stop()
        out["pods_ratio"] = out["shared"]["pods_per_job"] / out["dedicated"]["pods_per_job"]
        out["api_calls_ratio"] = out["shared"]["api_calls_per_job"] / out["dedicated"]["api_calls_per_job"]
        self.results["shared"] = out

    def sql_body(self, execution):
        return json.dumps({"name": "ddl", "labels": {"team": "bench", "execution": execution},
                           "spec": {"type": "SQL", "sparkVersion": "3.5.1",
                                    "sql": "CREATE TABLE IF NOT EXISTS t (a INT); ALTER TABLE t SET"
                                           " TBLPROPERTIES ('k'='v')",
                                    "executor": {"instances": 1, "cores": 1},
                                    "sparkConf": {"spark.kubesim.durationSeconds": "0.5"}}}).encode()

    def kubesim_churn(self):
        """kubesim's cost a change, with few and with many objects held: a
        delete used to copy every key and collect garbage over all, a list
        to walk every object of every kind."""
        rates = {}
        for held in (1_000, 30_000):
            port = free_port()
            sim = Proc([os.path.join(self.build, "kubesim"), "--listen", f"127.0.0.1:{port}",
                        "--name", "churn", "--namespace", "spark-jobs"],
                       port, os.path.join(self.work, f"kubesim-churn-{held}.log"))
            try:
                rates[held] = churn_pairs(port, held, max(2, self.seconds // 2))
            finally:
                sim.stop()
        (p1, l1), (p30, l30) = rates[1_000], rates[30_000]
        self.results["kubesim_churn"] = {
            "pairs_per_s_1k_held": p1, "pairs_per_s_30k_held": p30, "ratio_30k_to_1k": p30 / p1,
            "lists_per_s_1k_held": l1, "lists_per_s_30k_held": l30, "list_ratio_30k_to_1k": l30 / l1}
        log(f"kubesim churn: {self.results['kubesim_churn']}")

    def dispatch(self):
        data = self.new_data("dispatch")
        ports = [free_port() for _ in range(CLUSTERS)]
        kubeconfig = os.path.join(data, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n")
            for i, p in enumerate(ports):
                f.write(f"- name: sim-{i:02d}\n  cluster: {{server: 'http://127.0.0.1:{p}'}}\n")
            f.write("contexts:\n")
            for i in range(CLUSTERS):
                f.write(f"- name: sim-{i:02d}\n  context: {{cluster: sim-{i:02d}, user: u,"
                        f" namespace: spark-jobs}}\n")
            f.write("users:\n- name: u\n  user: {}\n")
        policy = "clusters:\n" + "".join(
            f"  - {{name: sim-{i:02d}, kubeconfig: {kubeconfig}, context: sim-{i:02d},"
            f" mode: driver-pod}}\n" for i in range(CLUSTERS))
        policy += ("pools:\n  - name: batch\n    clusters: [" +
                   ", ".join(f"sim-{i:02d}" for i in range(CLUSTERS)) + "]\n"
                   "namespaceGroups:\n  - name: shared\n    namespaces:\n"
                   "      - {name: spark-jobs, maxPods: 3000}\n")

        # kubesim's own create rate: the gateway's driver pod, posted straight
        # to all ten clusters at once.
        sims = self.kubesims(ports)
        token = self.token(data)
        gw = self.gateway(data, policy)
        try:
            status, dry = Client(gw.port, token).call("POST", "/api/v1/jobs?dryRun=true", self.body)
            pod = next(m for m in dry["manifests"] if m["kind"] == "Pod")
        finally:
            gw.stop()
        pod["metadata"]["name"] = "@NAME@"
        pod_file = os.path.join(self.work, "pod.json")
        with open(pod_file, "w") as f:
            json.dump(pod, f)
        direct = max(direct_creates(ports, pod_file, self.seconds) for _ in range(2))
        for s in sims:
            s.stop()
        log(f"kubesim direct: {direct:.0f} pod creates/s over {CLUSTERS} clusters")

        sims = self.kubesims(ports)
        gw = self.gateway(data, policy +
                                "dispatch:\n  workers: 16\n"
                                "scheduler:\n  cluster_qps: 10000\n  cluster_concurrency: 64\n")
        try:
            c = Client(gw.port, token)
            time.sleep(1)
            # Idle: one job at a time, 20 ms apart.
            for i in range(200):
                c.call("POST", "/api/v1/jobs", self.body)
                time.sleep(0.02)
            time.sleep(1)
            idle = latencies(data)
            # Burst: 10,000 jobs queued while every cluster is cordoned,
            # then all released at once.
            for i in range(CLUSTERS):
                c.call("POST", f"/api/v1/clusters/sim-{i:02d}/cordon")
            submit_many(gw.port, token, self.body, 10_000, 8)
            before = count_state(data, "SUBMITTED")
            cpu0 = (gw.cpu_seconds(), sum(s.cpu_seconds() for s in sims))
            t0 = time.time()
            for i in range(CLUSTERS):
                c.call("POST", f"/api/v1/clusters/sim-{i:02d}/uncordon")
            end = t0 + 240
            while time.time() < end and count_state(data, "SUBMITTED") < before + 10_000:
                time.sleep(0.2)
            elapsed = time.time() - t0
            gw_cpu = (gw.cpu_seconds() - cpu0[0]) / elapsed
            sims_cpu = (sum(s.cpu_seconds() for s in sims) - cpu0[1]) / elapsed
            done = count_state(data, "SUBMITTED") - before
            pods = sum(count_pods(p) for p in ports)
        finally:
            gw.stop()
            for s in sims:
                s.stop()
        rate = done / elapsed
        self.results["dispatch"] = {
            "clusters": CLUSTERS, "jobs": 10_000, "drivers_created": done, "seconds": elapsed,
            "drivers_per_s": rate, "api_creates_per_s": rate * 3,
            "kubesim_direct_creates_per_s": direct, "ratio_to_kubesim_direct": rate / direct,
            "pods_on_clusters": pods, "gateway_cores": gw_cpu, "kubesims_cores": sims_cpu,
            "gateway_cpu_ms_per_job": gw_cpu * 1000 / rate, "idle_p50_ms": percentile(idle, 50),
            "idle_p99_ms": percentile(idle, 99), "idle_jobs": len(idle)}
        log(f"dispatch: {self.results['dispatch']}")


def latencies(data):
    """QUEUED (committed) -> SUBMITTED (driver created) per job, in ms."""
    db = sqlite3.connect(f"file:{data}/sparkgw.db?mode=ro", uri=True)
    rows = db.execute("SELECT s.time_ms - q.time_ms FROM job_events q JOIN job_events s"
                      " ON s.job_seq = q.job_seq AND s.state = 'SUBMITTED' WHERE q.state = 'QUEUED'")
    out = [r[0] for r in rows]
    db.close()
    return out


def count_state(data, state):
    db = sqlite3.connect(f"file:{data}/sparkgw.db?mode=ro", uri=True)
    n = db.execute("SELECT count(*) FROM job_events WHERE state = ?", (state,)).fetchone()[0]
    db.close()
    return n


def job_count(data):
    db = sqlite3.connect(f"file:{data}/sparkgw.db?mode=ro", uri=True)
    n = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    db.close()
    return n


def ended_jobs(data):
    db = sqlite3.connect(f"file:{data}/sparkgw.db?mode=ro", uri=True)
    n = db.execute("SELECT count(*) FROM jobs WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')").fetchone()[0]
    db.close()
    return n


def count_pods(port, ns="spark-jobs", selector="spark-role%3Ddriver"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")
    items = json.loads(conn.getresponse().read())["items"]
    return len(items)


def churn_pairs(port, held, seconds):
    """Create+delete pairs and pod lists per second on a kubesim already
    holding `held` ConfigMaps: what a fleet's day asks of a cluster that
    keeps objects."""
    c = http.client.HTTPConnection("127.0.0.1", port)

    def call(method, path, body=None):
        c.request(method, path, body=json.dumps(body) if body else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status
    for i in range(held):
        call("POST", "/api/v1/namespaces/spark-jobs/configmaps", {"metadata": {"name": f"held-{i}"}})
    n, end = 0, time.time() + seconds
    t0 = time.time()
    while time.time() < end:
        call("POST", "/api/v1/namespaces/spark-jobs/configmaps", {"metadata": {"name": f"x-{n}"}})
        if call("DELETE", f"/api/v1/namespaces/spark-jobs/configmaps/x-{n}") != 200:
            raise RuntimeError("kubesim refused a delete")
        n += 1
    pairs = n / (time.time() - t0)
    # A watcher's relist of the drivers, among all the other objects.
    n, end = 0, time.time() + seconds
    t0 = time.time()
    while time.time() < end:
        call("GET", "/api/v1/namespaces/spark-jobs/pods?labelSelector=spark-role%3Ddriver")
        n += 1
    return pairs, n / (time.time() - t0)


def direct_creates(ports, pod_file, seconds):
    procs = []
    for p in ports:
        procs.append(subprocess.Popen(
            ["wrk", "-t1", "-c4", f"-d{seconds}s", "-s", os.path.join(WRK_DIR, "create_pod.lua"),
             f"http://127.0.0.1:{p}", "--", pod_file],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, BENCH_WRK_DIR=WRK_DIR)))
    total = 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        r = json.loads(re.search(r"^BENCH (.*)$", out, re.M).group(1))
        total += r["statuses"].get("201", 0) / r["seconds"]
    return total


def submit_many(port, token, body, n, threads):
    def worker(k):
        c = Client(port, token)
        for _ in range(k):
            status, _ = c.call("POST", "/api/v1/jobs", body)
            if status != 201:
                raise RuntimeError(f"submit answered {status}")
    ts = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


async def http_get(reader, writer, path, headers):
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}\r\n".encode())
    return await read_response(reader)


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    return status, await reader.readexactly(length)


async def load_mix(gw, token, body, pollers, submit_rate, seconds):
    """Submissions at a steady rate, and `pollers` dashboards each asking for
    the jobs changed since their cursor once a second, as the dashboard
    does. Measures the gateway's CPU over the run."""
    auth = f"Authorization: Bearer {token}\r\n"
    stats = {"polls": 0, "poll_ms": [], "jobs": 0, "submitted": 0}
    stop = time.time() + seconds

    async def poller(k):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        cursor = None
        await asyncio.sleep(k / pollers)
        while time.time() < stop:
            t = time.time()
            if cursor is None:
                _, data = await http_get(reader, writer, "/api/v1/jobs?updatedSince=0&limit=1", auth)
                cursor = json.loads(data)["cursor"]
                # the newest change: start from there, as an opened page does
                _, data = await http_get(reader, writer, "/api/v1/jobs?limit=1", auth)
                items = json.loads(data)["items"]
                cursor = items[0]["resourceVersion"] if items else cursor
            while True:
                status, data = await http_get(reader, writer,
                                              f"/api/v1/jobs?limit=500&updatedSince={cursor}", auth)
                # Only the cursor and the count: parsing every page in
                # Python would make this client the bottleneck.
                cursor = re.search(rb'"cursor":"(\d+)"}$', data).group(1).decode()
                items = data.count(b'"resourceVersion":')
                stats["jobs"] += items
                if items < 500:
                    break
            stats["polls"] += 1
            stats["poll_ms"].append((time.time() - t) * 1000)
            await asyncio.sleep(max(0.0, 1.0 - (time.time() - t)))
        writer.close()

    async def submitter(k, per_s):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        n = 0
        next_at = time.time()
        while time.time() < stop:
            writer.write(b"POST /api/v1/jobs HTTP/1.1\r\nHost: bench\r\n" + auth.encode() +
                         b"Content-Type: application/json\r\nContent-Length: " +
                         str(len(body)).encode() + b"\r\n\r\n" + body)
            status, _ = await read_response(reader)
            stats["submitted"] += status == 201
            n += 1
            next_at += 1.0 / per_s
            await asyncio.sleep(max(0.0, next_at - time.time()))
        writer.close()

    cpu0 = gw.cpu_seconds()
    t0 = time.time()
    tasks = [poller(k) for k in range(pollers)] + [submitter(k, submit_rate / 8) for k in range(8)]
    await asyncio.gather(*tasks)
    cpu = (gw.cpu_seconds() - cpu0) / (time.time() - t0)
    return {"cpu": cpu, "polls": stats["polls"], "submitted": stats["submitted"],
            "poll_p50_ms": percentile(stats["poll_ms"], 50),
            "poll_p99_ms": percentile(stats["poll_ms"], 99),
            "jobs_per_poll": stats["jobs"] / stats["polls"] if stats["polls"] else 0}


class Postgres:
    """A PostgreSQL server of the bench's own (initdb, a loopback port), run
    as the user postgres when the bench runs as root."""

    def __init__(self):
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        # Under /tmp whatever TMPDIR is: the user postgres must reach it.
        self.dir = tempfile.mkdtemp(prefix="sparkgw-bench-pg-", dir="/tmp")
        pw = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if pw:
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

        def demote():
            if pw:
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        self.demote = demote
        data = os.path.join(self.dir, "data")
        subprocess.run([f"{self.bin}/initdb", "-D", data, "-U", "sparkgw", "-A", "trust", "-E", "UTF8"],
                       preexec_fn=demote, check=True, capture_output=True)
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "postgres.log"), "ab")
        self.p = subprocess.Popen([f"{self.bin}/postgres", "-D", data, "-p", str(self.port), "-k", self.dir,
                                   "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=300"],
                                  preexec_fn=demote, stdout=self.log, stderr=self.log)
        wait_port(self.port, self.p)
        self.dsn = f"host=127.0.0.1 port={self.port} user=sparkgw"

    def sql(self, db, text):
        out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "sparkgw", "-d", db,
                              "-Atqc", text], capture_output=True, text=True, check=True)
        return out.stdout.split()

    def database(self, name):
        self.sql("postgres", f"CREATE DATABASE {name}")
        return f"{self.dsn} dbname={name}"

    def pgbench(self, db, script, seconds):
        """Transactions a second of one client running script."""
        path = os.path.join(self.dir, "script.sql")
        with open(path, "w") as f:
            f.write(script)
        out = subprocess.run([f"{self.bin}/pgbench", "-h", "127.0.0.1", "-p", str(self.port), "-U", "sparkgw",
                              "-n", "-c", "1", "-T", str(seconds), "-f", path, db],
                             capture_output=True, text=True, check=True)
        return float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1))

    def stop(self):
        self.p.terminate()
        self.p.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def machine():
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "sqlite": sqlite3.sqlite_version, "commit": commit,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def table(r):
    sb, hb = r["store_baseline"], r["http_baseline"]
    rows = [("HTTP baseline (bare libmicrohttpd, 60-byte JSON, 64 conns)", f"{hb['rps']:,.0f} req/s", "", "")]
    rows.append(("Store baseline (raw SQLite, synchronous=FULL)",
                 f"{sb['jobs_per_s_1_per_txn']:,.0f} jobs/s 1/txn, {sb['jobs_per_s_64_per_txn']:,.0f} 64/txn", "", ""))
    for c, s in r["submit"].items():
        rows.append((f"Submit, 2 KB body, {c} conns",
                     f"{s['rps']:,.0f}/s; p50 {s['p50_ms']:.1f} p99 {s['p99_ms']:.1f} p99.9 {s['p999_ms']:.1f} ms",
                     f"{s['ratio_to_store_64']:.0%} of store 64/txn",
                     "≥ 50%" + ("" if c != "64" else ", p99 ≤ 20 ms")))
    d = r["submit_durability"]
    rows.append(("Durability (kill -9 after the submit runs)",
                 f"{d['answered_201']:,} answered 201, {d['stored_after_kill_9']:,} stored", "", "all"))
    st = r["status"]["hot"]
    rows.append((f"Status GET, 1M stored, {st['distinct_jobs']:,} running jobs polled, 64 conns",
                 f"{st['rps']:,.0f}/s; p99 {st['p99_ms']:.1f} ms",
                 f"{st['ratio_to_http_baseline']:.0%} of HTTP baseline", "≥ 60%"))
    st = r["status"]["cold"]
    rows.append((f"Status GET, 1M stored, {st['distinct_jobs']:,} random jobs (cache misses), 64 conns",
                 f"{st['rps']:,.0f}/s; p99 {st['p99_ms']:.1f} ms",
                 f"{st['ratio_to_http_baseline']:.0%} of HTTP baseline", ""))
    ls = r["list"]
    rows.append(("List team=X&state=RUNNING&limit=50, 1M jobs",
                 f"p50 {ls['p50_ms']:.2f} ms, p99 {ls['p99_ms']:.2f} ms", "", "p99 ≤ 5 ms"))
    p = r["polling"]
    rows.append((f"{p['pollers']} dashboards polling 1/s + {p['submissions_per_s']} submits/s",
                 f"gateway CPU {p['gateway_cpu_with_pollers']:.0%} of a core "
                 f"({p['gateway_cpu_submissions_only']:.0%} without pollers); poll p99 {p['poll_p99_ms']:.1f} ms",
                 "", ""))
    if "kubesim_churn" in r:
        kc = r["kubesim_churn"]
        rows.append(("kubesim create+delete, 30k objects held vs 1k",
                     f"{kc['pairs_per_s_30k_held']:,.0f} vs {kc['pairs_per_s_1k_held']:,.0f} pairs/s",
                     f"{kc['ratio_30k_to_1k']:.0%}", "≥ 80% (cost by the change, not the store)"))
        rows.append(("kubesim pod list, 30k other objects held vs 1k",
                     f"{kc['lists_per_s_30k_held']:,.0f} vs {kc['lists_per_s_1k_held']:,.0f} lists/s",
                     f"{kc['list_ratio_30k_to_1k']:.0%}", "≥ 80%"))
    ds = r["dispatch"]
    rows.append(("Dispatch 10k queued jobs, 10 kubesim clusters",
                 f"{ds['drivers_per_s']:,.0f} drivers/s ({ds['api_creates_per_s']:,.0f} API creates/s)",
                 f"{ds['ratio_to_kubesim_direct']:.0%} of kubesim direct "
                 f"({ds['kubesim_direct_creates_per_s']:,.0f} creates/s)", "≥ 50%"))
    rows.append(("… CPU while dispatching", f"gateway {ds['gateway_cores']:.2f} cores "
                 f"({ds['gateway_cpu_ms_per_job']:.1f} ms a job), the 10 kubesims {ds['kubesims_cores']:.2f} cores",
                 "", ""))
    rows.append(("Submit → driver created, idle", f"p50 {ds['idle_p50_ms']:.0f} ms, p99 {ds['idle_p99_ms']:.0f} ms",
                 "", "p50 ≤ 50 ms"))
    m = r["memory"]
    rows.append(("Gateway RSS", f"idle {m['idle_mib']:.0f} MiB, submit load peak {m['peak_under_submit_load_mib']:.0f} MiB,"
                 f" 1M jobs stored {m['rss_1m_jobs_after_reads_mib']:.0f} MiB", "", "≤ 64 MiB at 1M"))
    for n, s in r["scaling"].items():
        rows.append((f"Stored {int(n):,} jobs", f"submit {s['submit_rps']:,.0f}/s (64 conns); "
                     f"list p50 {s['list_p50_ms']:.2f} p99 {s['list_p99_ms']:.2f} ms", "", "flat"))
    if "shared" in r:
        sh, de = r["shared"]["shared"], r["shared"]["dedicated"]
        rows.append(("Small SQL jobs (200), shared server vs a driver each: pods that ran a job",
                     f"{sh['pods_per_job']:.2f} vs {de['pods_per_job']:.2f}",
                     f"{r['shared']['pods_ratio']:.1%}", ""))
        rows.append(("… the gateway's API server calls a job (Livy's through the service proxy included)",
                     f"{sh['api_calls_per_job']:.1f} vs {de['api_calls_per_job']:.1f}",
                     f"{r['shared']['api_calls_ratio']:.0%}", ""))
    if "postgres" in r:
        pb = r["postgres"]["baseline"]
        rows.append(("PostgreSQL baseline (pgbench, 2 KB rows, synchronous_commit on)",
                     f"{pb['rows_per_s_1_per_txn']:,.0f} rows/s 1/txn, {pb['rows_per_s_64_per_txn']:,.0f} 64/txn",
                     "", ""))
        names = {"sqlite_1": "SQLite, 1 gateway", "postgres_1": "PostgreSQL, 1 replica",
                 "postgres_3": "PostgreSQL, 3 replicas"}
        runs = r["postgres"]["runs"]
        for key, s in sorted(runs.items(), key=lambda kv: list(names).index(kv[0])):
            ratio = (f"{s['submit_ratio_to_postgres_64']:.0%} of PostgreSQL 64/txn"
                     if "submit_ratio_to_postgres_64" in s else "")
            rows.append((f"{names[key]}: submit (64 conns) / status GET of {s['status_jobs']:,} jobs",
                         f"submit {s['submit_rps']:,.0f}/s p99 {s['submit_p99_ms']:.1f} ms; "
                         f"status {s['status_rps']:,.0f}/s p99 {s['status_p99_ms']:.1f} ms", ratio, ""))
    out = ["| Measure | Result | Ratio | Target |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {t} |" for a, b, c, t in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--seconds", type=int, default=5, help="length of each timed run")
    ap.add_argument("--only", help="comma-separated phases, for a partial run (not written to --out)")
    args = ap.parse_args()
    phases = ["http_baseline", "store_baseline", "submit", "scaling", "kubesim_churn", "dispatch", "shared", "postgres"]
    only = args.only.split(",") if args.only else phases
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is missing (contrib/install-deps.sh installs it)")
    work = tempfile.mkdtemp(prefix="sparkgw-bench-")
    b = Bench(os.path.abspath(args.build), work, args.seconds)
    started = time.time()
    try:
        for phase in phases:
            if phase in only:
                getattr(b, phase)()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.only:
        print(json.dumps(b.results, indent=2))
        return
    b.results["machine"] = machine()
    b.results["bench_seconds"] = time.time() - started
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(b.results, f, indent=2, sort_keys=True)
        f.write("\n")
    print(table(b.results))
    print(f"\n{b.results['machine']['cpus']} CPUs ({b.results['machine']['cpu_model']}), "
          f"commit {b.results['machine']['commit']}, {b.results['bench_seconds']:.0f} s; "
          f"results in {args.out}")


if __name__ == "__main__":
    main()
