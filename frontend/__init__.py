"""The Feature Maps tab: plain ES modules, served by ``tb_featmap.plugin``.

This folder is installed as the package ``tb_featmap.frontend`` (see ``setup.py``), so the
files ship inside the wheel as package data. There is no Python code here.
"""
