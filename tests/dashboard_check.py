#!/usr/bin/python3
"""Checks deploy/grafana/an1-dashboard.json against a real scrape of an1d: the JSON loads, every
panel has queries, every query is valid PromQL (promtool check rules, each query as a recording
rule), and every an1_ metric a query names is one the server exports (# TYPE lines of METRICS).

    dashboard_check.py DASHBOARD METRICS_TEXT
"""
import json
import os
import re
import subprocess
import sys
import tempfile

# Exported only once a GPU has measured a request's energy (a CPU-only scrape lacks them).
GPU_ONLY = {"an1_request_energy_joules_total"}


def main():
    dashboard, metrics = sys.argv[1], sys.argv[2]
    panels = json.load(open(dashboard))["panels"]
    exported = set(re.findall(r"^# TYPE (an1_\w+) ", open(metrics).read(), re.M))
    problems = []
    exprs = []
    for panel in panels:
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"panel '{panel['title']}' has no query")
        for target in targets:
            exprs.append(target["expr"])
            for name in re.findall(r"\ban1_\w+", target["expr"]):
                base = re.sub(r"_(bucket|count|sum)$", "", name)
                if name not in exported and base not in exported and name not in GPU_ONLY:
                    problems.append(f"panel '{panel['title']}' uses {name}, which an1d does not export")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        json.dump(rules, f)  # JSON is YAML
    r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if r.returncode != 0:
        problems.append("promtool rejects a query:\n" + r.stdout + r.stderr)
    for p in problems:
        print("FAIL " + p)
    print(f"dashboard_check: {len(panels)} panels, {len(exprs)} queries, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
