"""The simulator: simulated wearers and their exercises (physics in ``wearable``,
schedules and streams in ``simulation``).
"""
