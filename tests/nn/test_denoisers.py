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


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
@pytest.mark.parametrize("cond_dim", [0, 3])
def test_reverse_mean_chain_equals_the_step_by_step_posterior_mean(prediction, cond_dim):
    from recdiff.diffusion import DDPMSampler, GaussianDiffusion, NoiseSchedule

    torch.manual_seed(0)
    net = MLPDenoiser(40, [12, 6, 12], cond_dim=cond_dim, dropout=0.5).eval()
    process = GaussianDiffusion(NoiseSchedule.linear(8, 1e-3, 0.3), prediction)
    x = torch.rand(5, 40)
    cond = torch.randn(5, cond_dim) if cond_dim else None
    model_fn = (lambda x_t, t: net(x_t, t, cond)) if cond_dim else net
    expected = DDPMSampler(process, add_noise=False).sample(model_fn, x)
    steps = process.mean_chain
    got = net.reverse_mean_chain(x, steps, cond)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # A respaced process calls the network with its original step indices.
    spaced = GaussianDiffusion(process.schedule.spaced(3), prediction)
    expected = DDPMSampler(spaced, add_noise=False).sample(model_fn, x)
    steps = spaced.mean_chain
    torch.testing.assert_close(
        net.reverse_mean_chain(x, steps, cond), expected, rtol=1e-5, atol=1e-5
    )


def test_reverse_mean_chain_applies_only_where_it_is_exact_and_saves_work():
    ml1m = MLPDenoiser(2810, [600, 200, 600])
    # Saves 2,810 x 1,200 - 600 x 600 = 3.012M per row and step; M costs 600 x 600 x 2,810 =
    # 1,011.6M once: it pays from 336 row-steps on.
    assert ml1m.chain_saves_work(batch=1024, steps=40) and ml1m.chain_saves_work(9, 40)
    assert not ml1m.chain_saves_work(batch=8, steps=40)  # 320 row-steps
    assert not MLPDenoiser(50, []).chain_saves_work(1024, 40)  # no hidden layer
    assert not MLPDenoiser(50, [20], normalize_input=True).chain_saves_work(1024, 40)
    assert not MLPDenoiser(10, [400, 400]).chain_saves_work(1024, 40)  # 400 x 400 > 10 x 800
    net = MLPDenoiser(50, [20], dropout=0.5)  # training mode: dropout would be skipped
    with pytest.raises(RuntimeError, match="eval"):
        net.reverse_mean_chain(torch.zeros(1, 50), [(0, 0.0, 1.0)])
    with pytest.raises(ValueError, match="normalize_input"):
        MLPDenoiser(50, [20], normalize_input=True).eval().reverse_mean_chain(
            torch.zeros(1, 50), [(0, 0.0, 1.0)]
        )


def test_reverse_mean_chain_under_bf16_autocast_stays_near_the_step_by_step_pass():
    from recdiff.diffusion import DDPMSampler, GaussianDiffusion, NoiseSchedule

    torch.manual_seed(0)
    net = MLPDenoiser(300, [64, 16, 64]).eval()
    process = GaussianDiffusion(NoiseSchedule.linear(10, 1e-3, 0.05), "x0")
    x = (torch.rand(32, 300) < 0.1).float()
    steps = process.mean_chain
    exact = DDPMSampler(process, add_noise=False).sample(net, x)  # fp32 reference
    with torch.autocast("cpu", dtype=torch.bfloat16):
        chained = net.reverse_mean_chain(x, steps)
        stepwise = DDPMSampler(process, add_noise=False).sample(net, x).float()
    assert chained.dtype == torch.float32
    # Both bf16 passes are about equally far from fp32 (bf16 keeps 8 bits: ~0.4% relative).
    scale = exact.abs().max()
    err_chained = (chained - exact).abs().max() / scale
    err_stepwise = (stepwise - exact).abs().max() / scale
    assert err_chained < 0.03 and err_chained < 3 * err_stepwise + 1e-3
