"""The wire protocol: topics, JSON messages, commands, binary codecs, model spec, errors.

Pure data and validation: no MQTT connection, no threads, no I/O.
"""
