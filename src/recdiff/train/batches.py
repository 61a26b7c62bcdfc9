"""What the trainer batches: user rows of a CSR (dense or sparse blocks) for the DiffRec family,
next-item examples for the sequential models. Any object with ``len`` and ``batch(index,
device)`` (:class:`TrainData`) will do."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["ExampleBatches", "RowBatches", "SparseRowBatches", "TrainData", "sparse_rows"]


class TrainData(Protocol):
    """Training examples the trainer shuffles and batches."""

    def __len__(self) -> int:
        """Number of examples."""

    def batch(self, index: np.ndarray, device: str) -> Any:
        """The examples at ``index`` in the form the model's ``loss`` takes."""


class RowBatches:
    """User rows of a users x items CSR (rows may be weighted) as dense float32 batches.

    Only one batch is ever dense (``batch x n_items`` floats). Empty rows are left out unless
    ``skip_empty=False``: a user with no training interaction teaches a diffusion model nothing.
    """

    def __init__(self, matrix: sp.csr_matrix, skip_empty: bool = True) -> None:
        self.matrix = sp.csr_matrix(matrix)
        if skip_empty:
            self.rows = np.flatnonzero(np.diff(self.matrix.indptr) > 0)
        else:
            self.rows = np.arange(self.matrix.shape[0])
        if self.rows.size == 0 or self.matrix.nnz == 0:
            raise ValueError("train has no interactions: every user row is empty")

    def __len__(self) -> int:
        return int(self.rows.size)

    def batch(self, index: np.ndarray, device: str) -> torch.Tensor:
        block = self.matrix[self.rows[index]].toarray().astype(np.float32, copy=False)
        return torch.from_numpy(block).to(device)


def sparse_rows(block: sp.spmatrix, device: str | torch.device) -> torch.Tensor:
    """A CSR block of rows as a coalesced float32 torch COO tensor (entries sorted row-major)."""
    block = sp.csr_matrix(block, dtype=np.float32)
    if not block.has_canonical_format:
        block = block.copy()
        block.sum_duplicates()  # also sorts the indices of every row
    row_of_entry = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    indices = torch.from_numpy(np.vstack([row_of_entry, block.indices]).astype(np.int64))
    return torch.sparse_coo_tensor(
        indices,
        torch.from_numpy(block.data),
        block.shape,
        is_coalesced=True,
        check_invariants=False,
    ).to(device)


class SparseRowBatches(RowBatches):
    """The rows of :class:`RowBatches` as sparse COO tensors, for models that take sparse input
    (wide catalogues, where a dense ``batch x n_items`` block would dominate time and memory)."""

    def batch(self, index: np.ndarray, device: str) -> torch.Tensor:
        return sparse_rows(self.matrix[self.rows[index]], device)


class ExampleBatches:
    """Next-item examples (:mod:`recdiff.data.batches`) as dicts of int64 tensors."""

    def __init__(self, examples: Any) -> None:
        if len(examples) == 0:
            raise ValueError("train has no next-item examples")
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, index: np.ndarray, device: str) -> dict[str, torch.Tensor]:
        return self.examples.take(index).to_torch(device)
