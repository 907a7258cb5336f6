#!/usr/bin/env python3
"""Submit -> driver created latency, measured on an idle gateway.

Usage: contrib/bench/dispatch_latency.py [BASE_URL] [N]
Submits N jobs one after another to a running gateway (e.g. `make run`)
and reads each job's timeline: the time from its QUEUED event (the commit
of the submission) to its SUBMITTED event (written once the cluster's API
server has answered the create). Prints p50, p90, p99 and max in ms.
"""
import json
import sys
import time

from gwclient import call as gw_call, ms

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200
BODY = json.dumps({
    "name": "latency", "labels": {"team": "bench"},
    "spec": {"type": "Python", "sparkVersion": "3.5.1",
             "mainApplicationFile": "local:///opt/pi.py",
             "sparkConf": {"spark.kubesim.durationSeconds": "1"}},
}).encode()

ids = []
for _ in range(N):
    ids.append(gw_call(BASE, "POST", "/api/v1/jobs", BODY)["id"])
    time.sleep(0.05)  # one at a time, under the clusters' request budget: the idle latency
time.sleep(2)
lat = []
for job_id in ids:
    events = gw_call(BASE, "GET", f"/api/v1/jobs/{job_id}/events")["items"]
    at = {e["state"]: ms(e["time"]) for e in events}
    if "QUEUED" in at and "SUBMITTED" in at:
        lat.append(at["SUBMITTED"] - at["QUEUED"])
lat.sort()
if not lat:
    sys.exit("no job reached SUBMITTED")


def pct(p):
    return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]


print(f"jobs={len(lat)}/{N} submit->driver created: p50={pct(50):.0f} ms "
      f"p90={pct(90):.0f} ms p99={pct(99):.0f} ms max={lat[-1]:.0f} ms")
