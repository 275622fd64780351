"""Reading the files a spec names with a size limit: specs and included files, a
model's config.json, device maps. Only regular files are read (a FIFO or a device
such as /dev/zero, or a link to one, is refused without blocking), and never more
than the limit, so no file can grow memory without end."""
from __future__ import annotations

import errno
import json
import os
import stat

SPEC_LIMIT = 16 << 20  # bytes of one spec or included file
JSON_LIMIT = 16 << 20  # bytes of a config.json or a device-map file
RESULTS_LIMIT = 256 << 20  # bytes of a results.json read by render or export


def read_limited(path, limit: int) -> bytes:
    """The bytes of the regular file `path`; OSError when it cannot be opened, is
    not a regular file or holds more than `limit` bytes."""
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit >> 20} MiB")
    return data


def read_json(path, limit: int = JSON_LIMIT):
    """The JSON value in `path`; ValueError with a one-line reason when the file cannot
    be read, is too large, is not UTF-8 or not JSON, nests too deeply or holds an
    integer too long to convert."""
    try:
        text = read_limited(path, limit).decode("utf-8-sig")
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(error.strerror or str(error)) from None
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text (byte {error.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, or an integer over Python's digit limit
        raise ValueError(f"not valid JSON: {str(error).splitlines()[0][:200]}") from None
