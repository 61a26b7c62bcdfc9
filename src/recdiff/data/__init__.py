"""recdiff.data: interactions, id vocabularies, readers, preparation, splits, weights, batches.

Everything stays sparse (scipy CSR) until a batch is built; external ids map to contiguous
indices through a :class:`Vocabulary` that travels with the data (and later with the model).

Collaborative filtering (DiffRec family)::

    splits = read_diffrec_splits("../shared/datasets/diffrec/ml-1m_clean")
    splits.train.matrix            # 5949 x 2810 CSR, float32
    weights = time_weights(splits.train, w_min=0.1, w_max=1.0)   # T-DiffRec input

Sequential (DreamRec, SASRec)::

    dataset = read_dreamrec("../shared/datasets/dreamrec/zhihu")
    batch = dataset.train.take(np.arange(256)).to_torch()
"""

from recdiff.data.batches import (
    Padding,
    SequenceExamples,
    WindowedExamples,
    examples_from_sequences,
    history_windows,
    prefix_target_positions,
)
from recdiff.data.errors import DataFormatError, UnknownIdError, UnsafePickleError
from recdiff.data.interactions import Interactions
from recdiff.data.prepare import NegativeRatingsWarning, filter_ratings, k_core
from recdiff.data.readers import (
    read_diffrec_splits,
    read_interactions,
    read_movielens,
    read_recbole_inter,
)
from recdiff.data.safe_pickle import (
    SAFE_GLOBALS,
    RestrictedUnpickler,
    safe_load,
)
from recdiff.data.sequence_readers import (
    read_diffurec,
    read_dreamrec,
    read_dreamrec_frame,
    read_sequence_file,
    read_table_sequences,
    read_user_item_lines,
    read_user_sequences,
)
from recdiff.data.sequences import SequenceDataset, UserSequences
from recdiff.data.splits import (
    DatasetSplits,
    UsersWithoutTrainWarning,
    split_global_temporal,
    split_leave_one_out,
    split_random,
    split_user_temporal,
)
from recdiff.data.synthetic import demo_splits, make_synthetic
from recdiff.data.tables import read_table
from recdiff.data.vocab import Vocabulary
from recdiff.data.weighting import linear_time_weights, time_weights, time_weights_from_order

__all__ = [
    "SAFE_GLOBALS",
    "DataFormatError",
    "DatasetSplits",
    "Interactions",
    "NegativeRatingsWarning",
    "Padding",
    "RestrictedUnpickler",
    "SequenceDataset",
    "SequenceExamples",
    "UnknownIdError",
    "UnsafePickleError",
    "UserSequences",
    "UsersWithoutTrainWarning",
    "Vocabulary",
    "WindowedExamples",
    "demo_splits",
    "examples_from_sequences",
    "filter_ratings",
    "history_windows",
    "k_core",
    "linear_time_weights",
    "make_synthetic",
    "prefix_target_positions",
    "read_diffrec_splits",
    "read_diffurec",
    "read_dreamrec",
    "read_dreamrec_frame",
    "read_interactions",
    "read_movielens",
    "read_recbole_inter",
    "read_sequence_file",
    "read_table",
    "read_table_sequences",
    "read_user_item_lines",
    "read_user_sequences",
    "safe_load",
    "split_global_temporal",
    "split_leave_one_out",
    "split_random",
    "split_user_temporal",
    "time_weights",
    "time_weights_from_order",
]
