"""Workout service: sets, repetitions and form from frames and predictions (har workout)."""
