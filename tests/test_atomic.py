"""Atomic writes leave either the old file or the whole new one, with the usual permissions."""

import os
import signal
import subprocess
import sys

import pytest

from recdiff.atomic import atomic_path, atomic_write_text


def test_atomic_write_replaces_and_sets_a_normal_mode(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def _interrupt_at(event: int):
    """A trace function that raises KeyboardInterrupt (as a Ctrl-C would) before the
    ``event``-th bytecode instruction that ``atomic_path`` executes, and never again after."""
    code = atomic_path.__wrapped__.__code__
    seen = 0

    def local(frame, kind, arg):
        nonlocal seen
        if kind == "opcode":
            seen += 1
            if seen == event:
                raise KeyboardInterrupt
        return local

    def tracer(frame, kind, arg):
        if frame.f_code is not code or seen >= event:
            return None
        frame.f_trace_opcodes = True
        return local

    return tracer, lambda: seen


def test_an_interrupt_at_any_instruction_leaves_no_temporary(tmp_path):
    """A Ctrl-C lands between any two bytecode instructions: at each one in turn, the write must
    leave the old file or the new one, and no temporary file either way."""
    target = tmp_path / "file.txt"
    outcomes = set()
    event = 0
    while True:
        event += 1
        target.write_text("old")
        tracer, executed = _interrupt_at(event)
        outer = sys.gettrace()  # coverage's tracer, when measured: restored below
        sys.settrace(tracer)
        try:
            with atomic_path(target) as tmp:
                tmp.write_text("new")
        except KeyboardInterrupt:
            outcomes.add("interrupted")
        else:
            outcomes.add("written")
        finally:
            sys.settrace(outer)
        assert [p.name for p in tmp_path.iterdir()] == ["file.txt"], f"instruction {event}"
        assert target.read_text() in ("old", "new")
        if executed() < event:  # the write ran to its end before this instruction: all covered
            break
    assert outcomes == {"interrupted", "written"} and event > 10


def test_sigterm_during_a_write_removes_the_temporary(tmp_path):
    """SIGTERM (``kill``, ``timeout``) unwinds an open write: exit status 143, no temporary."""
    target = tmp_path / "file.txt"
    atomic_write_text(target, "old")
    script = (
        "import os, signal, sys, time\n"
        "from recdiff.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)], timeout=60)
    assert done.returncode == 143
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]
    assert target.read_text() == "old"


def test_the_sigterm_handler_lives_exactly_as_long_as_the_write(tmp_path):
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("a")
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # unwinds while open
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "b.txt"):
        raise KeyboardInterrupt
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("name", ["r" * 251 + ".csv", "é" * 125 + ".csv"])
def test_a_name_at_the_length_limit_still_gets_a_temporary_that_fits(tmp_path, name):
    """A 255-byte name is legal, but ``.NAME.<16 hex>.tmp`` beside it would be 278 bytes: the
    temporary name cuts NAME short (at a character boundary, "é" being two bytes in UTF-8)."""
    assert len(os.fsencode(name)) in (254, 255)
    target = tmp_path / name
    atomic_write_text(target, "rows")
    assert target.read_text() == "rows"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_an_error_on_the_temporary_names_the_target(tmp_path):
    """A user knows the file they asked for, not ``.NAME.<hex>.tmp``: an OSError about the
    temporary, or a full disk that names no file (a write through a handle), names the target;
    other errors pass unchanged."""
    import errno

    target = tmp_path / "metrics.json"
    with pytest.raises(PermissionError) as denied, atomic_path(target) as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    assert denied.value.filename == str(target) and denied.value.errno == errno.EACCES
    with pytest.raises(OSError) as full, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failed flush says it
    assert full.value.filename == str(target) and full.value.errno == errno.ENOSPC
    other = tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError) as missing, atomic_path(target):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(other))
    assert missing.value.filename == str(other)
    assert list(tmp_path.iterdir()) == []
