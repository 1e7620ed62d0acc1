"""Operations: the ``har`` command, ``har up`` (launcher and supervisor) and the
private Mosquitto broker.
"""
