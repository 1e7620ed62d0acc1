"""BLE gateway: wearables (BLE, simulated or replayed) to raw IMU frames (``har gateway``)."""
