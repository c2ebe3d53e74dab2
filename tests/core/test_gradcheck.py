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
