"""Windower service: raw frames in, sliding windows out (``har windower``)."""
