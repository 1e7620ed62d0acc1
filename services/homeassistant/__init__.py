"""Home Assistant bridge (``har homeassistant``): each wearable as a discovered device."""
