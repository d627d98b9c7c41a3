"""tb_featmap: every channel of your network's feature maps, scrubbable in TensorBoard.

The writer side (``log_feature_maps``, ``FeatureMapRecorder``) needs torch and is imported
on first use, so that TensorBoard can load the plugin (``tb_featmap.plugin``) in an
environment without torch.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["log_feature_maps", "FeatureMapRecorder", "__version__"]

_LAZY = {
    "log_feature_maps": "tb_featmap.summary",
    "FeatureMapRecorder": "tb_featmap.recorder",
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
