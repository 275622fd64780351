"""Every file circ writes goes through here: inside the folder it belongs to, never
through a symbolic link, atomically, with the user's umask.

A write names a root folder (the output folder of a run, the folder of a rendered
diagram or of a formatted spec) and a path relative to it:

- The relative path stays inside the root: an absolute path or a `..` is refused.
- No link is followed. The root, every folder below it and the file itself are
  refused when they are symbolic links; when the root lies inside the current
  folder (the default `out/SPEC`, in a checkout that a pull request may fill),
  every folder from the current folder down is checked too. Folders are opened
  one at a time with `O_NOFOLLOW` relative to their parent's descriptor, so a
  link swapped in during the write is refused as well.
- The text goes to a fresh temporary file in the same folder (`O_EXCL`,
  `O_NOFOLLOW`), is flushed to disk and renamed over the target: a reader never
  sees half a file, and a failed write leaves no temporary file behind.
- New files get mode 0o666 and new folders 0o777, less the user's umask, like any
  file a program creates (0644 and 0755 under the usual umask 022).
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path, PurePath

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PROBE_BYTES = 4096


class UnsafePath(OSError):
    """A write that would leave its folder or pass through a symbolic link."""

    def __init__(self, path, reason: str):
        super().__init__(errno.EPERM, f"{path} {reason}")
        self.filename = str(path)

    def __str__(self) -> str:
        return self.strerror


def inside(relative: str | PurePath) -> PurePath:
    """`relative` as a path that stays inside its root; UnsafePath otherwise."""
    path = PurePath(relative)
    if path.is_absolute() or str(relative).startswith(("/", "\\")) or ".." in path.parts or not path.parts:
        raise UnsafePath(relative, "leaves the output folder (give a relative path without `..`)")
    return path


def write_inside(root: Path | str, relative: str | PurePath, data: str | bytes, *,
                 mode: int | None = None) -> Path:
    """Write `data` to ROOT/RELATIVE atomically (folders created as needed); return the
    path. `mode` replaces the umask-derived mode (`circ fmt` keeps a spec's own)."""
    relative = inside(relative)
    target = Path(root) / relative
    content = data.encode("utf-8") if isinstance(data, str) else data
    folder = open_folder(root, relative.parts[:-1])
    try:
        _refuse_link(folder, relative.name, target)
        temporary = f".{relative.name}.{secrets.token_hex(6)}.tmp"
        handle = os.open(temporary, _NEW_FILE, 0o666, dir_fd=folder)
        try:
            with os.fdopen(handle, "wb") as stream:
                if mode is not None:
                    os.fchmod(stream.fileno(), mode)
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, relative.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            _remove(folder, temporary)
            raise
    finally:
        os.close(folder)
    return target


def read_inside(root: Path | str, relative: str | PurePath, limit: int) -> bytes:
    """The bytes of ROOT/RELATIVE, reached without following a link; OSError when it
    is missing, a link, not a regular file or larger than `limit` bytes."""
    relative = inside(relative)
    target = Path(root) / relative
    folder = open_folder(root, relative.parts[:-1], create=False)
    try:
        _refuse_link(folder, relative.name, target)
        handle = os.open(relative.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    finally:
        os.close(folder)
    with os.fdopen(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise UnsafePath(target, "is not a regular file")
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"{target} is larger than {limit} bytes")
    return data


def probe_folder(root: Path | str) -> None:
    """Create `root` if needed and show that a file can be written and flushed there;
    OSError (UnsafePath for a link) when it cannot."""
    folder = open_folder(root)
    name = f".circ-probe-{secrets.token_hex(6)}"
    try:
        handle = os.open(name, _NEW_FILE, 0o666, dir_fd=folder)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(b"\0" * _PROBE_BYTES)
                stream.flush()
                os.fsync(stream.fileno())
        finally:
            _remove(folder, name)
    finally:
        os.close(folder)


def open_folder(root: Path | str, below: tuple[str, ...] = (), *, create: bool = True) -> int:
    """A descriptor of ROOT/BELOW..., each folder created if missing (with `create`)
    and opened without following a link (see the module docstring for where the
    walk starts). The caller closes it."""
    root = Path(os.path.abspath(root))
    base = _trusted_base(root)
    names = root.relative_to(base).parts + tuple(below)
    descriptor = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    reached = base
    for name in names:
        reached = reached / name
        descriptor = _step(descriptor, name, reached, create)
    return descriptor


def _trusted_base(root: Path) -> Path:
    """Where the link-free walk to `root` starts: the current folder when `root` lies
    inside it, else the deepest existing folder above `root`."""
    here = Path(os.path.abspath(os.getcwd()))
    if root == here or here in root.parents:
        return here
    base = root.parent
    while not base.is_dir() and base != base.parent:
        base = base.parent
    return base


def _step(parent: int, name: str, path: Path, create: bool) -> int:
    """The descriptor of folder `name` in `parent` (which is closed)."""
    try:
        if create:
            try:
                os.mkdir(name, 0o777, dir_fd=parent)
            except FileExistsError:
                pass
        _refuse_link(parent, name, path)
        return os.open(name, _DIRECTORY, dir_fd=parent)
    finally:
        os.close(parent)


def _refuse_link(folder: int, name: str, path: Path) -> None:
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UnsafePath(path, "is a symbolic link; circ does not write or read through links")


def _remove(folder: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass
