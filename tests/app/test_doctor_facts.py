"""sae.app.doctor: the facts of a run as the doctor reads them, and a job's findings once per snapshot."""

from __future__ import annotations

import numpy as np

from sae import ModelConfig, TrainConfig, Trainer
from sae.app.doctor import data_facts_of, decoder_of, facts_of, job_findings
from sae.data import Dataset, load_dataset
from sae.evaluation.doctor import DataFacts


def test_the_decoder_auto_stands_for_is_read_from_the_datas_range():
    inside, outside = DataFacts(0.0, 1.0, 0.0), DataFacts(-1.0, 2.0, 0.3)
    assert decoder_of(ModelConfig(4, 2), inside) == "sigmoid"
    assert decoder_of(ModelConfig(4, 2), outside) == "linear"
    assert decoder_of(ModelConfig(4, 2, decoder_activation="sigmoid"), outside) == "sigmoid"


def test_a_data_sets_facts_are_measured_once():
    data = Dataset("x3", load_dataset("digits").X * 3, None, None, "")
    first = data_facts_of(data)
    assert first is data_facts_of(data) and first.high == 3.0 and first.outside > 0


def test_facts_of_a_trainer_carry_its_state_and_its_resamplings():
    X = load_dataset("digits").X
    trainer = Trainer(X, ModelConfig(64, 9), TrainConfig(rho=0.1, batch_size=64, epochs=2))
    trainer.run(steps=30)
    trainer.resample([0, 1])
    facts = facts_of(trainer, ModelConfig(64, 9), data_facts_of(load_dataset("digits")))
    assert facts.step == 30 and facts.rho_hat.shape == (9,) and facts.dead_since.shape == (9,)
    assert facts.resampled == (30,) and facts.batch_size == 64 and facts.decoder == "sigmoid"
    assert len(facts.history["step"]) == 30 and facts.config is trainer.config


def test_a_job_has_no_findings_before_it_trains(job):
    assert job_findings(job) == []
