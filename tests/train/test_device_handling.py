"""Training-side device handling: evaluation's sampling generator lives on the model's device.

DreamRec trained with ``train.device=cuda`` is validated every few epochs by
:func:`evaluate_sequential`, whose seeded generator must be a CUDA one there (a CPU generator
makes torch refuse the draw on the GPU, or, where it is accepted, copies every step's noise from
the host). No GPU here, so the test checks where the generator comes from.
"""

from __future__ import annotations

from unittest import mock

import torch

from recdiff.config.loading import load_config
from recdiff.data.synthetic_sequences import make_sequences
from recdiff.models.dreamrec import DreamRec, DreamRecConfig, GuidedDiffusionConfig
from recdiff.train.run_sequential import evaluate_sequential
from recdiff.train.trainer import TrainConfig


def test_sequential_evaluation_samples_from_the_models_own_generator():
    data = make_sequences(n_users=30, n_items=12, seed=0).leave_one_out(max_len=5)
    data = data.with_layout("left")
    config = DreamRecConfig(dim=8, sample_seed=4, diffusion=GuidedDiffusionConfig(steps=3))
    model = DreamRec(config, TrainConfig(progress=False)).build(data.n_items, data.max_len)
    run_config = load_config("demo-dreamrec", ["train.progress=false"])
    made, used = [], []
    make = model.sampling_generator
    score = model.score

    def sampling_generator(seed):
        made.append(make(seed))
        return made[-1]

    def spy_score(history, lengths=None, generator=None, **options):
        used.append(generator)
        return score(history, lengths, generator=generator, **options)

    with (
        mock.patch.object(model, "sampling_generator", side_effect=sampling_generator) as spied,
        mock.patch.object(model, "score", side_effect=spy_score),
    ):
        first = evaluate_sequential(model, data, run_config, ("valid", "test"))
    assert [c.args for c in spied.call_args_list] == [(4,), (4,)]  # one per split, model's seed
    assert used and all(any(g is m for m in made) for g in used)
    assert all(g.device == model.device for g in used)
    again = evaluate_sequential(model, data, run_config, ("valid", "test"))
    assert first["test"].means == again["test"].means  # seeded: the same metrics every pass
    assert isinstance(made[0], torch.Generator)
