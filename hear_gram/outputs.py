"""User-named outputs: checked before any work starts, written atomically.

The rule every tool follows (README "Bad input"): an existing output is replaced only with an explicit
overwrite flag; an output is never one of the inputs; a missing folder, an existing directory or an
unwritable folder is reported before the work, not after it; a file is written to a temporary name beside
its target and renamed over it only when complete, and the temporary file is removed on any failure (a
full disk leaves the old file, or nothing, behind).  The new file gets the permissions an ordinary
`open(path, "w")` would give it (safetensors and `tempfile` create files readable by the owner only).
"""

import contextlib
import errno
import glob
import os
import tempfile


class OutputError(ValueError):
    """An output path that must not or cannot be written; the message names the option and the path."""


def check_output(path, *, overwrite: bool = False, inputs=(), option: str = "output",
                 flag: str = "--overwrite") -> str:
    """Validate a user-named output file before any work: -> the path.  `inputs` are paths the same run
    reads (an output may never be one of them, whatever `overwrite` says)."""
    path = os.fspath(path)
    where = f"{option} {path}"
    if not path:
        raise OutputError(f"{option}: empty path")
    if os.path.isdir(path):
        raise OutputError(f"{where} is an existing directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"{where}: folder {folder} does not exist")
    for p in inputs:
        if _same(p, path):
            raise OutputError(f"{where} is also an input ({p}); outputs never replace inputs")
    if os.path.lexists(path) and not overwrite:
        raise OutputError(f"{where} exists; pass {flag} to replace it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: folder {folder} is not writable")
    return path


def _same(a, b) -> bool:
    a, b = os.fspath(a), os.fspath(b)
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask would change it for every thread for a moment)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    m = os.umask(0o022)
    os.umask(m)
    return m


def _mode(path: str) -> int:
    """The mode `open(path, "w")` leaves: an existing file keeps its own, a new one gets 0o666 & ~umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Yield a temporary path beside `path` (ending in `suffix`, for writers that pick a format by the
    extension); when the block succeeds it is renamed over `path`, when anything fails it is removed.
    OSErrors (full disk, quota, permissions) become an OutputError naming `path`."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp" + suffix, dir=folder)
        os.close(fd)
        yield tmp
        os.chmod(tmp, _mode(path))
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        if isinstance(e, OSError):
            why = "no space left on device" if e.errno in (errno.ENOSPC, errno.EDQUOT) else str(e)
            raise OutputError(f"cannot write {path}: {why} (nothing was replaced; the temporary file was "
                              f"removed)") from e
        raise


def write_text(path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def stale_temporaries(path) -> list:
    """Temporary files `atomic_path` left beside `path` when its process was killed mid-write."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return sorted(glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp*")))
