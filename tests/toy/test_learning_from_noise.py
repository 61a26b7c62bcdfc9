"""End to end: a small MLP denoiser learns a 2-D mixture from noise (eps and x0 prediction),
and both DDPM and DDIM sampling reproduce held-out data far better than the N(0, I) prior."""

import pytest
import torch

from recdiff.diffusion import Prediction
from recdiff.toy import ToyConfig, energy_distance, gaussian_mixture, train_toy

# ~45 s of training: out of the default run (~10 min on 2 cores); CI runs it with -m slow
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out():
    return gaussian_mixture(2000, torch.Generator().manual_seed(777))


@pytest.fixture(scope="module")
def prior_distance(held_out):
    return energy_distance(
        torch.randn(2000, 2, generator=torch.Generator().manual_seed(1)), held_out
    )


@pytest.fixture(scope="module", params=[Prediction.EPS, Prediction.X0], ids=["eps", "x0"])
def trained(request):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add contention
    try:
        return train_toy(ToyConfig(prediction=request.param, iterations=4000, eval_every=2000))
    finally:
        torch.set_num_threads(threads)


def test_two_sample_baseline_is_meaningful(held_out, prior_distance):
    """The statistic separates the prior from the data and is near zero for two data samples."""
    other = gaussian_mixture(2000, torch.Generator().manual_seed(778))
    assert energy_distance(other, held_out) < 0.005
    assert prior_distance > 0.2


@pytest.mark.parametrize(
    ("kind", "steps"),
    [("ddpm", None), ("ddim", None), ("ddim", 20)],
    ids=["ddpm", "ddim", "ddim20"],
)
def test_samples_match_held_out_data(trained, held_out, prior_distance, kind, steps):
    samples = trained.sample(2000, kind, steps, seed=3)
    distance = energy_distance(samples, held_out)
    # Measured 0.003-0.011 across predictions and samplers against a prior at ~0.24.
    assert distance < prior_distance / 10, (kind, steps, distance)


def test_elbo_bound_falls_during_training(trained):
    nlls = [nll for _, nll in trained.nll_curve]
    assert len(nlls) == 3
    assert nlls[-1] < nlls[0] - 10  # nats per example: from >17 untrained to <20 (x0) / <5 (eps)
    assert nlls[-1] <= nlls[1] + 0.5  # no blow-up late in training
