#!/usr/bin/env python3
"""Dispatch throughput under a burst: jobs whose driver is created per second.

Usage: contrib/bench/dispatch_throughput.py [BASE_URL] [N] [CLIENTS]
Submits N jobs from CLIENTS threads at once to a running gateway, waits
until every one has left QUEUED/DISPATCHING, and reads each job's timeline.
Prints the submission rate and the dispatch rate: jobs from the first
SUBMITTED event to the last (the drivers the clusters' API servers
created), and the QUEUED -> SUBMITTED latency p50/p99 under that load.
The gateway's scheduler.cluster_qps bounds it: set it high to measure the
dispatcher rather than the configured budget.
"""
import json
import sys
import threading
import time

from gwclient import call as gw_call, ms

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
BODY = json.dumps({
    "name": "burst", "labels": {"team": "bench"},
    "spec": {"type": "Python", "sparkVersion": "3.5.1",
             "mainApplicationFile": "local:///opt/pi.py",
             "executor": {"instances": 1},
             "sparkConf": {"spark.kubesim.durationSeconds": "1"}},
}).encode()

ids, lock = [], threading.Lock()


def client(count):
    for _ in range(count):
        job_id = gw_call(BASE, "POST", "/api/v1/jobs", BODY)["id"]
        with lock:
            ids.append(job_id)


start = time.time()
threads = [threading.Thread(target=client, args=(N // CLIENTS + (i < N % CLIENTS),))
           for i in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
submit_s = time.time() - start
for _ in range(600):
    waiting = sum(len(gw_call(BASE, "GET", f"/api/v1/jobs?state={s}&limit=1000")["items"])
                  for s in ("QUEUED", "DISPATCHING"))
    if not waiting:
        break
    time.sleep(0.5)
queued, submitted = [], []
for job_id in ids:
    at = {e["state"]: ms(e["time"]) for e in gw_call(BASE, "GET", f"/api/v1/jobs/{job_id}/events")["items"]}
    if "SUBMITTED" in at:
        queued.append(at["QUEUED"])
        submitted.append(at["SUBMITTED"])
if len(submitted) < 2:
    sys.exit("fewer than two jobs reached SUBMITTED")
lat = sorted(s - q for q, s in zip(queued, submitted))
span = (max(submitted) - min(submitted)) / 1000
print(f"jobs={len(submitted)}/{N} submitted at {N / submit_s:.0f}/s; "
      f"drivers created at {len(submitted) / span:.0f} jobs/s over {span:.1f} s; "
      f"QUEUED->SUBMITTED p50={lat[len(lat) // 2]:.0f} ms "
      f"p99={lat[min(len(lat) - 1, int(0.99 * len(lat)))]:.0f} ms")
