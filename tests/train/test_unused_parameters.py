"""``trains_every_parameter``: a model that claims it must give every trainable parameter a
gradient at every optimizer step, since DDP then stops looking for unused ones (a parameter DDP
does not expect to be unused makes the next step fail). Checked by watching each step of real
training, both stages of L-DiffRec included."""

from __future__ import annotations

import pytest
from torch.optim.optimizer import register_optimizer_step_pre_hook

from recdiff.data import demo_splits
from recdiff.data.synthetic_sequences import demo_sequences
from recdiff.models.diffrec import DiffRec, DiffRecConfig, DiffusionConfig
from recdiff.models.dreamrec import DreamRec
from recdiff.models.dreamrec_config import DreamRecConfig, GuidedDiffusionConfig
from recdiff.models.ldiffrec import LatentConfig, LDiffRec, LDiffRecConfig
from recdiff.models.multvae import MultVAE, MultVAEConfig
from recdiff.models.sasrec import SASRec, SASRecConfig
from recdiff.train.config import TrainConfig

TRAIN = TrainConfig(lr=1e-2, batch_size=16, epochs=2, progress=False, seed=0)
LATENT = LatentConfig(n_clusters=2, latent_dim=8, svd_dim=4, epochs=2, dropout=0.2)


def _ldiffrec(**latent) -> LDiffRec:
    config = LDiffRecConfig(
        latent=LATENT.model_copy(update=latent),
        hidden_dims=[16],
        diffusion=DiffusionConfig(steps=5),
    )
    return LDiffRec(config, TRAIN)


def _dreamrec(p_uncond: float) -> DreamRec:
    config = DreamRecConfig(
        dim=8,
        hidden_dims=[16],
        p_uncond=p_uncond,
        guidance_weight=4.0 if p_uncond else 0.0,  # guidance needs a trained null condition
        diffusion=GuidedDiffusionConfig(steps=5),
    )
    return DreamRec(config, TRAIN.model_copy(update={"batch_size": 64}))


ROW_MODELS = {
    "diffrec": lambda: DiffRec(DiffRecConfig(hidden_dims=[16]), TRAIN),
    "multvae": lambda: MultVAE(
        MultVAEConfig(hidden_dims=(16,), latent_dim=8, max_epochs=2, batch_size=32)
    ),
    "ldiffrec": _ldiffrec,
    "ldiffrec cluster decoders": lambda: _ldiffrec(decoder="cluster"),
    "ldiffrec joint": lambda: _ldiffrec(joint=True),
    "ldiffrec decoders in stage two": lambda: _ldiffrec(recon_weight=1.0),
}
SEQUENCE_MODELS = {
    "sasrec": lambda: SASRec(SASRecConfig(dim=8), TRAIN.model_copy(update={"batch_size": 64})),
    "dreamrec": lambda: _dreamrec(0.1),
    "dreamrec without guidance dropout": lambda: _dreamrec(0.0),
}


@pytest.fixture
def steps_without_gradient():
    """Per optimizer step, the shapes of trainable parameters that got no gradient."""
    record: list[list[tuple[int, ...]]] = []

    def check(optimizer, args, kwargs):
        record.append(
            [
                tuple(p.shape)
                for group in optimizer.param_groups
                for p in group["params"]
                if p.requires_grad and p.grad is None
            ]
        )

    handle = register_optimizer_step_pre_hook(check)
    yield record
    handle.remove()


@pytest.mark.parametrize("name", [*ROW_MODELS, *SEQUENCE_MODELS])
def test_the_claim_holds_at_every_step(name, steps_without_gradient):
    if name in ROW_MODELS:
        model = ROW_MODELS[name]()
        model.fit(demo_splits(seed=0, n_users=120, n_items=60, n_groups=4).train.matrix)
    else:
        model = SEQUENCE_MODELS[name]()
        model.fit(demo_sequences(seed=0).with_layout("left"))
    assert len(steps_without_gradient) >= 4
    missed = [step for step in steps_without_gradient if step]
    if model.trains_every_parameter:
        assert missed == []
    else:  # the claim is only withheld where a parameter is really left out
        assert len(missed) == len(steps_without_gradient)
