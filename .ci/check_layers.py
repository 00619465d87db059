#!/usr/bin/env python3
"""Fails when a workspace crate depends on a crate its layer must not see (ARCHITECTURE.md)."""
import json
import subprocess
import sys

# crate -> workspace crates it may depend on (normal and build dependencies).
ALLOWED = {
    "catmq-common": set(),
    "catmq-protocol": {"catmq-common"},
    "catmq-store": {"catmq-common"},
    "catmq-remoting": {"catmq-protocol"},
    "catmq-namesrv": {"catmq-common", "catmq-protocol", "catmq-remoting"},
    "catmq-broker": {"catmq-common", "catmq-protocol", "catmq-remoting", "catmq-store"},
    "catmq-client": {"catmq-common", "catmq-protocol", "catmq-remoting"},
    "catmq-testkit": None,  # dev-only; may use anything
    "catmq-compat": set(),  # tests only: real third-party clients against the binary
    "catmq": None,  # the binary wires everything together
}

meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"]))
names = {p["name"] for p in meta["packages"]}
bad = []
for pkg in meta["packages"]:
    name = pkg["name"]
    if name not in ALLOWED:
        bad.append(f"{name}: crate not listed in .ci/check_layers.py (add it with its allowed dependencies)")
        continue
    allowed = ALLOWED[name]
    for dep in pkg["dependencies"]:
        dn = dep["name"]
        if dn not in names or dep.get("kind") == "dev":
            continue
        if dn == "catmq-testkit":
            bad.append(f"{name} -> {dn}: the test kit is a dev-dependency only")
        elif allowed is not None and dn not in allowed:
            bad.append(f"{name} -> {dn}: not allowed by the layering rules")
if bad:
    print("layering violations:\n  " + "\n  ".join(bad))
    sys.exit(1)
print(f"layering ok ({len(names)} crates)")
