"""Kept only so that ``from timbrix_sandbox.http import speedups`` (in ``app.py``) still applies
the library patches: it calls :func:`timbrix_sandbox.http.compat.install`, where every patch now
lives. Delete this module once ``app.py`` calls ``compat.install()`` itself."""

from timbrix_sandbox.http import compat

compat.install()
