"""``har trainer``: training jobs by MQTT command, each in a child process (docs/training.md)."""
