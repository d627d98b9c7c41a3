"""Plugin name, format version, and the summary metadata of the Feature Maps plugin.

Small and free of side effects, like ``tensorboard/plugins/mesh/metadata.py``. It imports
neither torch nor TensorFlow, so the TensorBoard side can use it in any environment.

The metadata ``content`` is a small JSON message whose first field is ``version``::

    {"version": 1}

The version is ``payload.FORMAT_VERSION``, the one version number of the format.
Versions this reader knows: 1. A reader that meets a newer version skips the series and
warns once (see ``parse_plugin_metadata``). Per-step facts (shape, scales, statistics) are
not stored here: TensorBoard keeps only the first metadata of a tag, so they travel in the
data itself (see ``tb_featmap/payload.py``).
"""

import json
import warnings

from tensorboard.compat.proto import summary_pb2

from tb_featmap import payload

__all__ = [
    "PLUGIN_NAME",
    "TAG_NAMESPACE",
    "MAX_NAME_LENGTH",
    "PluginMetadata",
    "create_summary_metadata",
    "parse_plugin_metadata",
    "make_tag",
    "layer_name",
]

PLUGIN_NAME = "feature_maps"

# Every tag this plugin writes starts with this, so that a layer called "loss" can never
# collide with a scalar called "loss" in the same run: TensorBoard keeps one metadata per
# tag, and the first writer of a tag would win.
TAG_NAMESPACE = "feature_maps/"

# The longest run or tag name the plugin's routes accept (and so the writer logs).
MAX_NAME_LENGTH = 4096

_MAX_CONTENT_BYTES = 4096  # the writer's content is 14 bytes


class PluginMetadata:
    """Parsed plugin metadata. ``version`` is the format version of the series."""

    __slots__ = ("version",)

    def __init__(self, version: int):
        self.version = version

    def __repr__(self) -> str:
        return f"PluginMetadata(version={self.version})"


def create_summary_metadata(*deprecated, description: str = "") -> summary_pb2.SummaryMetadata:
    """Build a ``SummaryMetadata`` proto for a feature-map series.

    Args:
        description: Optional description shown by TensorBoard.

    Returns:
        A ``SummaryMetadata`` with ``plugin_data`` (``{"version": FORMAT_VERSION}``) and an
        explicit ``data_class`` of blob sequence. Without ``data_class``, TensorBoard 2.x
        shows nothing for a third-party plugin.

    The ``summary_pb2`` module that 0.1.0 took as first argument is no longer needed: it is
    ignored, with a ``DeprecationWarning``.
    """
    if deprecated:
        warnings.warn(
            "create_summary_metadata no longer takes a summary_pb2 module; drop the argument",
            DeprecationWarning,
            stacklevel=2,
        )
    content = json.dumps({"version": payload.FORMAT_VERSION}).encode("utf-8")
    return summary_pb2.SummaryMetadata(
        summary_description=description,
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=content
        ),
        data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE,
    )


def parse_plugin_metadata(content: bytes) -> PluginMetadata:
    """Parse the ``content`` of this plugin's ``PluginData``.

    Args:
        content: The raw bytes from ``SummaryMetadata.plugin_data.content``.

    Returns:
        A ``PluginMetadata``. Empty content (which some tools write) reads as version 1.

    Raises:
        TypeError: If ``content`` is not bytes.
        ValueError: If ``content`` is not a JSON object with an integer ``version``.
    """
    if not isinstance(content, bytes):
        raise TypeError(f"content must be bytes, got {type(content).__name__}")
    if not content:
        return PluginMetadata(version=1)
    if len(content) > _MAX_CONTENT_BYTES:
        raise ValueError(
            f"plugin metadata has {len(content)} bytes, more than {_MAX_CONTENT_BYTES}"
        )
    try:
        message = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ValueError(f"plugin metadata is not JSON: {str(e):.80}") from None
    version = message.get("version") if isinstance(message, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        what = type(version).__name__ if isinstance(version, (list, dict)) else f"{version!r:.40}"
        raise ValueError(f"plugin metadata has no valid 'version': {what}")
    return PluginMetadata(version=version)


def make_tag(name: str, prefix: str = "") -> str:
    """The tag for layer ``name``: ``feature_maps/[prefix/]name``."""
    return TAG_NAMESPACE + (f"{prefix}/" if prefix else "") + name


def layer_name(tag: str) -> str:
    """The inverse of ``make_tag``: the name a user gave, with its prefix."""
    return tag[len(TAG_NAMESPACE):] if tag.startswith(TAG_NAMESPACE) else tag


def __getattr__(name: str):
    # 0.1.0 had the format version under a second name here.
    if name == "PROTOCOL_VERSION":
        warnings.warn(
            "tb_featmap.metadata.PROTOCOL_VERSION is deprecated; use "
            "tb_featmap.payload.FORMAT_VERSION",
            DeprecationWarning,
            stacklevel=2,
        )
        return payload.FORMAT_VERSION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
