"""The service runtime: MQTT connection, inbox, fast receive path, batch publishing,
settings, logging and counters. Every service runs on it.
"""
