from sae.core.config import ModelConfig, TrainConfig
from sae.data import load_dataset
from sae.training.progress import Progress
from sae.training.trainer import Trainer
from sae.workers import backend
from sae.workers.process import LocalBackend
from sae.workers.ray_backend import RayBackend
from sae.workers.remote import RemoteTrainer


def test_the_default_is_local_worker_processes(monkeypatch):
    monkeypatch.delenv("SAE_LAB_RAY_ADDRESS", raising=False)
    monkeypatch.delenv("SAE_LAB_WORKERS", raising=False)
    assert isinstance(backend._choose(), LocalBackend)


def test_the_environment_chooses_ray_or_threads(monkeypatch):
    monkeypatch.setenv("SAE_LAB_RAY_ADDRESS", "127.0.0.1:6379")
    chosen = backend._choose()
    assert isinstance(chosen, RayBackend) and chosen.address == "127.0.0.1:6379"
    monkeypatch.delenv("SAE_LAB_RAY_ADDRESS")
    monkeypatch.setenv("SAE_LAB_WORKERS", "threads")
    assert backend._choose() is None


def test_the_dashboard_flag_chooses_ray():
    previous = backend.run_backend()
    try:
        chosen = backend.configure_from_args(["--ray-address", "10.0.0.5:6379"])
        assert isinstance(chosen, RayBackend) and chosen.address == "10.0.0.5:6379"
        assert backend.configure_from_args(["--ray-address=auto"]).address == "auto"
    finally:
        backend.use_backend(previous)
    assert backend.run_backend() is previous


def test_new_trainer_follows_the_backend(in_threads):
    data = load_dataset("toy")
    assert type(backend.new_trainer(data.X, ModelConfig(4, 2), TrainConfig(epochs=1))) is Trainer
    backend.use_backend(LocalBackend())
    trainer = backend.new_trainer(data.X, ModelConfig(4, 2), TrainConfig(epochs=1))
    try:
        assert isinstance(trainer, RemoteTrainer)
    finally:
        trainer.close()


def test_a_call_that_cannot_cross_runs_here(in_threads):
    assert backend.call(lambda progress: progress is not None, Progress()) is True
