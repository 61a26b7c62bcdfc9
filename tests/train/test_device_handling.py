"""Training-side device handling: evaluation's sampling generator lives on the model's device.

DreamRec trained with ``train.device=cuda`` is validated every few epochs by
:func:`evaluate_sequential`, whose seeded generator must be a CUDA one there (a CPU generator
makes torch refuse the draw on the GPU, or, where it is accepted, copies every step's noise from
the host). No GPU here, so the test checks where the generator comes from.
"""

from __future__ import annotations

from unittest import mock

from recdiff.config.loading import load_config
from recdiff.data.synthetic_sequences import make_sequences
from recdiff.diffusion.samplers import RowBlocks
from recdiff.models.dreamrec import DreamRec
from recdiff.models.dreamrec_config import DreamRecConfig, GuidedDiffusionConfig
from recdiff.train.config import TrainConfig
from recdiff.train.run_sequential import evaluate_sequential


def test_sequential_evaluation_samples_from_the_models_own_seed_and_device():
    data = make_sequences(n_users=30, n_items=12, seed=0).leave_one_out(max_len=5)
    data = data.with_layout("left")
    config = DreamRecConfig(dim=8, sample_seed=4, diffusion=GuidedDiffusionConfig(steps=3))
    model = DreamRec(config, TrainConfig(progress=False)).build(data.n_items, data.max_len)
    run_config = load_config("demo-dreamrec", ["train.progress=false", "eval.batch_size=8"])
    used = []
    score = model.score

    def spy_score(history, lengths=None, generator=None, **options):
        used.append((generator, len(history)))
        return score(history, lengths, generator=generator, **options)

    with mock.patch.object(model, "score", side_effect=spy_score):
        first = evaluate_sequential(model, data, run_config, ("valid", "test"))
    assert all(isinstance(g, RowBlocks) for g, _ in used)
    assert all(g.seed == 4 and g.device == model.device for g, _ in used)  # model's seed, device
    # each split's batches start where the previous batch ended: rows keep their draws
    for split, rows in (("valid", len(data.valid)), ("test", len(data.test))):
        batches = used[: -(-rows // 8)]
        del used[: len(batches)]
        assert [g.first for g, _ in batches] == list(range(0, rows, 8)), split
        assert sum(n for _, n in batches) == rows
    again = evaluate_sequential(model, data, run_config, ("valid", "test"))
    assert first["test"].means == again["test"].means  # seeded: the same metrics every pass
