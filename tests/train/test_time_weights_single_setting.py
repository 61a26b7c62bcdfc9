"""``data.time_weights.single``: the weight of a user's only time, where T-DiffRec's formula
w_min + (m-1)/(M-1) (w_max - w_min) divides by zero. recdiff gives w_max (the interaction is
the user's newest); the released code's linspace gives w_min. The setting lets a config
reproduce the release; before, only the library function took it."""

import numpy as np
import pytest
import scipy.sparse as sp

from recdiff.config import ConfigError, load_config
from recdiff.data import Interactions, Vocabulary
from recdiff.data.splits import DatasetSplits
from recdiff.models.popularity import Popularity
from recdiff.serving.predictor import Predictor
from recdiff.train.run_rows import model_inputs


def _splits() -> DatasetSplits:
    # user 0: items 0, 1, 2 at times 1, 2, 3; user 1: item 3 alone
    users, items = Vocabulary.from_ids([0, 1]), Vocabulary.from_ids([0, 1, 2, 3])

    def table(u, i, t):
        return Interactions.from_indices(
            users, items, np.array(u, int), np.array(i, int), timestamps=np.array(t, float)
        )

    empty = table([], [], [])
    return DatasetSplits(table([0, 0, 0, 1], [0, 1, 2, 3], [1, 2, 3, 5]), empty, empty)


def _config(*single: str):
    return load_config(
        "tdiffrec-ml1m",
        ["data.time_weights.w_min=0.2", "data.time_weights.w_max=1.0", *single],
    )


@pytest.mark.parametrize(("single", "alone"), [((), 1.0), (("data.time_weights.single=min",), 0.2)])
def test_a_users_only_interaction_gets_the_weight_the_setting_names(single, alone) -> None:
    inputs = model_inputs(_splits(), _config(*single)).toarray()
    np.testing.assert_allclose(inputs[0], [0.2, 0.6, 1.0, 0.0])  # (m-1)/(M-1) = 0, 1/2, 1
    np.testing.assert_allclose(inputs[1], [0.0, 0.0, 0.0, alone])


@pytest.mark.parametrize(("single", "alone"), [((), 1.0), (("data.time_weights.single=min",), 0.2)])
def test_a_new_users_one_item_history_is_weighted_alike(single, alone) -> None:
    train = sp.csr_matrix(np.eye(3, dtype=np.float32))
    predictor = Predictor(
        Popularity().fit(train),
        Vocabulary.from_ids(["a", "b", "c"]),
        Vocabulary.from_ids(["x", "y", "z"]),
        train,
        train,
        _config(*single),
        {"model": "popularity"},
    )
    row, _ = predictor.history_row(["y"])
    np.testing.assert_allclose(row.toarray(), [[0.0, alone, 0.0]])
    row, _ = predictor.history_row(["z", "x", "y"])
    np.testing.assert_allclose(row.toarray(), [[0.6, 1.0, 0.2]])  # oldest z, newest y


def test_any_other_value_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data\.time_weights\.single"):
        _config("data.time_weights.single=last")
