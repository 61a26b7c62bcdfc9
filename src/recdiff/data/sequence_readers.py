"""Readers for sequential-recommendation data files.

- :func:`read_dreamrec` / :func:`read_dreamrec_frame`: DreamRec's pandas pickles (``*.df``),
  columns ``seq, seq_len, tgt`` or the original release's ``seq, len_seq, next``.
- :func:`read_user_sequences`: ICLRec/SASRec ``user item_1 ... item_n`` lines.
- :func:`read_sequence_file`: either those or SASRec's ``user item`` lines, told apart.
- :func:`read_user_item_lines`: SASRec's ``user item`` per line (e.g. ``Video.txt``).
- :func:`read_table_sequences`: CSV/TSV/Parquet/JSON Lines tables (or a DataFrame) ordered by a
  time column.
- :func:`read_diffurec`: DiffuRec's ``dataset.pkl`` dict (``train``, ``val``, ``test``, ...).

Pickles are read with :func:`~recdiff.data.safe_pickle.safe_load`, never ``pickle.load``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from recdiff.data import frames
from recdiff.data.batches import SequenceExamples
from recdiff.data.errors import SEQUENCE_FILE, DataFormatError, describe_rows
from recdiff.data.safe_pickle import SAFE_GLOBALS, safe_load
from recdiff.data.sequences import SequenceDataset, UserSequences
from recdiff.data.tables import TableFormat, canonical_ints, read_table, read_text
from recdiff.data.vocab import Vocabulary

PathLike = str | os.PathLike[str]

# Column names of the two DreamRec releases: (history length, target).
_DREAMREC_COLUMNS = (("seq_len", "tgt"), ("len_seq", "next"))
_PICKLE_START = b"\x80"  # the PROTO opcode that starts every pickle of protocol 2 or later


def _integral(values: pd.Series, path: Path, col: str) -> np.ndarray:
    """Finite integral numbers (DreamRec stored some targets as floats) as int64."""
    numbers = frames.numeric_column(values.to_frame(), col, source=path)
    frac = np.flatnonzero(numbers != np.round(numbers))
    if frac.size:
        raise DataFormatError(
            f"column {col!r} in {path} must hold whole numbers; "
            f"{describe_rows(frac)} do not (e.g. {numbers[frac[0]]})"
        )
    return numbers.astype(np.int64)


def read_dreamrec_frame(
    path: PathLike,
    n_items: int,
    pad_id: int | None = None,
    allowed: Iterable[tuple[str, str]] = SAFE_GLOBALS,
) -> SequenceExamples:
    """One DreamRec split file: right-padded histories, their lengths and the next item.

    ``lengths`` counts the real items (0 for an empty history); the files' own length column
    says 1 for an empty history, which is checked (and accepted) but not copied. ``allowed``
    is the unpickling allow-list (see :mod:`recdiff.data.safe_pickle`).
    """
    path = Path(path)
    pad = n_items if pad_id is None else pad_id
    frame = safe_load(path, allowed)
    if not isinstance(frame, pd.DataFrame):
        raise DataFormatError(f"{path} holds a {type(frame).__name__}, not a pandas DataFrame")
    names = next((c for c in _DREAMREC_COLUMNS if set(c) <= set(frame.columns)), None)
    if "seq" not in frame.columns or names is None:
        raise DataFormatError(
            f"{path} has columns {list(frame.columns)}; a DreamRec file needs 'seq' and either "
            "'seq_len' and 'tgt' or 'len_seq' and 'next'"
        )
    len_col, target_col = names
    width = frame["seq"].map(len).to_numpy()
    if len(frame) and (width != width[0]).any():
        bad = np.flatnonzero(width != width[0])
        raise DataFormatError(
            f"histories in {path} must all have {width[0]} slots: not so at {describe_rows(bad)}"
        )
    history = np.array(frame["seq"].tolist(), dtype=np.int64).reshape(len(frame), -1)
    real = history != pad
    lengths = real.sum(axis=1)
    slots = np.arange(history.shape[1])[None, :]
    not_right_padded = np.flatnonzero((real != (slots < lengths[:, None])).any(axis=1))
    if not_right_padded.size:
        raise DataFormatError(
            f"histories in {path} must be right-padded with pad id {pad}: not so at "
            f"{describe_rows(not_right_padded)}"
        )
    declared = _integral(frame[len_col], path, len_col)
    wrong = np.flatnonzero((declared != lengths) & (declared != np.maximum(lengths, 1)))
    if wrong.size:
        raise DataFormatError(
            f"{len_col!r} in {path} disagrees with the non-pad items of 'seq' "
            f"at {describe_rows(wrong)}"
        )
    targets = _integral(frame[target_col], path, target_col)
    bad_item = np.flatnonzero(
        ((history >= n_items) & real).any(axis=1)
        | (targets < 0)
        | (targets >= n_items)
        | (real & (history < 0)).any(axis=1)
    )
    if bad_item.size:
        raise DataFormatError(
            f"{path} has item ids outside 0..{n_items - 1} at "
            f"{describe_rows(bad_item)}; is n_items (item_num) right?"
        )
    return SequenceExamples(history, lengths.astype(np.int64), targets)


def read_dreamrec(
    folder: PathLike, allowed: Iterable[tuple[str, str]] = SAFE_GLOBALS
) -> SequenceDataset:
    """A DreamRec data folder: ``data_statis.df`` + ``train_data.df``, ``val_data.df``,
    ``test_data.df``. Items are ``0..item_num-1``, the pad id is ``item_num``, padding right."""
    folder = Path(folder)
    names = ["data_statis.df", *(f"{name}_data.df" for name in ("train", "val", "test"))]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        if folder.is_dir():
            problem = f"lacks {', '.join(missing)}"
        else:
            problem = "is not a folder" if folder.exists() else "not found"
        file = f"; {SEQUENCE_FILE}, with data.split=leave_one_out" if folder.is_file() else ""
        raise FileNotFoundError(
            f"{folder} {problem}: a DreamRec data folder (data.format=dreamrec) holds "
            + ", ".join(names)
            + file
        )
    statis = safe_load(folder / "data_statis.df", allowed)
    if not isinstance(statis, pd.DataFrame) or "item_num" not in statis.columns:
        raise DataFormatError(f"{folder / 'data_statis.df'} must be a DataFrame with 'item_num'")
    n_items = int(statis["item_num"].iloc[0])
    parts = [
        read_dreamrec_frame(folder / f"{name}_data.df", n_items, allowed=allowed)
        for name in ("train", "val", "test")
    ]
    return SequenceDataset(*parts, items=Vocabulary.range(n_items), pad_id=n_items, padding="right")


def _tokens_to_ids(tokens: np.ndarray) -> np.ndarray:
    """Integer ids when every token is written as an int (``"7"``), else the tokens as strings
    (a file holding ``"007"`` and ``"7"`` has two users or items)."""
    ids = canonical_ints(pd.Series(tokens, dtype=object))
    return ids.to_numpy(dtype=np.int64) if pd.api.types.is_integer_dtype(ids) else tokens


def read_sequence_file(path: PathLike) -> UserSequences:
    """A ``data.format=sequences`` file: ICLRec's ``user item item ...`` lines, one per user,
    or SASRec's ``user item`` lines, one per interaction, each user's in time order. A file
    whose lines all hold two ids, some user's on several lines, is SASRec's (in ICLRec's
    format a user on two lines is an error). A pickle (its first byte is 0x80, which no UTF-8
    text starts with) is DiffuRec's ``dataset.pkl`` (:func:`read_diffurec`)."""
    path = Path(path)
    if path.is_file():
        with path.open("rb") as fh:
            if fh.read(1) == _PICKLE_START:
                return read_diffurec(path)
    text = _read_file(path)
    parts, line_no = _checked_lines(text, path)
    _refuse_stray_lines_among_pairs(parts, line_no, path)
    if all(len(p) == 2 for p in parts) and len({p[0] for p in parts}) < len(parts):
        mixed = "\t" in text and re.search(r"\S +\S", text)  # tabs on some lines, spaces on others
        # a space or tab at the start or end of a line, or two in a row: pandas would count fields
        stray = re.search(r"(?m)^[ \t]|[ \t]\r?$|[ \t]{2}", text)
        if mixed or stray:
            tokens = _tokens_to_ids(np.array(parts).reshape(-1))
            return UserSequences.from_pairs(tokens[0::2], tokens[1::2])
        # SASRec's pairs, read again by pandas' C parser: faster than building them from parts
        return read_user_item_lines(path, sep="\t" if "\t" in text else " ")
    return _user_lines(parts, line_no, path)


def _refuse_stray_lines_among_pairs(
    parts: list[list[str]], line_no: np.ndarray, path: Path
) -> None:
    """A file of SASRec's ``user item`` pairs with a few lines of another length (a third
    field, a lone id) is not ICLRec's one line a user: read as that, it failed on its first
    user "on several lines", advice that would corrupt the file. Such lines are named instead,
    when nine lines in ten or more are pairs and some user holds several of them (which
    ICLRec's format never has)."""
    pairs = np.fromiter((len(p) == 2 for p in parts), dtype=bool, count=len(parts))
    if pairs.all() or pairs.sum() < 0.9 * len(parts):
        return
    users = [p[0] for p, pair in zip(parts, pairs, strict=True) if pair]
    if len(set(users)) == len(users):
        return
    odd = np.flatnonzero(~pairs)
    lengths = sorted({len(parts[i]) for i in odd[:5]})
    raise DataFormatError(
        f"{path} reads as SASRec's `user item` pairs ({int(pairs.sum()):,} of {len(parts):,} "
        f"lines hold two ids), but {odd.size:,} line(s) hold {' or '.join(map(str, lengths))}: "
        f"{describe_rows(odd, line_no)}; fix or delete those lines (one interaction a line), "
        "or write the file in ICLRec's format, one line a user"
    )


def read_user_sequences(path: PathLike) -> UserSequences:
    """ICLRec/SASRec files: one line per user, ``user_id item_1 ... item_n`` (oldest first).

    A line with only a user id gives that user an empty sequence; a user on two lines is an
    error. Ids become ints when every token is written as an int (``"007"`` is not), else
    strings. The file must be UTF-8 (a leading byte-order mark is ignored).
    """
    path = Path(path)
    return _user_lines(*_checked_lines(_read_file(path), path), path)


def _read_file(path: Path) -> str:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    if not path.is_file():
        raise DataFormatError(f"{path} is not a file; give the sequence file itself")
    return read_text(path)


def _split_lines(text: str) -> tuple[list[list[str]], np.ndarray]:
    """The non-empty lines of a text split at whitespace, and their 1-based numbers."""
    parts = [line.split() for line in text.splitlines()]  # one pass over the lines
    line_no = np.flatnonzero([bool(p) for p in parts]) + 1
    return [p for p in parts if p], line_no


def _checked_lines(text: str, path: Path) -> tuple[list[list[str]], np.ndarray]:
    """:func:`_split_lines` of a sequence file that is neither comma-separated nor headed."""
    parts, line_no = _split_lines(text)
    _refuse_commas(parts, line_no, path)
    _refuse_header(parts, line_no, path)
    return parts, line_no


def _refuse_header(parts: list[list[str]], line_no: np.ndarray, path: Path) -> None:
    """Refuse a first line of words above lines of integer ids (``user_id item_id``): read as
    data it would be a user with a fake item, and turn every id of the file into a string."""
    if len(parts) < 2 or any(re.fullmatch(r"-?\d+", tok) for tok in parts[0]):
        return
    if all(re.fullmatch(r"-?\d+", tok) for p in parts[1:1001] for tok in p):
        raise DataFormatError(
            f"{path} line {line_no[0]} reads {' '.join(parts[0])[:40]!r} above lines of integer "
            "ids: a sequence file (data.format=sequences) has no header line; remove it, or, for "
            "a table with a header, set data.format=csv (or tsv) with data.user_col, "
            "data.item_col and data.time_col naming its columns"
        )


def _refuse_commas(parts: list[list[str]], line_no: np.ndarray, path: Path) -> None:
    """Refuse comma-separated lines (``user0, s7, s8``): split at whitespace, their ids would
    be ``"user0,"`` and ``"s7,"``, and a model would train on them without a word. Such a file
    is told by every user id ending in a comma, or most ids of its first lines."""
    firsts = [p[0] for p in parts if len(p) > 1]
    inner = [tok for p in parts[:1000] for tok in p[:-1]]
    every_user = bool(firsts) and all(tok.endswith(",") for tok in firsts)
    most_ids = 2 * sum(tok.endswith(",") for tok in inner) > len(inner) > 0
    if not (every_user or most_ids):
        return
    at, token = next((i, tok) for i, p in enumerate(parts) for tok in p[:-1] if tok.endswith(","))
    raise DataFormatError(
        f"{path} line {line_no[at]} reads {' '.join(parts[at])[:40]!r}: ids in a sequence file "
        f"(data.format=sequences) are separated by spaces or tabs, not commas, so {token!r} "
        "would be an id; replace the commas with spaces, or, for a table "
        "of one interaction per line with a header, set data.format=csv with data.user_col, "
        "data.item_col and data.time_col naming its columns"
    )


def _user_lines(parts: list[list[str]], line_no: np.ndarray, path: Path) -> UserSequences:
    """ICLRec's lines, split: each a user id and its items, oldest first."""
    if not parts:
        raise DataFormatError(f"{path} is empty; expected lines 'user_id item_1 ... item_n'")
    counts = np.array([len(p) for p in parts], dtype=np.int64)
    if (counts == 1).all():  # e.g. "1,37,55": one token, so a user without items
        raise DataFormatError(
            f"no line of {path} has an item after its user id (line {line_no[0]} reads "
            f"{parts[0][0][:40]!r}); a sequence file holds 'user_id item_1 ... item_n' lines, "
            "ids separated by spaces"
        )
    comma = next((i for i, p in enumerate(parts) if len(p) == 1 and "," in p[0]), None)
    if comma is not None:  # "2,5,6" among space-separated lines: not a user without items
        raise DataFormatError(
            f"{path} line {line_no[comma]} reads {parts[comma][0][:40]!r}: ids in a sequence "
            "file are separated by spaces or tabs, not commas; rewrite that line"
        )
    tokens = _tokens_to_ids(np.array([tok for p in parts for tok in p]))
    first = np.cumsum(counts) - counts
    is_user = np.zeros(tokens.size, dtype=bool)
    is_user[first] = True
    user_ids, item_ids = tokens[first], tokens[~is_user]
    unique, inverse, n_lines = np.unique(user_ids, return_inverse=True, return_counts=True)
    if (n_lines > 1).any():
        dup = unique[np.flatnonzero(n_lines > 1)[0]]
        rows = np.flatnonzero(inverse == np.flatnonzero(unique == dup)[0])
        # Every line three fields long: a "user item time" table, not a sequence file.
        table = (
            "; lines of three fields (user item time?) are a table, not a sequence file: read "
            "it as one (data.format=tsv, or csv with --set \"data.sep=' '\" for spaces; a "
            "header line naming the columns; data.time_col)"
            if (counts == 3).all()
            else ""
        )
        raise DataFormatError(
            f"user {dup.item()!r} has several lines in {path} "
            f"({describe_rows(rows, line_no)}); merge them into one line{table}"
        )
    sequences = UserSequences.from_pairs(np.repeat(user_ids, counts - 1), item_ids)
    if len(sequences.users) == len(user_ids):
        return sequences
    users = Vocabulary.from_ids(user_ids)  # keep users whose line has no items
    lengths = np.zeros(len(users), dtype=np.int64)
    lengths[users.index(sequences.users.ids)] = sequences.lengths()
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return UserSequences(indptr, sequences.item_idx, users, sequences.items)


def read_user_item_lines(path: PathLike, sep: str = " ") -> UserSequences:
    """SASRec ``user item`` lines (e.g. ``Video.txt``), each user's lines in time order."""
    frame, lines = read_table(
        path, sep=sep, header=False, names=["user", "item"], ids=("user", "item")
    )
    user_ids = frames.id_column(frame, "user", path, lines)
    item_ids = frames.id_column(frame, "item", path, lines)
    return UserSequences.from_pairs(user_ids, item_ids)


def read_table_sequences(
    source: PathLike | pd.DataFrame,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str = "timestamp",
    rating_col: str | None = None,
    min_rating: float | None = None,
    sep: str | None = None,
    file_format: TableFormat | None = None,
    decimal: str = ".",
) -> UserSequences:
    """Each user's rows of a CSV/TSV/Parquet/JSON Lines file (format from ``file_format`` or the
    suffix) or a DataFrame, ordered by ``time_col``: the next-item counterpart of
    :func:`~recdiff.data.readers.read_interactions`, with the same checks and messages (file
    and line). See :meth:`UserSequences.from_frame` for ``rating_col``/``min_rating``.
    """
    if isinstance(source, pd.DataFrame):
        frame, lines, where = source, None, None
    else:
        used = [c for c in (user_col, item_col, time_col, rating_col) if c is not None]
        frame, lines = read_table(
            source,
            sep=sep,
            decimal=decimal,
            ids=(user_col, item_col),
            file_format=file_format,
            columns=used,
        )
        where = source
    return UserSequences.from_frame(
        frame,
        user_col,
        item_col,
        time_col,
        rating_col,
        min_rating,
        source=where,
        line_numbers=lines,
    )


def read_diffurec(path: PathLike) -> UserSequences:
    """DiffuRec's ``dataset.pkl``: each user's sequence is ``train + val + test``.

    With one valid and one test item per user (as in the released files),
    ``UserSequences.leave_one_out`` reproduces DiffuRec's split. Item ids stay the file's
    1-based ids (the vocabulary maps them to ``0..n_items-1``); items listed in ``smap`` but
    never seen keep a column.
    """
    path = Path(path)
    data = safe_load(path)
    if not isinstance(data, dict) or not {"train", "val", "test"} <= set(data):
        keys = list(data) if isinstance(data, dict) else type(data).__name__
        raise DataFormatError(
            f"{path} must be a dict with 'train', 'val' and 'test' "
            f"(user -> item list) entries, got {keys}"
        )
    train, val, test = data["train"], data["val"], data["test"]
    extra = set(val) | set(test)
    if not extra <= set(train):
        raise DataFormatError(
            f"{path}: {len(extra - set(train))} val/test users have no train sequence"
        )
    sequences = {
        u: list(s) + list(val.get(u, ())) + list(test.get(u, ())) for u, s in train.items()
    }
    smap = data.get("smap") or {}
    seen = [x for s in sequences.values() for x in s]
    items = Vocabulary.from_ids(seen + list(smap.values()), what="item id")
    return UserSequences.from_lists(sequences, items=items)
