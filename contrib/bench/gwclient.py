"""What the benchmark scripts share: JSON calls to a gateway, event times."""
import json
import time
import urllib.request


def call(base, method, path, body=None):
    req = urllib.request.Request(base + path, data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def ms(stamp):
    """Milliseconds since the epoch of an RFC 3339 UTC time with milliseconds."""
    return time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(stamp[20:23])
