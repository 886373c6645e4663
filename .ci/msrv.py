#!/usr/bin/env python3
"""Checks the declared MSRV against what the dependencies declare.

Reads `cargo metadata` on stdin. Follows only normal and build dependencies (what a user of the
published crates compiles), from every workspace member except the unpublished ones, for the
current platform's resolve, and fails when one of them declares a `rust-version` above the
workspace's. Dev-dependencies (test tooling) are left out: they never reach a user.
"""
import json
import sys


def version(text):
    return tuple(int(part) for part in text.split(".")[:2])


meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
members = [packages[i] for i in meta["workspace_members"]]
declared = {version(p["rust_version"]) for p in members if p.get("rust_version")}
if len(declared) != 1:
    sys.exit(f"msrv: workspace members declare {sorted(declared)}; expected one rust-version")
msrv = declared.pop()

roots = [p["id"] for p in members if p.get("publish") != []]
seen, stack, too_new = set(), list(roots), []
while stack:
    node = nodes[stack.pop()]
    for dep in node["deps"]:
        kinds = {k["kind"] for k in dep["dep_kinds"]}
        if kinds <= {"dev"}:
            continue
        if dep["pkg"] in seen:
            continue
        seen.add(dep["pkg"])
        stack.append(dep["pkg"])
        package = packages[dep["pkg"]]
        needed = package.get("rust_version")
        if needed and version(needed) > msrv:
            too_new.append(f'{package["name"]} {package["version"]} needs {needed}')

print(f"msrv {msrv[0]}.{msrv[1]}: {len(seen)} dependencies of the published crates checked")
if too_new:
    sys.exit("msrv: dependencies need a newer Rust than the declared rust-version:\n  " + "\n  ".join(too_new))
