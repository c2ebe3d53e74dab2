"""sae.runs.codec: the checks and encodings between Python values and the run database's columns."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from sae import ModelConfig, TrainConfig
from sae.core.config import config_to_dict
from sae.runs.codec import (MAX_HISTORY_ROWS, MAX_NAME, check_run_id, check_text, decode_configs, decode_history,
                            encode_history, finite_or_none, history_summary, is_run_id, json_object, json_safe,
                            metric_columns, new_id)
from sae.runs.errors import StoreError


def test_ids_are_32_hex_digits_and_nothing_else():
    run_id = new_id()
    assert is_run_id(run_id) and check_run_id(run_id) == run_id and new_id() != run_id
    for bad in ("../etc/passwd", run_id.upper(), run_id[:-1], run_id + "0", None, 7):
        assert not is_run_id(bad)
        with pytest.raises(StoreError, match="not a valid sweep id"):
            check_run_id(bad, "sweep id")
    with pytest.raises(StoreError, match=r"x\.\.\. is not a valid run id"):
        check_run_id("x" * 200)  # a long value is shortened in the message


def test_text_is_one_stripped_line_of_bounded_length():
    assert check_text("  a run  ", "run name") == "a run"
    assert check_text(" ", "reason", allow_empty=True) == ""
    for bad, why in ((" ", "must not be empty"), ("a\nb", "control characters"), ("x" * (MAX_NAME + 1), "too long"),
                     (3, "must be text")):
        with pytest.raises(StoreError, match=why):
            check_text(bad, "run name")


def test_numbers_and_json_values():
    assert finite_or_none(np.float32(0.5)) == 0.5 and finite_or_none("2") == 2.0
    assert finite_or_none(None) is None and finite_or_none(float("nan")) is None and finite_or_none(np.inf) is None
    with pytest.raises(StoreError, match="must be a number"):
        finite_or_none("many")
    value = json_safe({"a": np.int64(3), 2: (np.float32(0.5), float("inf")), "ok": np.bool_(True), "t": "x"})
    assert value == {"a": 3, "2": [0.5, None], "ok": True, "t": "x"} and json.dumps(value)
    with pytest.raises(StoreError, match="cannot record a object"):
        json_safe(object())
    assert json_object('{"a": 1}') == {"a": 1}
    assert json_object(None) == {} and json_object("[1]") == {} and json_object("{damaged") == {}


def test_configs_decode_or_name_the_damaged_run():
    mc, tc = ModelConfig(64, 9), TrainConfig(rho=0.1)
    assert decode_configs(json.dumps(config_to_dict(mc)), json.dumps(config_to_dict(tc)), "run x") == (mc, tc)
    assert decode_configs(json.dumps(config_to_dict(mc)), None, "run x") == (mc, None)
    with pytest.raises(StoreError, match="configuration of run x is damaged"):
        decode_configs("{not json", None, "run x")
    with pytest.raises(StoreError, match="configuration of run x is damaged"):
        decode_configs(json.dumps({"n_inputs": -1, "n_hidden": 9}), None, "run x")


def test_history_round_trip_and_damage():
    history = {"step": np.arange(5), "total": np.array([3.0, 2.0, np.nan, 1.5, 1.7], np.float32)}
    columns, rows, data = encode_history(history)
    assert json.loads(columns) == ["step", "total"] and rows == 5
    decoded = decode_history(columns, rows, data, "run x")
    assert all(v.dtype == np.float64 for v in decoded.values())
    np.testing.assert_array_equal(decoded["step"], np.arange(5.0))
    np.testing.assert_array_equal(decoded["total"], history["total"].astype(np.float64))
    assert decode_history(*encode_history({}), "run x") == {}
    for bad in ({"a": np.arange(3), "b": np.arange(4)}, {"a": np.zeros((2, 2))}, {"a": np.array(["x"])}, [1, 2]):
        with pytest.raises(StoreError):
            encode_history(bad)
    with pytest.raises(StoreError, match="too long"):
        encode_history({"step": np.zeros(MAX_HISTORY_ROWS + 1)})
    too_long = zlib.compress(b"\0" * 200)
    for bad_rows, bad_data in ((6, data), (5, data[:len(data) // 2]), (5, b"not zlib"), (5, too_long)):
        with pytest.raises(StoreError, match="stored history of run x is damaged"):
            decode_history(columns, bad_rows, bad_data, "run x")


def test_history_summary_keeps_the_last_values_and_the_best_total():
    summary = history_summary({"step": np.arange(3.0), "total": np.array([2.0, np.nan, 1.0])})
    assert summary == {"rows": 3, "last": {"step": 2.0, "total": 1.0}, "best_total": 1.0}
    assert history_summary({"total": np.array([np.nan])}) == {"rows": 1, "last": {"total": None}}
    assert history_summary({}) == {"rows": 0} and history_summary({"step": np.array([])}) == {"rows": 0}


def test_metric_columns_split_columns_from_further_metrics():
    losses = {"total": 1.5, "reconstruction": 1.0, "sparsity": float("nan"), "weight_decay": 0.1, "other": 9.0}
    columns, extra = metric_columns(losses, {"reconstruction": 0.8, "dead_units": 2.6, "l0_mean": np.float32(1.5)},
                                    np.array([0.1, 0.3]))
    assert columns == {"total": 1.5, "reconstruction": 0.8, "sparsity": None, "weight_decay": 0.1,
                       "rho_hat_mean": pytest.approx(0.2), "dead_units": 3}
    assert extra == {"l0_mean": 1.5}
    columns, extra = metric_columns({}, None, np.array([0.1, np.nan]))
    assert columns["rho_hat_mean"] is None and columns["total"] is None and extra == {}
