import pytest
import torch

from sae.core.gradcheck import COMBINATIONS, gradient_check, numerical_gradient, relative_difference


@pytest.mark.parametrize("activation,penalty,decoder", COMBINATIONS)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_check_below_1e9(activation, penalty, decoder, seed):
    result = gradient_check(activation, penalty, decoder, seed=seed)
    assert result.difference < 1e-9, result


def test_gradient_check_detects_a_wrong_gradient():
    theta = torch.randn(6, dtype=torch.float64)
    g_num = numerical_gradient(lambda t: (t ** 3).sum(), theta)
    assert relative_difference(g_num, 3 * theta ** 2) < 1e-9
    assert relative_difference(g_num, 2.9 * theta ** 2) > 1e-3  # a 3% error is caught


def test_every_valid_combination_is_checked():
    import itertools

    from sae.core.config import ACTIVATIONS, DECODER_ACTIVATIONS, PENALTIES, ConfigError, ModelConfig, TrainConfig
    from sae.training.inputs import check_compatible

    valid = set()
    for a, p, d in itertools.product(ACTIVATIONS, PENALTIES, DECODER_ACTIVATIONS):
        try:
            check_compatible(ModelConfig(8, 5, a, d, topk=2 if p == "topk" else None), TrainConfig(penalty=p), 8)
        except ConfigError:
            continue
        valid.add((a, p, d))
    assert len(valid) == 16 and set(COMBINATIONS) == valid
