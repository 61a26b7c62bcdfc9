"""The denoiser in other dtypes than float32, and conditions it cannot use."""

import pytest
import torch

from recdiff.diffusion import guided
from recdiff.nn import MLPDenoiser, SinusoidalTimeEmbedding


@pytest.mark.parametrize(
    ("dtype", "tolerance"),
    [(torch.float64, 1e-6), (torch.float16, 1e-2), (torch.bfloat16, 5e-2)],
)
def test_a_denoiser_cast_to_another_dtype_computes_the_float32_function(dtype, tolerance):
    torch.manual_seed(0)
    net = MLPDenoiser(2, [16], time_dim=8, time_hidden=16).eval()
    x, t = torch.randn(4, 2), torch.tensor([0, 1, 250, 999])
    expected = net(x, t)
    cast = MLPDenoiser(2, [16], time_dim=8, time_hidden=16).eval()
    cast.load_state_dict(net.state_dict())
    out = cast.to(dtype)(x.to(dtype), t)  # used to fail: mat1 and mat2 must have the same dtype
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, atol=tolerance, rtol=tolerance)


def test_the_step_embedding_takes_its_projections_dtype_and_autocast_still_works():
    torch.manual_seed(0)
    embedding = SinusoidalTimeEmbedding(6)
    t = torch.tensor([0, 7])
    expected = embedding(t)
    assert embedding.double()(t).dtype == torch.float64
    torch.testing.assert_close(embedding(t).float(), expected)
    net = MLPDenoiser(2, [16]).eval()
    x = torch.randn(3, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, torch.tensor([1, 2, 3]))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), net(x, torch.tensor([1, 2, 3])), atol=5e-2, rtol=5e-2)


def test_a_condition_given_to_an_unconditional_denoiser_is_refused():
    torch.manual_seed(0)
    uncond = MLPDenoiser(2, [16])
    x, t, cond = torch.randn(4, 2), torch.full((4,), 5), torch.randn(4, 3)
    rule = r"takes no condition \(cond_dim=0\), got one of shape \(\d, 3\).*cond_dim=3"
    with pytest.raises(ValueError, match=rule):
        uncond(x, t, cond)
    with pytest.raises(ValueError, match=rule):
        guided(uncond, cond, torch.zeros(3), 3.0)(x, t)  # used to return the unguided output
    with pytest.raises(ValueError, match=rule):
        uncond.eval().reverse_mean_chain(x, [(0, 1.0, 0.5)], cond)


def test_a_condition_of_another_batch_is_refused():
    net = MLPDenoiser(2, [16], cond_dim=3)
    x, t = torch.randn(4, 2), torch.full((4,), 5)
    with pytest.raises(ValueError, match=r"x_t's batch 4 \(or 1, shared\), got shape \(3, 3\)"):
        net(x, t, torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"width 3, got shape \(4, 5\)"):
        net(x, t, torch.randn(4, 5))
    shared = torch.randn(1, 3)
    torch.testing.assert_close(net(x, t, shared), net(x, t, shared.expand(4, 3)))


def test_a_null_condition_that_is_not_one_row_of_cond_is_refused_when_guiding():
    # A [1, 3] null broadcast silently; a [4] null failed inside torch's expand_as.
    net = MLPDenoiser(2, [16], cond_dim=3)
    cond = torch.randn(4, 3)
    for null in (torch.zeros(1, 3), torch.zeros(4)):
        with pytest.raises(
            ValueError, match=r"null must have the shape of one row of cond, \(3,\)"
        ):
            guided(net, cond, null, 2.0)
        with pytest.raises(ValueError, match="null must have the shape of one row of cond"):
            net.guided(cond, null, 2.0)
