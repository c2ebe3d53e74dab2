"""bench/load.py: its pure helpers (the /proc tree walk, percentiles, the targets table, the costing arithmetic)
on made-up figures, fast; and the script end to end, small: 2 real browser sessions and 3 open/close cycles
(the figures in the README come from the same script). The end-to-end test checks what the figures must show:
every session served, each with its own model, the server's threads back to the baseline after the tabs
close, nothing failed. No timing is asserted anywhere."""

from __future__ import annotations

import json

from bench import load_stats as ls
from bench.load_browser import chart_rates, click_timing


def stat_line(pid: int, comm: str, ppid: int, utime: int = 0, stime: int = 0, threads: int = 1, rss: int = 0) -> str:
    # fields 3.. of /proc/<pid>/stat: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss ...
    rest = ["S", ppid, 1, 1, 0, -1, 0, 0, 0, 0, 0, utime, stime, 0, 0, 20, 0, threads, 0, 100, 0, rss, 0]
    return f"{pid} ({comm}) " + " ".join(map(str, rest)) + "\n"


def fake_proc(tmp_path, procs: dict[int, tuple], pss_kib: dict[int, int] = {}):  # noqa: B006 - read only
    for pid, (comm, ppid, threads, rss_pages) in procs.items():
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "stat").write_text(stat_line(pid, comm, ppid, utime=2 * ls.TICK, stime=ls.TICK, threads=threads,
                                          rss=rss_pages))
        if pid in pss_kib:
            (d / "smaps_rollup").write_text(f"Rss:  1 kB\nPss:   {pss_kib[pid]} kB\nPss_Anon:  1 kB\n")
    (tmp_path / "self").mkdir()  # not a pid: skipped
    return tmp_path


def test_parse_stat_survives_a_command_name_with_spaces_and_parentheses():
    s = ls.parse_stat(stat_line(42, "python (worker) 2)", 7, utime=300, stime=100, threads=5, rss=10))
    assert (s["pid"], s["comm"], s["ppid"], s["threads"]) == (42, "python (worker) 2)", 7, 5)
    assert s["cpu_s"] == 400 / ls.TICK and s["rss_bytes"] == 10 * ls.PAGE


def test_tree_is_the_server_and_all_its_descendants_and_nothing_else(tmp_path):
    # 100 the server -> 101 forkserver -> 102, 103 workers -> 104 a grandchild; 200 and 201 another tree
    proc = fake_proc(tmp_path, {100: ("streamlit", 1, 10, 1000), 101: ("forkserver", 100, 1, 100),
                                102: ("worker", 101, 3, 500), 103: ("worker", 101, 3, 500),
                                104: ("helper", 103, 1, 10), 200: ("other", 1, 50, 9999), 201: ("x", 200, 1, 1)},
                     pss_kib={100: 2048, 102: 1024, 103: 1024})
    stats = ls.read_stats(proc)
    assert ls.descendants(100, stats) == [100, 101, 102, 103, 104]
    assert ls.descendants(103, stats) == [103, 104] and ls.descendants(999, stats) == []
    t = ls.tree_stats(100, proc)
    assert (t["processes"], t["threads"], t["server_threads"]) == (5, 18, 10)
    assert t["rss_mib"] == round(2110 * ls.PAGE / ls.MIB, 1)
    assert t["pss_mib"] == 4.0  # processes without smaps_rollup add nothing
    assert t["cpu_s"] == 15.0 and t["server_cpu_s"] == 3.0
    assert ls.tree_stats(999, proc) == {} and ls.tree_stats(None, proc) == {}


def test_the_real_proc_tree_of_this_process_includes_itself():
    import os

    t = ls.tree_stats(os.getpid())
    assert t["pids"][0] == os.getpid() and t["threads"] >= 1 and t["rss_mib"] > 0


def test_percentiles_and_median():
    assert ls.pct([], 95) is None and ls.median([]) is None
    assert ls.pct([3, 1, 2], 50) == 2 and ls.pct([1, 2, 3, 4], 0) == 1 and ls.pct([1, 2, 3, 4], 100) == 4
    assert ls.pct(list(range(1, 21)), 95) == 19  # nearest rank on 0..19: round(0.95 * 19) = 18 -> the 19th value
    assert ls.median([4, 1, 3, 2]) == 2.5 and ls.median([5, None, 1, 3]) == 3


def result(**over) -> dict:
    r = {"sessions_served": 2,
         "click_to_running": {"reached": 2, "max_s": 0.8, "median_s": 0.6, "queued_ever": 0},
         "charts": {"pages": {"Train": {"min_per_s": 2.5}, "Filters": {"min_per_s": 1.2}},
                    "window": {"seconds": 10.0, "tree_cpu_s": 6.0, "samples": 1_000_000, "chart_updates": 100}},
         "round_trip": {"p95_s": 0.4, "failed": 0}, "health": {"p95_s": 0.05, "failed": 0},
         "training": {"samples_per_s": 300_000, "alone_samples_per_s": 250_000, "ratio_to_alone": 1.2},
         "memory": {"rss_mib_max": 900.0, "pss_mib_max": 800.0},
         "baseline": {"processes": 1, "threads": 9, "rss_mib": 560.0, "pss_mib": 500.0},
         "after_close": {"text": "...", "back_to_idle": True}}
    r.update(over)
    return r


def test_targets_all_met_and_each_one_failing_on_its_own():
    rows = ls.targets(result())
    assert [ok for *_, ok in rows] == [True] * 7
    bad = {"click -> running": {"click_to_running": {"reached": 2, "max_s": 0.8, "median_s": 0.6, "queued_ever": 1}},
           "chart updates": {"charts": {"pages": {"Train": {"min_per_s": 2.5}, "Codes": {"min_per_s": 0.5}}}},
           "widget round trip p95": {"round_trip": {"p95_s": 1.5, "failed": 0}},
           "health p95": {"health": {"p95_s": 0.05, "failed": 3}},
           "training throughput": {"training": {"ratio_to_alone": 0.4}},
           "server + workers RSS": {"memory": {"rss_mib_max": 5000.0}},
           "idle 60 s after closing": {"after_close": {"back_to_idle": False}}}
    for name, over in bad.items():
        met = {n: ok for n, _, _, ok in ls.targets(result(**over))}
        assert met[name] is False and sum(v is False for v in met.values()) == 1, (name, met)
    # a session that never reached running fails the first target; no figure is "not measured" (None)
    met = {n: ok for n, _, _, ok in ls.targets(result(
        click_to_running={"reached": 1, "max_s": None, "median_s": 0.5, "queued_ever": 0}, health={}))}
    assert met["click -> running"] is False and met["health p95"] is None


def test_back_to_idle_allows_a_little_memory_but_no_extra_thread_or_process():
    base = {"processes": 1, "threads": 9, "rss_mib": 560.0}
    assert ls.back_to_idle(base, {"processes": 1, "threads": 9, "rss_mib": 620.0})
    assert not ls.back_to_idle(base, {"processes": 1, "threads": 9, "rss_mib": 700.0})
    assert not ls.back_to_idle(base, {"processes": 2, "threads": 9, "rss_mib": 560.0})
    assert not ls.back_to_idle(base, {"processes": 1, "threads": 10, "rss_mib": 560.0})
    assert ls.back_to_idle({}, {"processes": 1}) is None


def test_costing_follows_its_formula():
    alone = {"cpu_s_per_sample": 4e-6, "cores_used": 1.0}
    c = ls.costing(result(), alone, students=100, node_cores=2, node_mem_mib=24 * 1024)
    # training CPU in the window 1e6 * 4e-6 = 4 s of 6 s: the UI 2 s over 100 updates, 10 s, 2 sessions
    assert c["train_cpu_s_est"] == 4.0 and c["ui_cpu_s"] == 2.0 and c["cpu_ms_per_update"] == 20.0
    assert c["ui_cores_per_session"] == 0.1 and c["mem_mib_per_session_pss"] == 150.0
    assert c["cores"] == 110.0 and c["nodes_by_cpu"] == 55 and c["nodes"] == 55
    assert c["nodes_by_memory"] == 1  # 100 * 150 MiB within one node's 24 GiB - 500 MiB
    assert "cores" not in ls.costing(result(), {}, 100, 2, 24 * 1024)  # no run alone: nothing invented


def test_click_timing_and_chart_rates_from_hook_snapshots():
    st = {"clickAt": 1000.0, "states": [[1010.0, "idle"], [1500.0, "queued"], [2600.0, "running"],
                                        [3000.0, "paused"], [3100.0, "running"]]}
    assert click_timing(st) == {"to_running_s": 1.6, "queued": True}
    assert click_timing({"clickAt": None, "states": []}) == {"to_running_s": None, "queued": False}
    s0 = {"now": 0.0, "charts": [{"id": 0, "name": "a", "calls": 10, "changed": 5}]}
    s1 = {"now": 2000.0, "charts": [{"id": 0, "name": "a", "calls": 16, "changed": 11},
                                    {"id": 1, "name": "b", "calls": 2, "changed": 1}], "fallback_charts": 0}
    r = chart_rates(s0, s1)
    assert r["charts"]["a"] == {"changed": 6, "calls": 6, "per_s": 3.0} and r["charts"]["b"]["per_s"] == 0.5


def test_load_script_serves_every_session_and_leaves_no_thread_behind(tmp_path):
    from bench import load

    out = tmp_path / "load.json"
    result = load.main(["--sessions", "2", "--cycles", "3", "--round-trips", "2", "--ttl", "5", "--page-seconds", "1",
                        "--alone-seconds", "1", "--deadline", "600", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    (r,) = result["runs"]
    assert r["sessions_served"] == 2 and r["own_model_checks"] == "2/2"
    assert r["click_to_running"]["reached"] == 2 and r["click_to_running"]["queued_ever"] == 0  # nobody waits
    # a round trip times out now and then when the 2 cores are saturated (seen once in a full-suite run); the
    # bench reports it, and this checks the measurement works
    assert r["round_trip"]["n"] + r["round_trip"]["failed"] == 4 and r["round_trip"]["n"] >= 2
    assert r["health"]["failed"] == 0 and r["health"]["n"] > 0
    assert all(p["median_per_s"] is not None for p in r["charts"]["pages"].values())
    assert r["after_close"]["seconds_to_baseline"] is not None, r["after_close"]
    assert r["after_cycles"]["seconds_to_baseline"] is not None, r["after_cycles"]
    assert r["after_cycles"]["failures"] == 0
    assert r["after_cycles"]["threads"] <= r["baseline"]["threads"]
