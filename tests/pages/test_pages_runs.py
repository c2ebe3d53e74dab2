"""The Runs and Sweep pages and the share/export section under AppTest, each test with its own run store.

- Recording: a run trained in the dashboard is in the store (config, curves, final metrics, weights) without
  anyone asking; the recorder does not keep a dropped session's job alive.
- Runs page: the table lists the runs; two chosen runs draw overlaid curves, ρ̂ histograms and filters side
  by side; rename and delete (of the session's own runs: who may do what is tests/pages/test_pages_owners.py);
  a run loads back into the live view, paused at its step, and continues.
- Sweep page: a 2 x 2 sweep trains in the background to the end and draws its heatmaps and small multiples;
  a clicked cell opens its run on the Runs page; everything is still there after a "restart" (new store
  object, new sweep registry, new session).
- Share: a downloaded bundle (and a bare .safetensors) uploads back to identical outputs; bad files are
  explained in one sentence, never with a traceback.

AppTest runs fragments inline (``run_every`` never fires): background work is followed by waiting on the
store and running the app again, as a poll would.
"""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sae import ModelConfig, TrainConfig, Trainer  # noqa: E402
from sae.training.status import RunStatus
from sae.runs import export  # noqa: E402
from sae.data import load_dataset  # noqa: E402
from sae.runs.model_file import model_to_bytes  # noqa: E402
from sae.runs.recorder import RunRecorder  # noqa: E402
from sae.core.model import SparseAutoencoder  # noqa: E402
from sae.runs.store import RunStore  # noqa: E402
from sae.ui import share, state  # noqa: E402
from sae.ui.identity import TOKEN_KEY  # noqa: E402
from sae.app.job import Job, subset_indices  # noqa: E402
from sae.app.settings import Settings  # noqa: E402
from conftest import chart_payloads, wait_for

ROOT = Path(__file__).resolve().parents[2]
HOME = str(ROOT / "dashboard.py")
RUNS, SWEEP = "pages/10_runs.py", "pages/11_sweep.py"
SMALL = {"data": "digits", "hidden": "9", "epochs": "4"}


pytestmark = pytest.mark.usefixtures("restore_process_state")  # tests/conftest.py


@pytest.fixture(autouse=True)
def stop_everything(stop_live_jobs):
    """Every job and sweep a test started is stopped (they share the server's training slots): the sweeps
    here, then the jobs (``stop_live_jobs``)."""
    yield
    share.sweep_registry().cancel_all()


@pytest.fixture
def store(lab_data):
    """The test's own run store, the one the dashboard records into (conftest points SAE_LAB_DATA at a fresh
    directory for every test); unlike conftest's ``store``, which is apart from it."""
    with RunStore(lab_data) as s:
        yield s


@pytest.fixture
def alice(store) -> str:
    """An identity token of the dashboard's store: the user the page tests' sessions are."""
    return store.signer.issue("alice")


def app(params=None, page=None, token: str | None = None) -> AppTest:
    """The dashboard under AppTest; ``token``: the session's identity (as a browser's report would set it)."""
    at = AppTest.from_file(HOME, default_timeout=60)
    for k, v in (params or SMALL).items():
        at.query_params[k] = v
    if token is not None:
        at.session_state[TOKEN_KEY] = token
    at.run()
    if page:
        at.switch_page(page).run()
    no_exception(at)
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> dict[str, dict]:
    """Charts by their title (untitled ones by their key)."""
    out = {}
    for chart_id, payload in chart_payloads(at):
        spec = json.loads(payload)
        title = (spec["layout"].get("title") or {}).get("text") or chart_id
        out[title] = spec
    return out


def record_run(store: RunStore, name: str, n_hidden: int = 9, rho: float = 0.05, beta: float = 3.0,
               epochs: float = 3, owner: str | None = None) -> str:
    """A short digits run recorded the way the dashboard records one (a RunRecorder on the trainer), ``owner``'s."""
    data = load_dataset("digits")
    mc = ModelConfig(64, n_hidden, decoder_activation="sigmoid")
    tc = TrainConfig(rho=rho, beta=beta, epochs=epochs, batch_size=128, lr=0.03, seed=0)
    recorder = RunRecorder.create(store, name, "digits", mc, tc, interval=0.0, X=data.X, labels=data.labels,
                                  owner=owner)
    trainer = Trainer(data.X, mc, tc, on_snapshot=recorder)
    recorder.attach(trainer)
    trainer.run()
    assert recorder.error is None
    return recorder.run_id


def quick_run(store: RunStore, name: str, rho: float = 0.05, owner: str | None = None) -> str:
    """A finished digits run with (untrained) weights, recorded at once, ``owner``'s."""
    return store.add(name, "digits", SparseAutoencoder(64, 9), TrainConfig(rho=rho), owner=owner)


def picker(at: AppTest, state_key: str):
    """The Runs page's picker whose choice lives in ``state_key`` (its widget key is ``<state_key>_<digest>``)."""
    widgets = at.selectbox if state_key == "runs_open" else at.multiselect
    return next(w for w in widgets if str(w.key).startswith(state_key + "_"))


def confirm_buttons(at: AppTest) -> list:
    return [b for b in at.button if b.label == "Delete permanently"]


def train_in_dashboard(at: AppTest) -> Job:
    at.button(key="btn_train").click().run()
    job = at.session_state["sae_job"]
    assert wait_for(lambda: job.final), job.status
    return job


# ----------------------------------------------------------------------------- recording

def test_a_dashboard_run_is_recorded_automatically(store):
    at = app()
    job = train_in_dashboard(at)
    assert job.run_id is not None and job.record_error is None
    me = store.identity(at.session_state[TOKEN_KEY])  # a session without a browser gets an identity of its own
    assert me.role == "student" and store.get(job.run_id).owned_by == me.user, "the run is the session's"
    assert wait_for(lambda: store.get(job.run_id).status == "finished"), "the end of the run is recorded"
    record = store.get(job.run_id)
    assert record.dataset == "digits" and record.model_config.n_hidden == 9 and record.train_config.epochs == 4
    assert record.step == job.latest().step and record.has_weights
    assert record.reconstruction is not None and record.dead_units is not None and record.probe_accuracy is not None
    np.testing.assert_array_equal(store.history(job.run_id)["total"], job.history()["total"])
    np.testing.assert_array_equal(store.load_model(job.run_id).encoder.weight.detach().numpy(),
                                  job.latest().weights["encoder.weight"])
    assert str(store.root) == str(state.run_store().root)  # the test's store, never the home directory


def test_an_untrained_job_records_nothing_and_a_recorded_job_stays_collectable(store):
    data = load_dataset("digits")
    idle = Job(Settings(dataset="digits", n_hidden=4, epochs=2), data, subset_indices(data.n_samples), store=store)
    assert idle.run_id is None and len(store) == 0
    job = Job(Settings(dataset="digits", n_hidden=4, epochs=2), data, subset_indices(data.n_samples), store=store)
    job.step(3)
    assert wait_for(lambda: job.latest().step == 3 and job.status == RunStatus.PAUSED)
    run_id = job.run_id
    assert run_id in store and wait_for(lambda: store.get(run_id).status == "paused")  # a pause checkpoints
    ref = weakref.ref(job)
    del job, idle
    gc.collect()
    assert ref() is None, "the recorder (or anything the trainer holds) keeps the Job alive"
    assert wait_for(lambda: store.get(run_id).status == "stopped"), "the finalizer's stop is recorded"


# ----------------------------------------------------------------------------- runs page

def test_runs_page_lists_the_recorded_runs(store):
    ids = [record_run(store, "first run", rho=0.05), record_run(store, "second run", rho=0.1, n_hidden=16)]
    at = app(page=RUNS)
    assert at.title[0].value.endswith("Runs")
    table = at.dataframe[0].value
    assert set(table["name"]) == {"first run", "second run"} and set(table["id"]) == set(ids)
    assert set(table["status"]) == {"finished"} and table["reconstruction"].notna().all()
    assert sorted(table["n_hidden"].tolist()) == [9, 16] and sorted(table["rho"].tolist()) == [0.05, 0.1]
    assert any(str(store.root) in c.value for c in at.caption), "the page says where the runs are stored"
    at.text_input(key="runs_search").set_value("second").run()
    assert at.dataframe[0].value["name"].tolist() == ["second run"]


def test_runs_page_without_runs_says_how_to_get_some(store):
    at = app(page=RUNS)
    assert any("No runs recorded yet" in i.value for i in at.info)


def test_comparing_two_runs_overlays_their_curves_and_histograms(store):
    a = record_run(store, "beta 0.3", beta=0.3)
    b = record_run(store, "beta 10", beta=10.0)
    at = app(page=RUNS)
    picker(at, "runs_compare").set_value([a, b]).run()
    no_exception(at)
    figs = charts(at)
    curves = next(f for t, f in figs.items() if "runs overlaid" in t and "loss" in t)
    assert [t["name"] for t in curves["data"]] == ["beta 0.3", "beta 10"]
    assert all(len(t["x"]) > 10 or isinstance(t["x"], dict) for t in curves["data"])
    hist = next(f for t, f in figs.items() if t.startswith("Mean activation per unit"))
    assert [t["name"] for t in hist["data"]] == ["beta 0.3", "beta 10"]
    filters = next(f for k, f in figs.items() if k.endswith("cmp_filters"))  # side by side, one picture
    assert filters["data"][0]["type"] == "image"
    assert [a["text"] for a in filters["layout"]["annotations"]] == ["<b>beta 0.3</b>", "<b>beta 10</b>"]
    differ = next(d.value for d in at.dataframe if "setting" in d.value.columns)
    assert differ["setting"].tolist() == ["beta"], "the settings that differ are listed"
    at.radio(key="runs_curve").set_value("reconstruction").run()
    at.radio(key="runs_x").set_value("time").run()
    no_exception(at)


def test_compare_needs_two_runs(store):
    a = record_run(store, "alone")
    at = app(page=RUNS)
    picker(at, "runs_compare").set_value([a]).run()
    assert any("Choose two to four runs" in i.value for i in at.info)


def test_rename_and_delete_a_run(store, alice):
    a = record_run(store, "keep me", owner=alice)
    b = record_run(store, "throw me away", owner=alice)
    at = app(page=RUNS, token=alice)
    at.radio(key="runs_view").set_value("One run").run()
    picker(at, "runs_open").set_value(a).run()
    at.text_input(key=f"runs_name_{a}").set_value("renamed run")  # in a form: sent with the submit
    at.button(key=f"FormSubmitter:runs_rename_form_{a}-Rename").click().run()
    no_exception(at)
    assert store.get(a).name == "renamed run"
    assert "renamed run" in at.dataframe[0].value["name"].tolist()
    picker(at, "runs_open").set_value(b).run()
    at.button(key=f"runs_delete_{b}").click().run()
    no_exception(at)
    assert b not in store and b in store.trash and store.weights_path(b).exists(), "in the trash until purged"
    assert at.dataframe[0].value["name"].tolist() == ["renamed run"]


def test_deleting_one_run_deletes_exactly_one_closes_its_confirmation_and_can_be_undone(store, alice):
    ids = [quick_run(store, f"run {k}", owner=alice) for k in range(3)]
    doomed = ids[1]
    before = store.get(doomed)
    at = app(page=RUNS, token=alice)
    at.radio(key="runs_view").set_value("One run").run()
    picker(at, "runs_open").set_value(doomed).run()
    assert at.query_params["run"] == doomed, "the URL names the run on view"
    (confirm,) = confirm_buttons(at)
    confirm.click().run()
    no_exception(at)
    assert len(store) == 2 and doomed not in store and doomed in store.trash, "exactly one run deleted"
    on_view = at.session_state["runs_open"]
    assert on_view != doomed and on_view in ids
    assert at.session_state[f"runs_delete_pop_{doomed}"] is False, "the confirmation closed after use"
    assert [b.key for b in confirm_buttons(at)] == [f"runs_delete_{on_view}"], \
        "the one confirmation left is bound to the run on view"
    assert not at.session_state[f"runs_delete_pop_{on_view}"], "the next run's confirmation starts closed"
    assert at.query_params["run"] == on_view, "the deleted id left the URL"
    assert any("Deleted **run 1**" in s.value for s in at.success)
    label = picker(at, "runs_open").options
    assert not any(o.startswith("run 1 ·") for o in label)
    at.button(key="runs_undo").click().run()
    no_exception(at)
    assert store.get(doomed) == before and len(store) == 3 and len(store.trash) == 0, "Undo restores it exactly"
    assert at.session_state["runs_open"] == doomed and at.query_params["run"] == doomed
    assert not at.success


def test_a_link_to_a_deleted_run_leaves_the_url(store):
    keep, gone = quick_run(store, "kept"), quick_run(store, "gone")
    store.trash.put(gone)
    at = app(page=RUNS)
    at.query_params["run"] = gone
    at.run()
    no_exception(at)
    assert "run" not in at.query_params and any("no longer recorded" in c.value for c in at.caption)
    assert at.session_state.get("runs_open") != gone and keep in store


def test_the_run_picker_follows_a_rename_and_loads_the_run_it_names(store, alice):
    first, second = quick_run(store, "first", owner=alice), quick_run(store, "second", owner=alice)
    at = app(page=RUNS, token=alice)
    at.radio(key="runs_view").set_value("One run").run()
    picker(at, "runs_open").set_value(first).run()
    at.text_input(key=f"runs_name_{first}").set_value("renamed")
    at.button(key=f"FormSubmitter:runs_rename_form_{first}-Rename").click().run()
    no_exception(at)
    box = picker(at, "runs_open")
    assert box.value == first and box.options[box.index].startswith("renamed · ")
    assert not any(o.startswith("first ·") for o in box.options), "no stale label"
    at.button(key="runs_load").click().run()
    no_exception(at)
    assert any("renamed" in c.value for c in at.sidebar.caption), "the run loaded is the one the picker names"
    assert second in store


def test_the_table_labels_the_final_hyperparameters_and_what_changed_live(store):
    run_id = store.create("digits · 9 sigmoid · KL ρ=0.01 β=3", "digits", ModelConfig(64, 9, decoder_activation="sigmoid"),
                          TrainConfig(rho=0.01, beta=3.0))
    weights = {k: v.detach().numpy().copy() for k, v in SparseAutoencoder(64, 9).state_dict().items()}
    from sae.training.trainer import Snapshot
    store.finish(run_id, Snapshot(step=5, epoch=1.0, losses={"total": 1.0}, rho_hat=np.full(9, 0.05),
                                  weights=weights, hyper={"rho": 0.05, "beta": 1.0, "weight_decay": 1e-4, "lr": 0.01},
                                  samples_per_s=0.0, elapsed=1.0, status=RunStatus.FINISHED, reason=""))
    at = app(page=RUNS)
    table = at.dataframe[0].value
    assert table.loc[0, "rho"] == 0.05 and table.loc[0, "changed"] == "ρ 0.01→0.05 · β 3→1"
    assert table.loc[0, "name"] == "digits · 9 sigmoid · KL ρ=0.01 β=3", "the name is the user's, left alone"


def test_a_run_loads_back_into_the_live_view_and_continues(store):
    run_id = record_run(store, "to continue", n_hidden=16, rho=0.1, beta=3.0, epochs=3)
    record = store.get(run_id)
    at = app(page=RUNS)
    at.radio(key="runs_view").set_value("One run").run()
    picker(at, "runs_open").set_value(run_id).run()
    at.button(key="runs_load").click().run()
    no_exception(at)
    assert at.title[0].value.endswith("Train"), "loading switches to the live view"
    job = at.session_state["sae_job"]
    assert job.status == RunStatus.PAUSED and job.latest().step == record.step
    np.testing.assert_array_equal(job.latest().weights["encoder.weight"],
                                  store.load_model(run_id).encoder.weight.detach().numpy())
    assert job.model_config.n_hidden == 16 and job.settings.rho == 0.1
    assert at.number_input(key="hidden").value == 16 and at.select_slider(key="rho").value == 0.1
    assert not at.warning, "the sidebar holds the loaded run's settings: nothing asks for a restart"
    assert any("loaded run" in c.value for c in at.sidebar.caption)
    assert len(job.history()["step"]) == len(store.history(run_id)["step"])  # the curves carry on
    at.button(key="btn_pause").click().run()  # Resume
    assert wait_for(lambda: job.latest().step > record.step)
    job.stop()
    child = store.get(job.run_id)
    assert child.parent_id == run_id and child.name == "to continue (continued)"
    assert child.owned_by == store.identity(at.session_state[TOKEN_KEY]).user, "a continuation is the session's own"
    assert wait_for(lambda: store.get(job.run_id).final)
    assert store.get(run_id).step == record.step, "the loaded run itself is left as it was"


def test_a_run_without_weights_cannot_be_loaded(store):
    run_id = store.create("never trained", "digits", ModelConfig(64, 4, decoder_activation="sigmoid"), TrainConfig())
    at = app(page=RUNS)
    at.radio(key="runs_view").set_value("One run").run()
    picker(at, "runs_open").set_value(run_id).run()
    assert at.button(key="runs_load").disabled
    assert any("No weights recorded yet" in i.value for i in at.info)


# ----------------------------------------------------------------------------- sweep page

def start_sweep(at: AppTest, rhos=(0.01, 0.1), betas=(0.3, 3.0), epochs=3, hidden=()) -> str:
    at.multiselect(key="sweep_rhos").set_value(list(rhos))
    at.multiselect(key="sweep_betas").set_value(list(betas))
    at.multiselect(key="sweep_hidden").set_value(list(hidden))
    at.number_input(key="sweep_epochs").set_value(epochs)
    at.button(key="sweep_start").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    return at.session_state["sweep_pick"]


def test_a_tiny_sweep_runs_to_the_end_and_draws_its_results(store):
    at = app(page=SWEEP)
    assert at.title[0].value.endswith("Sweep")
    assert any("No sweeps yet" in i.value for i in at.info)
    sweep_id = start_sweep(at)
    assert wait_for(lambda: store.sweeps.get(sweep_id).status == "finished", 120), "the sweep did not finish"
    at.run()
    no_exception(at)
    cells = store.list(sweep_id=sweep_id)
    assert len(cells) == 4 and {r.status for r in cells} == {"finished"}
    me = store.identity(at.session_state[TOKEN_KEY]).user
    assert store.sweeps.get(sweep_id).owned_by == me and {r.owned_by for r in cells} == {me}, "the session's sweep"
    assert {(r.train_config.rho, r.train_config.beta) for r in cells} == {(0.01, 0.3), (0.01, 3.0), (0.1, 0.3),
                                                                          (0.1, 3.0)}
    figs = charts(at)
    for title in ("Reconstruction error", "Mean ρ̂", "Dead units", "Probe accuracy"):
        z = np.array(figs[title]["data"][0]["z"]["bdata"] if isinstance(figs[title]["data"][0]["z"], dict)
                     else figs[title]["data"][0]["z"], dtype=object)
        assert figs[title]["data"][0]["type"] == "heatmap", title
        assert z.size, title
    recon = figs["Reconstruction error"]["data"][0]["text"]
    assert all(t not in ("queued", "running") for row in recon for t in row), recon
    assert any(f["data"][0]["type"] == "image" for f in figs.values()), "the small multiples of the filters"
    assert any("ρ = " in m.value and "β = " in m.value for m in at.markdown), "the best cell is named"
    # a click on a cell (what the chart's selection callback stores) opens its run on the Runs page
    at.session_state["sweep_clicked"] = (1, 0)
    at.run()
    no_exception(at)
    assert at.title[0].value.endswith("Runs")
    opened = store.get(at.session_state["runs_open"])
    assert opened.sweep_id == sweep_id and (opened.train_config.rho, opened.train_config.beta) == (0.1, 0.3)
    assert at.radio(key="runs_view").value == "One run"


def test_a_sweep_over_hidden_sizes_and_the_best_cell_loads_into_the_live_view(store):
    at = app(page=SWEEP)
    sweep_id = start_sweep(at, rhos=(0.05,), betas=(0.3, 3.0), hidden=(4, 9), epochs=2)
    assert wait_for(lambda: store.sweeps.get(sweep_id).status == "finished", 120)
    at.run()
    no_exception(at)
    assert len(store.list(sweep_id=sweep_id)) == 4
    at.radio(key="sweep_hidden_view").set_value(1).run()
    no_exception(at)
    assert any(t.endswith("9 hidden") for t in charts(at))
    at.button(key="sweep_load_best").click().run()
    no_exception(at)
    assert at.title[0].value.endswith("Train")
    job = at.session_state["sae_job"]
    assert job.status == RunStatus.PAUSED and job.model_config.n_hidden == 9


def test_bad_sweep_settings_are_explained(store):
    at = app({"data": "digits", "hidden": "9", "penalty": "TopK", "act": "relu"}, page=SWEEP)
    at.multiselect(key="sweep_rhos").set_value([0.01])
    at.multiselect(key="sweep_betas").set_value([0.3])
    at.button(key="sweep_start").click().run()
    no_exception(at)
    assert any("TopK" in e.value for e in at.error)


def test_runs_and_sweeps_survive_a_restart(store):
    first = record_run(store, "before the restart")
    at = app(page=SWEEP)
    sweep_id = start_sweep(at, rhos=(0.05,), betas=(0.3, 3.0), epochs=2)
    assert wait_for(lambda: store.sweeps.get(sweep_id).status == "finished", 120)
    # a restart: new store object, new sweep registry, new browser session
    state._open_store.clear()
    share.sweep_registry.clear()
    at = app(page=RUNS)
    names = set(at.dataframe[0].value["name"])
    assert "before the restart" in names and len(names) == 3
    at.switch_page(SWEEP).run()
    no_exception(at)
    assert at.session_state["sweep_pick"] == sweep_id
    assert any("finished" in c.value for c in at.caption)
    assert "Reconstruction error" in charts(at)
    assert first in store


# ----------------------------------------------------------------------------- share and export

def test_every_page_has_the_share_section(store):
    at = app()
    labels = [b.label for b in at.sidebar.get("download_button")]
    assert any("Model" in label for label in labels) and any("CSV" in label for label in labels)
    assert at.sidebar.file_uploader(key="share_upload")
    assert any("from sae import ModelConfig, TrainConfig, Trainer" in c.value for c in at.sidebar.code)
    for page in (RUNS, SWEEP, "pages/2_filters.py"):
        at.switch_page(page).run()
        no_exception(at)
        assert at.sidebar.file_uploader(key="share_upload")


def paused_at(step: int) -> tuple[AppTest, Job]:
    """The home page with a digits job trained to ``step`` (the panel's Step, then more), paused."""
    at = app({"data": "digits", "hidden": "16", "epochs": "1000"})
    at.button(key="btn_step").click().run()
    job = at.session_state["sae_job"]
    job.step(step - 1)
    assert wait_for(lambda: job.latest().step == step and job.status == RunStatus.PAUSED)
    return at, job


def upload(at: AppTest, name: str, data: bytes) -> Job:
    """Open ``data`` as the file ``name`` with the sidebar's model uploader; the session's job after it."""
    at.sidebar.file_uploader(key="share_upload").set_value((name, data, "application/octet-stream")).run()
    no_exception(at)
    return at.session_state["sae_job"]


def test_a_downloaded_bundle_uploads_back_to_identical_outputs(store):
    at, original = paused_at(41)
    bundle = share.job_bundle(original, original.model_config, original.data.name)  # what the button serves
    before = original.derived()
    loaded = upload(at, "model.zip", bundle)
    assert loaded is not original and original.final and loaded.status == RunStatus.PAUSED
    assert loaded.latest().step == 41  # the step the bundle records
    after = loaded.derived()
    np.testing.assert_array_equal(after.A, before.A)
    np.testing.assert_array_equal(after.X_hat, before.X_hat)
    np.testing.assert_array_equal(after.rho_hat, before.rho_hat)
    assert any("opened model.zip" in s.value for s in at.sidebar.success)
    for page in ("pages/2_filters.py", "pages/4_codes.py", "pages/5_reconstructions.py"):
        at.switch_page(page).run()
        no_exception(at)
        assert at.session_state["sae_job"] is loaded
    # a bare .safetensors (the store's weight files) opens too, with the same outputs
    raw = model_to_bytes(share.job_model(original, original.model_config), original.trainer.config, "digits")
    again = upload(at, "weights.safetensors", raw)
    assert again is not loaded
    np.testing.assert_array_equal(again.derived().X_hat, before.X_hat)
    again.start()  # and it trains on from there
    assert wait_for(lambda: again.latest().step > 0 and again.run_id is not None)


def test_an_uploaded_bundle_resumes_at_its_recorded_step_else_after_its_history(store):
    at, job = paused_at(10)
    model, history = share.job_model(job, job.model_config), job.history()
    assert history["step"][-1] == 9
    # (recorded step, what the upload resumes at): the weights' step, rows after it dropped from the history;
    # a bundle without a step (written before the step was recorded): the step after its last history row
    for i, (recorded, resumed, rows) in enumerate(((500, 500, 10), (5, 5, 5), (None, 10, 10))):
        loaded = upload(at, f"m{i}.zip", export.model_bundle(model, job.trainer.config, "digits", history,
                                                             step=recorded))
        assert loaded.latest().step == resumed and len(loaded.history()["step"]) == rows, recorded
        assert any(f"(step {resumed:,})" in s.value for s in at.sidebar.success)


@pytest.mark.parametrize("name,content,message", [
    ("junk.zip", b"this is not a zip", "junk.zip is not a valid model bundle"),
    ("empty.safetensors", b"", "empty"),
    ("model.safetensors", b"\x80\x04\x95" + b"\x00" * 64, "pickle"),
], ids=["not-zip", "empty", "pickle"])
def test_a_bad_upload_is_explained_and_changes_nothing(store, name, content, message):
    at = app()
    job = at.session_state["sae_job"]
    assert upload(at, name, content) is job
    errors = [e.value for e in at.sidebar.error]
    assert any(message in e for e in errors), errors


def test_a_model_for_other_data_is_explained(store):
    from sae.core.model import SparseAutoencoder

    model = SparseAutoencoder(5, 3)  # 5 inputs: no built-in data set has 5 features
    at = app()
    upload(at, "odd.safetensors", model_to_bytes(model))
    assert any("5 inputs" in e.value for e in at.sidebar.error)
