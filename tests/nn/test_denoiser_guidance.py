"""MLPDenoiser.guided gives what diffusion.guided gives over the same denoiser, with less work."""

import math
import re

import pytest
import torch

from recdiff.data.synthetic_sequences import demo_sequences
from recdiff.diffusion import DDIMSampler, DDPMSampler, GaussianDiffusion, NoiseSchedule, guided
from recdiff.models.dreamrec import DreamRec
from recdiff.models.dreamrec_config import DreamRecConfig, GuidedDiffusionConfig
from recdiff.nn import MLPDenoiser
from recdiff.train.config import TrainConfig

DIM, COND_DIM, BATCH, STEPS = 8, 5, 6, 20
HIDDEN = {"linear": [], "one hidden": [16], "two hidden": [16, 12]}


def _denoiser(hidden, normalize_input=False, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    net = MLPDenoiser(
        DIM,
        hidden,
        time_dim=6,
        cond_dim=COND_DIM,
        dropout=dropout,
        activation="gelu",
        normalize_input=normalize_input,
        time_hidden=12,  # DreamRec's step MLP
    )
    # Small random biases (as initialised) would hide a bias counted twice or not at all.
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.endswith("bias"):
                parameter.normal_()
    return net.eval()


def _conditions(rows, seed=1):
    generator = torch.Generator().manual_seed(seed)
    cond = torch.randn(BATCH if rows == "batch" else 1, COND_DIM, generator=generator)
    return cond, torch.randn(COND_DIM, generator=generator)


def _steps(kind):
    if kind == "one step":
        return torch.tensor(7).expand(BATCH)  # what the samplers pass
    if kind == "0-d":
        return torch.tensor(3)
    return torch.tensor([0, 19, 5, 5, 12, 0])  # a step per row


@pytest.mark.parametrize("hidden", HIDDEN.values(), ids=HIDDEN.keys())
@pytest.mark.parametrize("normalize_input", [False, True], ids=["raw", "normalised"])
@pytest.mark.parametrize("rows", ["batch", "shared"])
@pytest.mark.parametrize("scale", [0.0, 1.0, 4.0])
def test_guided_model_fn_equals_the_generic_one(hidden, normalize_input, rows, scale):
    net = _denoiser(hidden, normalize_input)
    cond, null = _conditions(rows)
    fast, generic = net.guided(cond, null, scale), guided(net, cond, null, scale)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for kind in ["one step", "0-d", "per row", "one step"]:  # later calls use the cache
            x_t = 3 * torch.randn(BATCH, DIM, generator=generator)
            t = _steps(kind)
            torch.testing.assert_close(fast(x_t, t), generic(x_t, t), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hidden", HIDDEN.values(), ids=HIDDEN.keys())
@pytest.mark.parametrize("rows", ["batch", "shared"])
@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_a_whole_sample_equals_the_generic_one(hidden, rows, kind):
    net = _denoiser(hidden)
    cond, null = _conditions(rows)
    process = GaussianDiffusion(NoiseSchedule.linear(STEPS), prediction="x0")
    sampler = DDPMSampler(process) if kind == "ddpm" else DDIMSampler(process, eta=0.5)

    def sample(model_fn):
        generator = torch.Generator().manual_seed(3)
        noise = torch.randn(BATCH, DIM, generator=generator)
        return sampler.sample(model_fn, noise, generator=generator)

    expected = sample(guided(net, cond, null, 4.0))
    torch.testing.assert_close(sample(net.guided(cond, null, 4.0)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scale", [-1.0, math.nan, math.inf])
def test_a_bad_scale_is_refused_as_the_generic_path_refuses_it(scale):
    net = _denoiser([16])
    cond, null = _conditions("batch")
    with pytest.raises(ValueError, match="finite number >= 0") as generic:
        guided(net, cond, null, scale)
    with pytest.raises(ValueError) as fast:
        net.guided(cond, null, scale)
    assert str(fast.value) == str(generic.value)


def _same_error(fast, generic, cond):
    """The same error in the same words, save the shape it names: the generic path names the
    batch of both halves it built (2b rows), the fast one the ``cond`` it was given."""
    shape = re.compile(r"shape \([\d, ]*\)")
    assert type(fast) is type(generic)
    assert shape.sub("shape ?", str(fast)) == shape.sub("shape ?", str(generic))
    assert f"shape {tuple(cond.shape)}" in str(fast)


BAD_CONDITIONS = {
    "other batch": (torch.zeros(4, COND_DIM), "cond must be"),
    "0-d": (torch.tensor(1.0), "cond must be"),
    "other width": (torch.zeros(BATCH, COND_DIM + 1), "condition of width"),
    "no batch dim": (torch.zeros(COND_DIM), "cond must be"),
}


@pytest.mark.parametrize("hidden", HIDDEN.values(), ids=HIDDEN.keys())
@pytest.mark.parametrize("cond, words", BAD_CONDITIONS.values(), ids=BAD_CONDITIONS.keys())
@pytest.mark.parametrize("scale", [0.0, 4.0])
def test_a_bad_condition_is_refused_as_the_generic_path_refuses_it(hidden, cond, words, scale):
    net = _denoiser(hidden)
    null = torch.zeros(cond.shape[-1:])  # a null of the same width: only cond is wrong
    x_t, t = torch.zeros(BATCH, DIM), torch.zeros(BATCH, dtype=torch.long)
    with pytest.raises(ValueError, match=words) as generic:
        guided(net, cond, null, scale)(x_t, t)
    with pytest.raises(ValueError) as fast:
        net.guided(cond, null, scale)(x_t, t)
    _same_error(fast.value, generic.value, cond)


def test_an_unconditional_denoiser_refuses_a_condition_alike():
    torch.manual_seed(0)
    net = MLPDenoiser(DIM, [16]).eval()
    cond, null = _conditions("batch")
    x_t, t = torch.zeros(BATCH, DIM), torch.zeros(BATCH, dtype=torch.long)
    with pytest.raises(ValueError, match="takes no condition") as generic:
        guided(net, cond, null, 4.0)(x_t, t)
    with pytest.raises(ValueError) as fast:
        net.guided(cond, null, 4.0)(x_t, t)
    _same_error(fast.value, generic.value, cond)


@pytest.mark.parametrize("hidden", HIDDEN.values(), ids=HIDDEN.keys())
def test_input_dropout_in_training_draws_the_generic_paths_masks(hidden):
    """In training mode each half draws its own dropout mask, as only the generic path does."""
    net = _denoiser(hidden, dropout=0.5).train()
    cond, null = _conditions("batch")
    x_t, t = torch.randn(BATCH, DIM), _steps("per row")
    torch.manual_seed(4)
    expected = guided(net, cond, null, 4.0)(x_t, t)
    torch.manual_seed(4)
    torch.testing.assert_close(net.guided(cond, null, 4.0)(x_t, t), expected, rtol=0, atol=0)


def _called_once_without_gradients(hidden):
    """A denoiser, its inputs and a guided model_fn that has cached its condition terms."""
    net = _denoiser(hidden)
    cond, null = _conditions("batch")
    x_t, t = torch.randn(BATCH, DIM), _steps("one step")
    fast = net.guided(cond, null, 4.0)
    with torch.no_grad():
        fast(x_t, t)
    return net, cond, null, x_t, t, fast


@pytest.mark.parametrize("hidden", HIDDEN.values(), ids=HIDDEN.keys())
def test_gradients_reach_the_condition_weights_after_a_call_without_them(hidden):
    """The cached condition terms follow the grad mode: terms computed under no_grad must not
    be reused when gradients are wanted."""
    net, cond, null, x_t, t, fast = _called_once_without_gradients(hidden)
    weight_c = net.layers[0].weight_c
    (expected,) = torch.autograd.grad(guided(net, cond, null, 4.0)(x_t, t).square().sum(), weight_c)
    (got,) = torch.autograd.grad(fast(x_t, t).square().sum(), weight_c)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("hidden", [[], [8]], ids=["linear", "hidden"])
def test_weights_changed_in_place_are_seen_and_each_call_has_its_own_graph(hidden):
    """An optimizer step (an in-place change) between two no_grad calls of one model_fn must not
    leave stale condition terms; with gradients on, two calls backpropagate independently."""
    net, cond, null, x_t, t, fast = _called_once_without_gradients(hidden)
    with torch.no_grad():
        net.layers[0].weight_c.add_(0.5)
        torch.testing.assert_close(fast(x_t, t), guided(net, cond, null, 4.0)(x_t, t))
    first, second = fast(x_t, t).sum(), fast(x_t, t).sum()
    first.backward()
    second.backward()  # no "backward through the graph a second time"


@pytest.fixture(scope="module")
def data():
    return demo_sequences(seed=0).with_layout("left")


@pytest.mark.parametrize("hidden", [[], [32]], ids=["preset (linear)", "hidden"])
def test_dreamrec_scores_equal_the_generic_paths(data, hidden, monkeypatch):
    """A fitted DreamRec ranks by the same oracle through generate as with diffusion.guided."""
    config = DreamRecConfig(
        dim=16,
        hidden_dims=hidden,
        guidance_weight=4.0,
        diffusion=GuidedDiffusionConfig(steps=30),
    )
    train = TrainConfig(lr=3e-3, batch_size=256, epochs=2, progress=False, seed=1)
    model = DreamRec(config, train).fit(data)
    denoiser = model.net.denoiser
    history = torch.as_tensor(data.test.history[:64])
    calls = []
    own_guided = denoiser.guided

    def spy(cond, null, scale):
        calls.append(scale)
        return own_guided(cond, null, scale)

    monkeypatch.setattr(denoiser, "guided", spy)
    fast = model.score(history)
    assert calls == [4.0]  # generate samples through the denoiser's own guidance
    monkeypatch.setattr(denoiser, "guided", lambda c, n, w: guided(denoiser, c, n, w))
    generic = model.score(history)
    # Rounding differences grow over the steps (and by 1 + 2w in each combination): measured
    # up to 3e-6 of the largest score, through 30 steps of w = 4.
    atol = 2e-5 * generic.abs().max().item()
    torch.testing.assert_close(fast, generic, rtol=0, atol=atol)
    fast_top, generic_top = fast.topk(10), generic.topk(10)
    torch.testing.assert_close(fast_top.values, generic_top.values, rtol=0, atol=atol)
    assert torch.equal(fast_top.indices, generic_top.indices)
