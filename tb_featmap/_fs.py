"""The one place that touches TensorBoard's file layer, ``tensorboard.compat.tf.io.gfile``.

That is TensorFlow's ``tf.io.gfile`` when TensorFlow is installed, else TensorBoard's own stub,
which handles local paths, ``s3://`` (through boto3) and the fsspec protocols. torch's
``SummaryWriter`` writes through it and TensorBoard's loaders read through it, so a logdir that
works for them works for tb_featmap. ``tests/test_s3.py::test_file_layer_contract`` fails loudly
if what this module relies on changes.

Local paths (no ``scheme://``) keep using ``os``, as before.
"""

import contextlib
import functools
import os
from typing import Iterator, Tuple, Type

__all__ = ["is_remote", "join", "check_logdir", "as_os_error", "layer_errors"]


def is_remote(path: str) -> bool:
    """Whether ``path`` goes through a file system protocol (``s3://b/runs``) rather than ``os``.

    The same rule as the file layer's: a ``scheme://`` prefix picks the file system.
    """
    return "://" in path


def join(path: str, *names: str) -> str:
    """``path/name/...``: with ``os.path.join`` locally, with ``/`` on a remote path."""
    if not is_remote(path):
        return os.path.join(path, *names)
    return "/".join([path.rstrip("/"), *names])


def check_logdir(path: str) -> None:
    """Raise unless ``path`` is a directory that TensorBoard's file layer can list.

    Raises:
        FileNotFoundError: If the path, or on object storage its bucket, does not exist. The
            message names which.
        NotADirectoryError: If the path is a file.
        PermissionError: If the object store refuses access (credentials).
        OSError: If the object store cannot be reached or fails otherwise.
        ValueError: If no installed file system handles the path's protocol.
    """
    if not is_remote(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"logdir {path!r} does not exist")
        if not os.path.isdir(path):
            raise NotADirectoryError(f"logdir {path!r} is not a directory")
        return
    scheme, _, rest = path.partition("://")
    bucket, _, key = rest.partition("/")
    if scheme == "s3" and not key.strip("/"):
        # TensorBoard's S3 layer cannot list a bucket's root (its isdir looks under "/").
        raise ValueError(
            f"logdir {path!r} is a whole bucket; TensorBoard's S3 support reads a folder in a "
            f"bucket: s3://{bucket}/<folder>"
        )
    gfile = _gfile()
    try:
        if gfile.isdir(path):
            return
        exists = gfile.exists(path)
    except ImportError as e:  # fsspec: "Install s3fs to access S3", and the like
        raise ValueError(f"logdir {path!r}: {e}{_HINT}") from None
    except ValueError as e:  # "No recognized filesystem for prefix ..."
        raise ValueError(f"logdir {path!r}: {e}{_HINT}") from None
    except layer_errors() as e:
        raise _as_os_error(e, path, bucket) from None
    if exists:
        raise NotADirectoryError(f"logdir {path!r} is not a directory")
    raise FileNotFoundError(f"logdir {path!r} does not exist: nothing is stored under it")


@contextlib.contextmanager
def as_os_error() -> Iterator[None]:
    """Re-raise the file layer's own exceptions (botocore's, ``OpError``) as ``OSError``.

    A writer on object storage fails with these, not ``OSError``: at a flush, or (torch's)
    at the next write after its background thread failed to upload.
    """
    try:
        yield
    except layer_errors() as e:
        raise OSError(f"{type(e).__name__}: {e}") from e


@functools.lru_cache(maxsize=None)
def layer_errors() -> Tuple[Type[BaseException], ...]:
    """The exceptions the file layer raises besides ``OSError``: TensorFlow's (or the stub's)
    ``OpError`` and, when boto3 is installed, botocore's client and connection errors."""
    from tensorboard.compat import tf

    found = [tf.errors.OpError]
    try:
        import botocore.exceptions
    except ImportError:
        pass
    else:
        found += [botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError]
    return tuple(found)


_HINT = (
    "; s3:// needs boto3 (pip install boto3), gs:// needs tensorflow or gcsfs, "
    "other protocols their fsspec package"
)
_DENIED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403")


def _as_os_error(error: BaseException, path: str, bucket: str) -> OSError:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    if code == "NoSuchBucket":
        return FileNotFoundError(f"bucket {bucket!r} of logdir {path!r} does not exist")
    if code in _DENIED:
        return PermissionError(f"cannot read logdir {path!r}: {error}")
    return OSError(f"cannot read logdir {path!r}: {type(error).__name__}: {error}")


def _gfile():
    from tensorboard.compat import tf

    return tf.io.gfile
