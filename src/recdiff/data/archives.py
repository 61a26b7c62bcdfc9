"""Compressed and zipped data files: what a suffix names (``ratings.dat.gz`` is a ``.dat``),
their bytes decompressed, and errors that name the archive when it cannot be read or holds other
than one file."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from recdiff.data.errors import DataFormatError

__all__ = [
    "COMPRESSIONS",
    "UNREADABLE",
    "cannot_read",
    "data_suffix",
    "open_bytes",
    "read_bytes",
    "zip_member",
]

# Compressions pandas reads by suffix (``ratings.csv.gz``), each with its opener: the text
# readers read them too.
COMPRESSIONS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def data_suffix(path: Path) -> str:
    """The suffix that names the data format, lower-cased: ``.dat`` of ``ratings.dat.gz`` too."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) > 1 and (suffixes[-1] in COMPRESSIONS or suffixes[-1] == ".zip"):
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


@contextlib.contextmanager
def open_bytes(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes as a stream, decompressed as it is read when its suffix names a
    compression or a zip (of one file), so that a large file need not be held whole."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive, archive.open(zip_member(path, archive)) as member:
            yield member
    elif suffix in COMPRESSIONS:
        with COMPRESSIONS[suffix](path, "rb") as stream:
            yield stream
    else:
        with open(path, "rb") as stream:
            yield stream


def read_bytes(path: Path) -> bytes:
    """The bytes of a file, decompressed when its suffix names a compression (as pandas does)."""
    try:
        with open_bytes(path) as stream:
            return stream.read()
    except UNREADABLE as err:
        raise cannot_read(path, err) from None


def zip_member(path: Path, archive: zipfile.ZipFile) -> str:
    """The one file a zip of data holds (folder entries aside), or an error naming the zip and
    its files: pandas' own ("Multiple files found in ZIP file") named neither the zip nor a fix,
    and counted folder entries as files."""
    members = [m for m in archive.namelist() if not m.endswith("/")]
    if len(members) == 1:
        return members[0]
    shown = ", ".join(members[:5]) + (f" and {len(members) - 5} more" if len(members) > 5 else "")
    if not members:
        raise DataFormatError(
            f"{path} holds no file, but a zipped data file must hold exactly one: zip the data "
            "file again, or give the file itself as the source"
        )
    raise DataFormatError(
        f"{path} holds {len(members)} files ({shown}), but a zipped data file must hold exactly "
        "one: keep only the one to read in the zip, or extract it (unzip) and give that file "
        "as the source"
    )


# What reading a damaged compressed file raises (EOFError: a truncated one), or a file that
# cannot be read at all; a command line would show a traceback, or click's bare "Aborted."
UNREADABLE = (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile)


def cannot_read(path: Path, err: BaseException) -> DataFormatError:
    suffix = path.suffix.lower()
    if suffix in COMPRESSIONS or suffix == ".zip":
        return DataFormatError(
            f"cannot decompress {path} ({err}): its suffix {suffix} names the compression, so "
            "the file must be a complete archive of that kind; compress it again, or rename it"
        )
    return DataFormatError(f"cannot read {path} ({err})")
