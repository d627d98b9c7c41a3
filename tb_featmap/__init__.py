"""tb_featmap: every channel of your network's feature maps, scrubbable in TensorBoard.

Public names are imported on first use: the writer side (``log_feature_maps``,
``FeatureMapRecorder``) needs torch, and TensorBoard must be able to load the plugin
(``tb_featmap.plugin``) and ``read`` in an environment without it.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["log_feature_maps", "FeatureMapRecorder", "read", "FeatureMapReader", "__version__"]

_LAZY = {
    "log_feature_maps": "tb_featmap.summary",
    "FeatureMapRecorder": "tb_featmap.recorder",
    "read": "tb_featmap.reader",  # no torch needed
    "FeatureMapReader": "tb_featmap.reader",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tb_featmap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
