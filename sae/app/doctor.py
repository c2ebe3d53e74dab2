"""The doctor of a live run: the :class:`sae.evaluation.doctor.RunFacts` of a job or trainer, and its findings
(no Streamlit).

:func:`facts_of` reads what the rules need from anything with the Trainer's API (a ``sae.Trainer`` or a
``sae.workers.remote.RemoteTrainer``): its latest snapshot, its history, its config, its batch; the data's range
is measured once per data set (:func:`data_facts_of`). :func:`job_findings` diagnoses a job once per snapshot
version (kept in the job's ``cache``), so the compact line of every page and the Train page's panel read the same
findings without computing them twice.
"""

from __future__ import annotations

import weakref

import numpy as np

from sae.core.config import ModelConfig
from sae.evaluation.doctor import DataFacts, Finding, RunFacts, data_facts, diagnose

_data_facts: "weakref.WeakKeyDictionary[object, DataFacts]" = weakref.WeakKeyDictionary()


def data_facts_of(data) -> DataFacts:
    """The :class:`DataFacts` of a ``sae.data.Dataset`` (its X measured once, kept while the data set lives)."""
    facts = _data_facts.get(data)
    if facts is None:
        facts = _data_facts[data] = data_facts(data.X)
    return facts


def decoder_of(model_config: ModelConfig, data: DataFacts) -> str:
    """The decoder g a model config stands for on data of this range (``auto``: sigmoid for data in [0, 1])."""
    if model_config.decoder_activation != "auto":
        return model_config.decoder_activation
    return "sigmoid" if data.outside == 0 else "linear"


def facts_of(trainer, model_config: ModelConfig, data: DataFacts) -> RunFacts:
    """The RunFacts of a trainer (``sae.Trainer`` or ``RemoteTrainer``) now: its latest snapshot, its history and
    the steps it resampled units at."""
    snap = trainer.latest()
    config = trainer.config
    batch = trainer.batch_size if config.optimizer != "lbfgs" else None
    timeline = getattr(trainer, "timeline_view", None)  # a trainer without a timeline has never resampled
    edits = timeline().edits if callable(timeline) else ()
    return RunFacts(history=trainer.history(), step=int(snap.step), rho_hat=np.asarray(snap.rho_hat),
                    dead_since=np.asarray(snap.dead_since), config=config, decoder=decoder_of(model_config, data),
                    activation=model_config.activation, data=data, batch_size=batch,
                    resampled=tuple(int(e.step) for e in edits if e.kind == "resample"))


def job_findings(job) -> list[Finding]:
    """The findings (``sae.evaluation.doctor.diagnose``) of a :class:`sae.app.job.Job`'s run, once per snapshot
    version; none before the first step."""
    snap = job.latest()
    if snap.step == 0:
        return []
    key = (snap.version, snap.step)
    return job.cache.memo("doctor", key, lambda: diagnose(facts_of(job.trainer, job.model_config,
                                                                   data_facts_of(job.data))))


__all__ = ["facts_of", "data_facts_of", "decoder_of", "job_findings"]
