#!/usr/bin/env python3
"""Checks that a Grafana dashboard JSON has what Grafana needs to import and draw it:
title, uid, schemaVersion, time, templating, and panels with unique ids, a type, a gridPos
inside the 24-column grid, and Prometheus targets with refIds and expressions."""
import json
import sys

KNOWN_TYPES = {"row", "timeseries", "stat", "gauge", "table", "bargauge", "text", "heatmap"}


def main(path):
    with open(path) as f:
        d = json.load(f)  # a syntax error stops here with its line and column
    problems = []
    for key, kind in [("title", str), ("uid", str), ("schemaVersion", int), ("panels", list), ("time", dict),
                      ("templating", dict)]:
        if not isinstance(d.get(key), kind):
            problems.append(f"top level: '{key}' must be a {kind.__name__}")
    if isinstance(d.get("uid"), str) and not (0 < len(d["uid"]) <= 40):
        problems.append("uid must be 1..40 characters")
    variables = {v.get("name") for v in d.get("templating", {}).get("list", [])}
    ids = set()
    for p in d.get("panels", []):
        where = f"panel {p.get('id')} ({p.get('title')!r})"
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            problems.append(f"{where}: needs a unique integer id")
        ids.add(p.get("id"))
        if p.get("type") not in KNOWN_TYPES:
            problems.append(f"{where}: unknown type {p.get('type')!r}")
        if not p.get("title"):
            problems.append(f"{where}: needs a title")
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24 or g["w"] <= 0 or g["h"] <= 0:
            problems.append(f"{where}: gridPos must have h, w, x, y within 24 columns, not {g}")
        if p.get("type") == "row":
            continue
        targets = p.get("targets", [])
        if not targets:
            problems.append(f"{where}: has no targets")
        refs = set()
        for t in targets:
            if not t.get("expr") or not t.get("refId") or t["refId"] in refs:
                problems.append(f"{where}: each target needs an expr and a unique refId")
            refs.add(t.get("refId"))
            if t.get("expr", "").count("(") != t.get("expr", "").count(")"):
                problems.append(f"{where}: unbalanced parentheses in {t['expr']!r}")
            for var in ("instance",):
                if "$" + var in t.get("expr", "") and var not in variables:
                    problems.append(f"{where}: uses ${var}, which templating does not declare")
        ds = p.get("datasource", {})
        if ds.get("type") != "prometheus":
            problems.append(f"{where}: datasource must be prometheus")
    for line in problems:
        print(f"{path}: {line}")
    if not problems:
        print(f"{path}: {len(d['panels'])} panels, fine")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
