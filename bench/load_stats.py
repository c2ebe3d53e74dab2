"""Pure helpers of bench/load.py: the server's process tree from /proc, percentiles, the targets table and the
costing arithmetic. No browser, no server: tests/test_load_bench.py checks them on a fake /proc.

A process tree is the server and every descendant (walked through the ppid field of /proc/<pid>/stat), so that
training workers forked from a forkserver child of the server count with it. Resident memory is given two ways:
RSS summed over the tree (counts a page shared by forked processes once per process, so it overstates) and PSS
from /proc/<pid>/smaps_rollup (a shared page split between its sharers, so the sum is the tree's real share).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

PROC = Path("/proc")
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MIB = 1024 * 1024


# ------------------------------------------------------------------------------------------------ /proc

def parse_stat(text: str) -> dict:
    """The fields of one /proc/<pid>/stat line that the bench uses. The command name (field 2) is in parentheses
    and may itself hold spaces and parentheses, so the line is split at its last ')'."""
    head, _, tail = text.rpartition(")")
    pid_text, _, comm = head.partition(" (")
    f = tail.split()  # f[0] is field 3 (state)
    return {"pid": int(pid_text), "comm": comm, "state": f[0], "ppid": int(f[1]),
            "cpu_s": (int(f[11]) + int(f[12])) / TICK,  # utime + stime (fields 14, 15)
            "threads": int(f[17]),  # field 20
            "rss_bytes": int(f[21]) * PAGE}  # field 24, in pages


def read_stats(proc: Path = PROC) -> dict[int, dict]:
    """parse_stat of every process now (those that vanish while being read are skipped)."""
    out = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = parse_stat((entry / "stat").read_text())
            except (OSError, ValueError, IndexError):
                pass
    return out


def descendants(root: int, stats: dict[int, dict]) -> list[int]:
    """``root`` and every process below it (by ppid), root first; [] if root is not in ``stats``."""
    if root not in stats:
        return []
    children: dict[int, list[int]] = {}
    for pid, s in stats.items():
        children.setdefault(s["ppid"], []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in tree:  # pid reuse cannot make a loop in a snapshot, but be safe
            continue
        tree.append(pid)
        todo.extend(sorted(children.get(pid, ()), reverse=True))
    return tree


def pss_bytes(pid: int, proc: Path = PROC) -> int | None:
    """Proportional set size of one process (/proc/<pid>/smaps_rollup), None if unreadable."""
    try:
        for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_stats(root: int | None, proc: Path = PROC, pss: bool = True) -> dict:
    """Processes, threads, summed RSS and PSS (MiB) and CPU seconds (utime + stime) of ``root``'s tree; the
    root's own CPU apart (``server_cpu_s``). {} if there is no root or it is gone."""
    if root is None:
        return {}
    stats = read_stats(proc)
    pids = descendants(root, stats)
    if not pids:
        return {}
    tree = [stats[p] for p in pids]
    out = {"processes": len(tree), "threads": sum(s["threads"] for s in tree),
           "rss_mib": round(sum(s["rss_bytes"] for s in tree) / MIB, 1),
           "cpu_s": round(sum(s["cpu_s"] for s in tree), 2), "server_cpu_s": stats[root]["cpu_s"],
           "server_threads": stats[root]["threads"], "server_rss_mib": round(stats[root]["rss_bytes"] / MIB, 1),
           "pids": pids}
    if pss:
        values = [pss_bytes(p, proc) for p in pids]
        out["pss_mib"] = round(sum(v for v in values if v is not None) / MIB, 1) if any(
            v is not None for v in values) else None
    return out


# ------------------------------------------------------------------------------------------------ figures

def pct(values, q: float) -> float | None:
    """The q-th percentile by nearest rank on the sorted values (no interpolation); None for no values."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def median(values) -> float | None:
    """The median (mean of the middle two for an even count); None for no values."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:,.0f} ms"


def num(v, fmt: str = "{:,.2f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


# ------------------------------------------------------------------------------------------------ targets

RSS_LIMIT_MIB = 3e9 / MIB  # "server + workers <= 3 GB": 3 * 10^9 bytes (2,861 MiB)
IDLE_MEMORY_SLACK_MIB = 64.0  # back to idle: RSS within baseline + max(64 MiB, 10 %) (CPython rarely returns all)


def _met(ok) -> str:
    return "not measured" if ok is None else ("met" if ok else "NOT MET")


def targets(r: dict) -> list[tuple[str, str, str, bool | None]]:
    """(name, target, measured, met) for one N's result ``r`` (the dict bench/load.py builds per N).
    met is None where the figure is missing."""
    rows = []
    n = r.get("sessions_served") or 0
    c = r.get("click_to_running", {})
    reached = c.get("reached", 0)
    ok = None if not n else (reached == n and c.get("max_s") is not None and c["max_s"] <= 2.0
                             and c.get("queued_ever", 0) == 0)
    rows.append(("click -> running", "every session <= 2 s, none queued",
                 (f"max {ms(c.get('max_s'))}, median {ms(c.get('median_s'))}, {reached}/{n} reached running, "
                  f"{c.get('queued_ever', 0)} ever queued"), ok))
    charts = r.get("charts", {}).get("pages", {})
    worst = [p.get("min_per_s") for p in charts.values()]
    ok = None if not worst or any(w is None for w in worst) else min(worst) >= 1.0
    slow = ", ".join(f"{k} {num(p.get('min_per_s'))}" for k, p in charts.items()
                     if p.get("min_per_s") is None or p["min_per_s"] < 1.0)
    rows.append(("chart updates", ">= 1 /s on every live page, every session",
                 f"slowest page/session {num(min(worst) if worst and None not in worst else None)} /s"
                 + (f" ({slow})" if slow else ""), ok))
    rt = r.get("round_trip", {})
    rows.append(("widget round trip p95", "<= 1 s", ms(rt.get("p95_s")),
                 None if rt.get("p95_s") is None else rt["p95_s"] <= 1.0 and not rt.get("failed")))
    h = r.get("health", {})
    rows.append(("health p95", "<= 0.2 s", ms(h.get("p95_s")),
                 None if h.get("p95_s") is None else h["p95_s"] <= 0.2 and not h.get("failed")))
    t = r.get("training", {})
    ratio = t.get("ratio_to_alone")
    rows.append(("training throughput", ">= 1.0 x one run alone",
                 (f"{num(t.get('samples_per_s'), '{:,.0f}')} samples/s total = {num(ratio)} x alone "
                  f"({num(t.get('alone_samples_per_s'), '{:,.0f}')})"), None if ratio is None else ratio >= 1.0))
    m = r.get("memory", {})
    rss = m.get("rss_mib_max")
    rows.append(("server + workers RSS", f"<= 3 GB ({RSS_LIMIT_MIB:,.0f} MiB)",
                 f"max {num(rss, '{:,.0f}')} MiB RSS, {num(m.get('pss_mib_max'), '{:,.0f}')} MiB PSS",
                 None if rss is None else rss <= RSS_LIMIT_MIB))
    idle = r.get("after_close", {})
    rows.append(("idle 60 s after closing", "processes, threads <= baseline; RSS <= baseline + max(64 MiB, 10 %)",
                 idle.get("text", "-"), idle.get("back_to_idle")))
    return rows


def back_to_idle(baseline: dict, after: dict) -> bool | None:
    """Processes and threads at most the baseline's, RSS within the slack (see IDLE_MEMORY_SLACK_MIB)."""
    if not baseline or not after:
        return None
    slack = max(IDLE_MEMORY_SLACK_MIB, 0.1 * baseline["rss_mib"])
    return (after["processes"] <= baseline["processes"] and after["threads"] <= baseline["threads"]
            and after["rss_mib"] <= baseline["rss_mib"] + slack)


# ------------------------------------------------------------------------------------------------ costing

COSTING_FORMULA = """\
  ui_cpu_s        = server-tree CPU s over the chart window - training CPU s in it, where training CPU s =
                    samples trained in the window x CPU s per sample of one run alone (measured in the child)
  cpu_per_update  = ui_cpu_s / chart updates (changed Plotly.react calls, all sessions, same window)
  ui_cores/session= ui_cpu_s / window s / N          train_cores/run = CPU s / wall s of the run alone
  mem/session     = (tree PSS under load, max - idle baseline PSS) / N (RSS the same way, shown too; PSS splits
                    shared library pages with every other process mapping them, so it moves with the machine)
  cores(S)        = S x (train_cores/run + ui_cores/session)   for S students, each training and watching
  nodes(S)        = max(ceil(cores(S) / node_cores), ceil(S x mem/session / (node_mem - baseline PSS)))"""


def costing(r: dict, alone: dict, students: int, node_cores: int, node_mem_mib: float) -> dict:
    """The costing section from one N's measured figures (see COSTING_FORMULA); None where a figure is missing."""
    n = r.get("sessions_served") or 0
    w = r.get("charts", {}).get("window", {})
    seconds, cpu, samples, updates = (w.get(k) for k in ("seconds", "tree_cpu_s", "samples", "chart_updates"))
    per_sample = alone.get("cpu_s_per_sample")
    out: dict = {"students": students, "node_cores": node_cores, "node_mem_mib": round(node_mem_mib),
                 "from_sessions": n}
    if not (n and seconds and cpu is not None and samples is not None and per_sample):
        return out
    train_cpu = samples * per_sample
    ui_cpu = max(0.0, cpu - train_cpu)
    ui_cores = ui_cpu / seconds / n
    train_cores = alone.get("cores_used")
    m = r.get("memory", {})
    base = r.get("baseline", {})
    mem_pss = None if m.get("pss_mib_max") is None or base.get("pss_mib") is None else \
        max(0.0, m["pss_mib_max"] - base["pss_mib"]) / n
    mem_rss = None if m.get("rss_mib_max") is None or not base else max(0.0, m["rss_mib_max"] - base["rss_mib"]) / n
    out.update({"window_s": round(seconds, 1), "tree_cpu_s": round(cpu, 2), "train_cpu_s_est": round(train_cpu, 2),
                "ui_cpu_s": round(ui_cpu, 2), "chart_updates": updates,
                "cpu_ms_per_update": None if not updates else round(1000 * ui_cpu / updates, 2),
                "ui_cores_per_session": round(ui_cores, 3), "train_cores_per_run": train_cores,
                "mem_mib_per_session_pss": None if mem_pss is None else round(mem_pss, 1),
                "mem_mib_per_session_rss": None if mem_rss is None else round(mem_rss, 1)})
    if train_cores is not None:
        cores = students * (train_cores + ui_cores)
        out["cores"] = round(cores, 1)
        by_cpu = math.ceil(round(cores / node_cores, 6))  # (round: 100 x 1.1 is 110.00000000000001)
        per = mem_pss if mem_pss is not None else mem_rss
        usable = node_mem_mib - (base.get("pss_mib") or base.get("rss_mib") or 0.0)
        by_mem = None if per is None or usable <= 0 else math.ceil(round(students * per / usable, 6))
        out["nodes_by_cpu"], out["nodes_by_memory"] = by_cpu, by_mem
        out["nodes"] = max(by_cpu, by_mem or 0)
    return out


__all__ = ["parse_stat", "read_stats", "descendants", "pss_bytes", "tree_stats", "pct", "median", "ms", "num",
           "targets", "back_to_idle", "costing", "COSTING_FORMULA", "RSS_LIMIT_MIB"]
