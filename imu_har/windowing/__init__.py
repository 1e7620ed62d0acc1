"""Windowing: per-device sample timelines and sliding windows, shared by the live
windower and training (bit-for-bit the same windows).
"""
