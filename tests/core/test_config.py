import json

import pytest

from sae.core.config import ConfigError, ModelConfig, TrainConfig, config_from_dict, config_to_dict


@pytest.mark.parametrize("field,value,match", [
    ("rho", 0.0, "strictly between 0 and 1"), ("rho", 1.0, "strictly between 0 and 1"), ("rho", -0.1, "rho"),
    ("rho", float("nan"), "finite"), ("rho", "abc", "number"), ("beta", -1.0, "beta"), ("beta", float("inf"), "finite"),
    ("weight_decay", -1e-4, "weight decay"), ("lr", 0.0, "learning rate"), ("lr", 1e3, "learning rate"),
    ("batch_size", 0, "batch size"), ("epochs", 0, "epochs"), ("max_iter", 0, "max_iter"),
    ("penalty", "l2", "penalty"), ("optimizer", "rmsprop", "optimizer"), ("momentum", 1.0, "momentum"),
    ("seed", -1, "seed"), ("rho_hat", "median", "rho_hat"), ("ema_decay", 1.0, "ema_decay"),
])
def test_train_config_limits(field, value, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**{field: value})


def test_limits_inside_are_accepted():
    TrainConfig(rho=1e-6, beta=0.0, weight_decay=0.0, lr=10.0, batch_size=1, seed=None)


def test_round_trip_through_json():
    cfg = TrainConfig(rho=0.01, beta=3.0, optimizer="lbfgs", max_iter=400)
    model = ModelConfig(64, 25, "tanh", "linear")
    assert config_from_dict(TrainConfig, json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    assert config_from_dict(ModelConfig, json.loads(json.dumps(config_to_dict(model)))) == model


def test_unknown_and_missing_fields_named():
    with pytest.raises(ConfigError, match="unknown.*colour"):
        config_from_dict(TrainConfig, {"colour": "red"})
    with pytest.raises(ConfigError, match="n_hidden"):
        config_from_dict(ModelConfig, {"n_inputs": 4})
    with pytest.raises(ConfigError, match="JSON object"):
        config_from_dict(ModelConfig, [1, 2])


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    import json

    import numpy as np

    from sae.core.config import ModelConfig, TrainConfig, config_to_dict

    model = ModelConfig(np.int64(64), np.int64(25), topk=np.int32(3))
    assert model == ModelConfig(64, 25, topk=3) and type(model.n_hidden) is int and type(model.topk) is int
    train = TrainConfig(rho=np.float32(0.25), beta=np.float64(3), batch_size=np.int64(64), max_iter=np.int32(10),
                        seed=np.uint8(7), epochs=np.int64(2), lr=np.float32(0.5))
    assert type(train.batch_size) is int and type(train.seed) is int and type(train.rho) is float
    assert train.rho == 0.25 and train.epochs == 2.0
    json.dumps(config_to_dict(model)), json.dumps(config_to_dict(train))  # plain JSON, as saved with a run
    for bad in (np.float64(2.5), True, np.bool_(True)):
        with pytest.raises(ConfigError, match="whole number"):
            ModelConfig(64, bad)


def test_one_decoder_default_everywhere_auto_chosen_from_the_data():
    import inspect

    import torch

    from sae.cli import build_parser
    from sae.training.estimator import SparseAutoencoderTransformer
    from sae.training.trainer import Trainer

    assert ModelConfig(64, 25).decoder_activation == "auto"
    assert SparseAutoencoderTransformer().decoder_activation == "auto"
    assert build_parser().parse_args(["train"]).decoder == "auto"
    assert inspect.signature(ModelConfig).parameters["decoder_activation"].default == "auto"

    gen = torch.Generator().manual_seed(0)
    unit = torch.rand(200, 16, generator=gen)
    standard = torch.randn(200, 16, generator=gen) * 3.0  # outside [0, 1]: a sigmoid output cannot reach it
    assert ModelConfig(16, 4).for_data(unit).decoder_activation == "sigmoid"
    assert ModelConfig(16, 4).for_data(standard.numpy()).decoder_activation == "linear"
    assert ModelConfig(16, 4, decoder_activation="sigmoid").for_data(standard).decoder_activation == "sigmoid"

    cfg = TrainConfig(epochs=30, batch_size=50, lr=1e-2, beta=0.0)
    trainer = Trainer(standard, ModelConfig(16, 4), cfg)
    assert trainer.model.config.decoder_activation == "linear"
    snap = trainer.run()
    variance = 0.5 * float(standard.var(dim=0, unbiased=False).sum())  # error of predicting the mean
    assert snap.losses["reconstruction"] < variance  # a sigmoid decoder would stay far above it
    assert Trainer(unit, ModelConfig(16, 4), cfg).model.config.decoder_activation == "sigmoid"


def test_a_model_and_a_run_record_need_a_concrete_decoder(tmp_path):
    from sae.core.model import SparseAutoencoder
    from sae.runs.store import RunStore, StoreError

    with pytest.raises(ConfigError, match="for_data"):
        SparseAutoencoder(8, 3, decoder_activation="auto")
    with pytest.raises(StoreError, match="for_data"):
        RunStore(tmp_path).create("r", "toy", ModelConfig(8, 3), TrainConfig())
    with pytest.raises(ConfigError, match="auto, sigmoid, linear"):
        ModelConfig(8, 3, decoder_activation="tanh")
