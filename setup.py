"""tb_featmap: every channel of your network's feature maps, scrubbable in TensorBoard."""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "tb_featmap" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="tb_featmap",
    version=VERSION,
    description="Log every channel of your layers' feature maps and scrub through them in TensorBoard",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=["tb_featmap", "tb_featmap.frontend"],
    package_dir={"tb_featmap.frontend": "frontend"},
    package_data={
        "tb_featmap": ["py.typed", "http_api.md"],
        "tb_featmap.frontend": ["*.js", "*.css"],
    },
    # The TensorBoard side (plugin, payload decoding) needs only these; torch is for the
    # writer, and TensorBoard is often run in an environment without it.
    # Tested (tests/test_install.py) with TensorBoard 2.21.0 (numpy 2) and 2.14.1 (numpy 1.26),
    # the oldest. TensorBoard before 2.17 does not start with numpy 2: use numpy<2 there.
    install_requires=[
        "tensorboard>=2.14",
        "werkzeug>=2.0",
        "numpy>=1.21",
        "google-crc32c>=1.5",
        "isal>=1.5",
    ],
    extras_require={
        "torch": ["torch>=2.0"],
        "lightning": ["torch>=2.0", "lightning>=2.0"],
        "export": ["pillow>=9.0", "matplotlib>=3.5", "tqdm>=4.0"],
        "dataframe": ["pandas>=1.3"],
    },
    entry_points={
        "tensorboard_plugins": ["feature_maps = tb_featmap.plugin:FeatureMapsLoader"],
        "console_scripts": ["tb-featmap = tb_featmap.cli:main"],
    },
    classifiers=[
        "Framework :: TensorBoard",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
