"""The MLP denoiser computes exactly an MLP over the concatenation [x_t ; emb(t) ; c]."""

import pytest
import torch

from recdiff.nn import MLPDenoiser, timestep_embedding


@pytest.mark.parametrize("cond_dim", [0, 3])
def test_blockwise_first_layer_equals_the_concatenated_mlp(cond_dim):
    torch.manual_seed(0)
    net = MLPDenoiser(7, [5, 4], time_dim=6, cond_dim=cond_dim, activation="tanh").eval()
    x = torch.randn(9, 7)
    t = torch.tensor([0, 3, 3, 1, 0, 2, 3, 3, 1])
    cond = torch.randn(9, cond_dim) if cond_dim else None
    emb = net.time_embedding.proj(timestep_embedding(t, 6))
    parts = [x, emb] + ([cond] if cond_dim else [])
    expected = net.layers(torch.cat(parts, dim=1))
    torch.testing.assert_close(net(x, t, cond), expected)


def test_checkpoints_with_one_first_layer_matrix_still_load():
    torch.manual_seed(0)
    net = MLPDenoiser(7, [5], time_dim=6, cond_dim=3).eval()
    legacy = {k: v for k, v in net.state_dict().items() if not k.startswith("layers.0.")}
    legacy["layers.0.weight"] = net.layers[0].weight.detach().clone()  # nn.Linear's layout
    legacy["layers.0.bias"] = net.layers[0].bias.detach().clone()
    other = MLPDenoiser(7, [5], time_dim=6, cond_dim=3).eval()
    other.load_state_dict(legacy)
    x, t, c = torch.randn(4, 7), torch.tensor([0, 1, 2, 3]), torch.randn(4, 3)
    torch.testing.assert_close(other(x, t, c), net(x, t, c))


def test_denoiser_input_checks():
    net = MLPDenoiser(4, [8], cond_dim=2)
    with pytest.raises(ValueError, match="width 4"):
        net(torch.zeros(1, 5), torch.zeros(1, dtype=torch.long), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="condition"):
        net(torch.zeros(1, 4), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match="activation"):
        MLPDenoiser(4, [8], activation="swish")


def test_timestep_embedding_values():
    emb = timestep_embedding(torch.tensor([0, 2]), 4)
    # frequencies 1 and 1e-2: [cos(t), cos(t/100), sin(t), sin(t/100)]
    expected = torch.tensor(
        [
            [1.0, 1.0, 0.0, 0.0],
            [
                torch.cos(torch.tensor(2.0)),
                torch.cos(torch.tensor(0.02)),
                torch.sin(torch.tensor(2.0)),
                torch.sin(torch.tensor(0.02)),
            ],
        ]
    )
    torch.testing.assert_close(emb, expected)


def test_dropout_keeps_the_expectation_and_the_rate():
    from recdiff.nn.denoisers import Dropout

    layer = Dropout(0.3).train()
    torch.manual_seed(0)
    out = layer(torch.ones(1000, 1000))
    assert float((out == 0).float().mean()) == pytest.approx(0.3, abs=0.005)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.01)
    assert torch.equal(layer.eval()(torch.ones(3, 3)), torch.ones(3, 3))
