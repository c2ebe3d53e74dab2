"""bench/load.py end to end, small: 2 real browser sessions and 3 open/close cycles (the N = 8 figures in the
README come from the same script). Checks what the figures must show: every session served, each with its
own model, the server's threads back to the baseline after the tabs close, nothing failed."""

from __future__ import annotations

import json


def test_load_script_serves_every_session_and_leaves_no_thread_behind(tmp_path):
    from bench import load

    out = tmp_path / "load.json"
    result = load.main(["--sessions", "2", "--cycles", "3", "--round-trips", "2", "--ttl", "5",
                        "--deadline", "420", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["sessions_served"] == 2 and result["own_model_checks"] == "2/2"
    assert result["round_trip"]["n"] == 4 and result["round_trip"]["failed"] == 0
    assert result["health"]["failed"] == 0 and result["health"]["n"] > 0
    assert result["after_sessions"]["seconds_to_baseline"] is not None, result["after_sessions"]
    assert result["after_cycles"]["seconds_to_baseline"] is not None, result["after_cycles"]
    assert result["after_cycles"]["failures"] == 0
    assert result["after_cycles"]["threads"] <= result["baseline"]["threads"]
