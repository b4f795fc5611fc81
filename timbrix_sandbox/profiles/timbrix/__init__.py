"""The Timbrix profile: its contract, fixtures and domain plug-in (``plugin.py``)."""
