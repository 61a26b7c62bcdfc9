"""Models score where their weights are, not where ``train.device`` said they trained.

A run trained with ``train.device=cuda`` saves that setting with the weights; loading puts the
weights on the CPU (serving does exactly this). Scoring must then stay on the CPU instead of
sending the rows to a GPU the weights are not on (or that the machine lacks). The "meta" device
stands in for a second device where one is needed.
"""

from __future__ import annotations

import json

import torch
from recommender_contract import checkerboard

from recdiff.diffusion.samplers import EachRowAlone
from recdiff.models.base import SavedModel
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.models.dreamrec import DreamRec
from recdiff.models.dreamrec_config import DreamRecConfig, GuidedDiffusionConfig
from recdiff.models.ldiffrec import LatentConfig, LDiffRec, LDiffRecConfig
from recdiff.models.sequential import SequentialRecommender
from recdiff.train.config import TrainConfig

FAST = TrainConfig(lr=1e-2, batch_size=8, epochs=2, progress=False, seed=3)
DIFFREC = DiffRecConfig(hidden_dims=[16], diffusion=DiffusionConfig(steps=5))
SPARSE_LDIFFREC = LDiffRecConfig(
    latent=LatentConfig(n_clusters=2, latent_dim=8, svd_dim=4, epochs=2, sparse_input=True),
    hidden_dims=[16],
    diffusion=DiffusionConfig(steps=5),
)


def _as_if_trained_on_cuda(folder) -> None:
    path = folder / "config.json"
    meta = json.loads(path.read_text())
    meta["config"]["training"]["device"] = "cuda"
    path.write_text(json.dumps(meta))


def test_a_gpu_trained_checkpoint_scores_on_the_cpu_it_was_loaded_on(tmp_path):
    for model in (DiffRec(DIFFREC, FAST), LDiffRec(SPARSE_LDIFFREC, FAST)):
        model.fit(checkerboard())
        folder = model.save(tmp_path / model.model_name)
        _as_if_trained_on_cuda(folder)
        loaded = SavedModel.load(folder)
        assert loaded.training.device == "cuda"
        history = checkerboard()[:4]
        torch.testing.assert_close(loaded.score(history), model.score(history))
        items, _ = loaded.recommend(history, 3)
        assert items.shape == (4, 3)
        assert loaded.device == torch.device("cpu")


def test_the_diffusion_tables_follow_the_rows_to_their_device():
    """The trainer moves only the denoiser; the process's step tables go where the rows are
    (left behind, every lookup would copy the steps back to the host)."""
    uniform = DiffusionConfig(steps=5, importance_sampling=False)  # no CPU loss history
    model = DiffRec(DIFFREC.model_copy(update={"diffusion": uniform}), FAST)
    model.build(6)
    model.denoiser = lambda x_t, t: x_t  # the meta device cannot run the MLP's torch.unique
    loss = model.loss(torch.zeros(3, 6, device="meta"))
    assert loss.device.type == "meta"
    on_meta = model._process_on(torch.device("meta"))
    assert on_meta.betas.device.type == "meta" and on_meta is not model.process
    assert model._process_on(torch.device("meta")) is on_meta  # made once per device
    # The CPU process is never moved in place: another thread may be scoring with it.
    assert model.process.betas.device.type == "cpu"
    assert model._process_on(torch.device("cpu")) is model.process


def _dreamrec() -> DreamRec:
    """Built, not trained: where tensors live does not depend on the weights' values."""
    config = DreamRecConfig(dim=8, diffusion=GuidedDiffusionConfig(steps=4))
    return DreamRec(config, FAST).build(n_items=12, max_len=5)


def test_dreamrec_samplers_follow_the_net_to_its_device():
    model = _dreamrec()
    assert model.sampler().process.betas.device.type == "cpu"
    model.net.to("meta")
    assert model.sampler().process.betas.device.type == "meta"
    assert model.sampler("ddim", 2).process.betas.device.type == "meta"


def test_sampling_generators_are_seeded_on_the_models_device():
    model = _dreamrec()
    assert isinstance(model, SequentialRecommender)
    generator = model.sampling_generator(5)
    assert generator.device == model.device == torch.device("cpu")
    again = model.sampling_generator(5)
    assert torch.equal(torch.randn(4, generator=generator), torch.randn(4, generator=again))
    history = torch.tensor([[12, 12, 3, 4, 5], [1, 2, 3, 4, 5]])
    alone = EachRowAlone(model.sampling_generator(0))  # the default: each row as if alone
    torch.testing.assert_close(model.score(history, generator=alone), model.score(history))
