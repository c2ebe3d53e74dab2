import math

import numpy as np
import pytest
import torch

from sae import ConfigError, ModelConfig, SparseAutoencoder


def test_shapes_and_layers():
    model = SparseAutoencoder(64, 25)
    x = torch.rand(10, 64)
    x_hat, a = model(x)
    assert x_hat.shape == (10, 64) and a.shape == (10, 25)
    assert isinstance(model.encoder, torch.nn.Linear) and isinstance(model.decoder, torch.nn.Linear)
    assert model.encoder.weight.shape == (25, 64) and model.decoder.weight.shape == (64, 25)
    torch.testing.assert_close(model.decode(model.encode(x)), x_hat)


def test_ufldl_initialisation():
    model = SparseAutoencoder(64, 25)
    r = math.sqrt(6 / (64 + 25 + 1))
    for layer in (model.encoder, model.decoder):
        assert layer.weight.abs().max() <= r
        assert layer.weight.abs().max() > 0.9 * r  # uniform over the whole range
        assert (layer.bias == 0).all()


def test_seeded_init_reproducible():
    a, b = SparseAutoencoder(8, 4), SparseAutoencoder(8, 4)
    a.reset_parameters(torch.Generator().manual_seed(3))
    b.reset_parameters(torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.encoder.weight, b.encoder.weight)


@pytest.mark.parametrize("activation,low,high", [("sigmoid", 0, 1), ("tanh", -1, 1), ("relu", 0, math.inf)])
def test_activation_ranges(activation, low, high):
    model = SparseAutoencoder(8, 16, activation=activation)
    a = model.encode(torch.randn(50, 8) * 5)
    assert a.min() >= low and a.max() <= high


def test_linear_decoder_unbounded():
    model = SparseAutoencoder(4, 3, decoder_activation="linear")
    with torch.no_grad():
        model.decoder.bias.fill_(5.0)
    assert model(torch.rand(2, 4))[0].min() > 1.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_inputs=0, n_hidden=3), "n_inputs"),
    (dict(n_inputs=4, n_hidden=0), "n_hidden"),
    (dict(n_inputs=4, n_hidden=10**6), "n_hidden"),
    (dict(n_inputs=4, n_hidden=3, activation="softmax"), "activation"),
    (dict(n_inputs=4, n_hidden=3, decoder_activation="softmax"), "decoder"),
    (dict(n_inputs=4, n_hidden=3, topk=5), "TopK"),
    (dict(n_inputs=4.5, n_hidden=3), "whole number"),
])
def test_bad_model_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**kwargs)


def test_repr_names_the_shape():
    assert "n_hidden=25" in repr(SparseAutoencoder(64, 25))


def test_models_pickle_for_sklearn_clone_and_joblib():
    import pickle
    model = SparseAutoencoder(4, 3, decoder_activation="linear")
    copy = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(copy(torch.ones(1, 4))[0], model(torch.ones(1, 4))[0])


def test_from_weights_copies_a_state_dict_and_explains_a_misfit():
    source = SparseAutoencoder(8, 4, activation="relu", decoder_activation="linear")
    weights = {k: v.detach().numpy().astype(np.float64) for k, v in source.state_dict().items()}
    model = SparseAutoencoder.from_weights(source.config, weights)
    assert not model.training and model.config == source.config
    for name, value in model.state_dict().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, source.state_dict()[name])
    weights["encoder.weight"][0, 0] = 99.0  # a copy: the model does not follow its source arrays
    assert model.encoder.weight[0, 0].item() != 99.0
    x = torch.rand(3, 8)
    torch.testing.assert_close(model(x)[0], source(x)[0])

    with pytest.raises(ValueError, match=r"weights do not fit a 8 -> 5 model \(encoder.weight has shape \(4, 8\)"):
        SparseAutoencoder.from_weights(ModelConfig(8, 5, decoder_activation="sigmoid"), weights)
    del weights["decoder.bias"]
    with pytest.raises(ValueError, match="missing decoder.bias"):
        SparseAutoencoder.from_weights(source.config, weights)
    with pytest.raises(ValueError, match="unknown extra"):
        SparseAutoencoder.from_weights(source.config, {**source.state_dict(), "extra": np.zeros(1)})


def test_from_weights_draws_no_random_numbers_and_owns_its_weights():
    """Rebuilding a network from a snapshot (ten times a second in the dashboard) leaves torch's global
    generator where it was, and the model does not share memory with the caller's arrays."""
    source = SparseAutoencoder.from_config(ModelConfig(6, 3, decoder_activation="sigmoid"))
    weights = {k: v.detach().numpy().copy() for k, v in source.state_dict().items()}
    torch.manual_seed(123)
    before = torch.get_rng_state()
    model = SparseAutoencoder.from_weights(source.config, weights)
    assert torch.equal(torch.get_rng_state(), before)
    weights["encoder.weight"][:] = 0.0
    assert torch.equal(model.encoder.weight, source.encoder.weight)
    assert model.encoder.weight.device.type == "cpu" and not model.training
    x = torch.rand(4, 6)
    x_hat, a = model(x)
    ref_hat, ref_a = source.eval()(x)
    assert torch.equal(x_hat, ref_hat) and torch.equal(a, ref_a)
