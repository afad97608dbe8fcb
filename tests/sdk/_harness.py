"""Shared plumbing for the tests/sdk/check_*.py scripts (stdlib only).

Each check script drives one official vendor SDK against capgate and prints
exactly ONE JSON line on stdout describing what it observed; the Rust side
(tests/sdk_python.rs) asserts on it. Inputs come from the environment:

  CAPGATE_PROXY        proxy base URL, e.g. http://127.0.0.1:41234
  CAPGATE_TOKEN        vault key for the successful calls (revoked mid-script)
  CAPGATE_KEY_ID       that key's id (the script revokes it, then calls again)
  CAPGATE_CAP_TOKEN    vault key whose daily cap is below one call's price
  CAPGATE_ADMIN        admin API base URL
  CAPGATE_ADMIN_TOKEN  admin bearer token

Steps that must succeed raise on failure: the script then still prints its
JSON line (with "failed" set) and exits 1, the traceback going to stderr.
Steps that must be refused record the exception the SDK raised.
"""

import json
import os
import re
import sys
import traceback
import urllib.request
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
INSTALL_HINT = "python3 -m pip install -r tests/sdk/requirements.txt"

REQUIRED = ("CAPGATE_PROXY", "CAPGATE_TOKEN", "CAPGATE_KEY_ID", "CAPGATE_CAP_TOKEN", "CAPGATE_ADMIN", "CAPGATE_ADMIN_TOKEN")


def _version_tuple(text):
    return tuple(int(p) for p in re.findall(r"\d+", text.split("+")[0])[:3])


def require(dist):
    """Exits 3 with an install hint unless `dist` is installed at a version
    tests/sdk/requirements.txt accepts (only `>=` and `<` bounds are used)."""
    spec = ""
    with open(os.path.join(HERE, "requirements.txt")) as f:
        for line in f:
            line = line.split("#")[0].strip()
            m = re.match(r"^([A-Za-z0-9_.-]+)\s*(.*)$", line)
            if m and m.group(1).lower() == dist.lower():
                spec = m.group(2)
    try:
        installed = metadata.version(dist)
    except metadata.PackageNotFoundError:
        sys.stderr.write("CAPGATE_SDK_MISSING: the Python package %r is not installed; run `%s`\n" % (dist, INSTALL_HINT))
        sys.exit(3)
    have = _version_tuple(installed)
    for op, bound in re.findall(r"(>=|<)\s*([0-9][0-9.]*)", spec):
        want = _version_tuple(bound)
        if (op == ">=" and have < want) or (op == "<" and have >= want):
            sys.stderr.write("CAPGATE_SDK_MISSING: %s %s is installed but tests/sdk/requirements.txt wants %s%s; run `%s`\n" % (dist, installed, dist, spec, INSTALL_HINT))
            sys.exit(3)
    return installed


def env():
    missing = [k for k in REQUIRED if not os.environ.get(k)]
    if missing:
        sys.stderr.write("missing environment variables: %s\n" % ", ".join(missing))
        sys.exit(2)
    return {k: os.environ[k] for k in REQUIRED}


class Report:
    """Collects observations and prints them as one JSON line."""

    def __init__(self, sdk, version):
        self.out = {"sdk": sdk, "sdk_version": version, "python": sys.version.split()[0]}
        self.printed = False

    def __setitem__(self, key, value):
        self.out[key] = value

    def must(self, step, fn):
        """Runs a step that must succeed; on an exception, report and exit 1."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - any failure is reported
            traceback.print_exc()
            self.out["failed"] = {"step": step, "class": type(e).__name__, "message": str(e)[:2000]}
            self.emit()
            sys.exit(1)

    def refused(self, step, fn, describe):
        """Runs a step that capgate must refuse; records how the SDK surfaced it."""
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - the exception is the observation
            info = {"class": type(e).__name__, "module": type(e).__module__, "mro": [c.__name__ for c in type(e).__mro__], "message": str(e)[:2000]}
            try:
                info.update(describe(e))
            except Exception as d:  # noqa: BLE001
                info["describe_error"] = repr(d)
            self.out[step] = info
            return info
        self.out[step] = {"class": None, "unexpected_success": repr(result)[:1000]}
        return self.out[step]

    def emit(self):
        if not self.printed:
            self.printed = True
            sys.stdout.write(json.dumps(self.out, default=str) + "\n")
            sys.stdout.flush()


def revoke(e):
    """Revokes CAPGATE_KEY_ID through the admin API (what an agent's backend does)."""
    req = urllib.request.Request(e["CAPGATE_ADMIN"] + "/v1/keys/" + e["CAPGATE_KEY_ID"], method="DELETE", headers={"Authorization": "Bearer " + e["CAPGATE_ADMIN_TOKEN"]})
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read() or b"{}")
    if resp.status != 200 or body.get("revoked") is not True:
        raise RuntimeError("revoke failed: %s %s" % (resp.status, body))
    return body
