"""imu-har shared package: topics, payload codecs, settings, MQTT runtime and windowing.

Light by design: importing it pulls numpy, pydantic and paho-mqtt only, never
TensorFlow, bleak or Streamlit, so every service installs just what it needs.
"""

__version__ = "0.1.0"
PROTOCOL_VERSION = 1
