"""Recorder service: labelled Parquet recordings and every prediction (``har recorder``)."""
