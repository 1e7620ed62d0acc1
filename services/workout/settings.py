"""Settings of ``har workout``: every default is declared here, and only here.

The pure core (:mod:`services.workout.core`) takes these settings; ``har reps``
builds them with their defaults. Flags, ``HAR_*`` environment variables and
``--config`` files are generated from them (:mod:`imu_har.runtime.settings`).
The numbers were tuned on simulated wearers (bench/bench_workout.py, tuning
seeds only; docs/workout.md).
"""

from __future__ import annotations

from pydantic import Field

from imu_har.runtime.settings import MqttSettings, nice_field


class WorkoutSettings(MqttSettings):
    """Settings of ``har workout``."""

    # -- recognising a set -------------------------------------------------------------
    rest_labels: list[str] = Field(
        default=["rest", "unknown", "idle", "null"], description="Labels that mean no exercise"
    )
    start_probability: float = Field(
        default=0.5, gt=0, le=1, description="An exercise's probability that may start a set"
    )
    start_predictions: int = Field(
        default=2, ge=1, le=20, description="Consecutive predictions of it that start a set"
    )
    start_reps: int = Field(
        default=1, ge=1, le=10, description="Repetitions seen before a set starts (periodic)"
    )
    min_set_reps: int = Field(
        default=5,
        ge=1,
        le=20,
        description="A set counted fewer repetitions at its end is dropped (no set event)",
    )
    end_predictions: int = Field(
        default=3, ge=1, le=20, description="Consecutive predictions of rest or another exercise"
    )
    end_probability: float = Field(
        default=0.6, gt=0, le=1, description="... with at least this probability, end a set"
    )
    rest_seconds: float = Field(
        default=7.5, gt=0, le=600, description="No repetition this long while resting ends a set"
    )
    max_pause: float = Field(
        default=12.0, gt=0, le=600, description="No repetition this long ends a set (s)"
    )
    rival_margin: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="A rep is not counted when another exercise is this much likelier over it",
    )
    form_wait: float = Field(
        default=0.8, ge=0, le=10, description="Wait for a window covering a rep to judge form (s)"
    )
    # -- the signal ----------------------------------------------------------------------
    channels: list[str] = Field(
        default=["acc_x", "acc_y", "acc_z"], description="Accelerometer channels, x y z"
    )
    gyro_channels: list[str] = Field(
        default=["gyro_x", "gyro_y", "gyro_z"],
        description="Gyroscope channels, x y z (used when a frame has them)",
    )
    signal_rate: float = Field(
        default=25.0, ge=10, le=100, description="Rate (Hz) repetitions are counted at"
    )
    history: float = Field(
        default=12.0, ge=4, le=60, description="Seconds of signal kept to start a set"
    )
    max_gap: float = Field(default=1.0, gt=0, le=60, description="A gap (s) restarts the signal")
    recount_before: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="A set is counted again from this long (s) before its first repetition",
    )
    recount_after: float = Field(
        default=0.3, ge=0, le=10, description="... to this long (s) after its last one"
    )
    join_seconds: float = Field(
        default=9.0,
        ge=0,
        le=120,
        description="A set of the same exercise starting this long (s) after one's last "
        "repetition goes on with it (the set is published after this)",
    )
    max_set_seconds: float = Field(
        default=180.0, ge=10, le=3600, description="Longest set counted again at its end (s)"
    )
    # -- bounds --------------------------------------------------------------------------
    min_rate: float = Field(default=5.0, gt=0, description="Refuse frames slower than this (Hz)")
    max_rate: float = Field(
        default=1000.0, gt=0, le=10_000, description="Refuse frames faster than this (Hz)"
    )
    max_frame_seconds: float = Field(
        default=10.0, gt=0, description="Refuse a frame spanning longer than this (s)"
    )
    max_clock_skew: float = Field(
        default=10.0, gt=0, description="Refuse input stamped this far (s) in our future"
    )
    max_age: float = Field(
        default=3600.0, gt=0, description="Refuse input stamped this long (s) ago"
    )
    max_labels: int = Field(default=64, ge=1, le=1024, description="Most classes in one prediction")
    max_devices: int = Field(default=10_000, ge=1, description="Most devices tracked at once")
    idle_timeout: float = Field(
        default=120.0, gt=0, description="End a silent device's set and drop its signal (s)"
    )
    forget_after: float = Field(
        default=86_400.0, gt=0, description="Forget a silent device's totals after (s)"
    )
    max_batch: int = Field(
        default=512, ge=1, le=100_000, description="Most messages handled in one batch"
    )
    # At 1,000 wearables on two cores (2026-12-05) the predictions' p99 was 99-123 ms at
    # nice 0, 90-111 at 5 and 76-98 at 10, and the repetition events were no later at 10
    # than at 5: the service keeps up with what the live path leaves (docs/benchmarks.md).
    cpu_nice: int = nice_field(
        10,
        "Lower this service's CPU priority by this (nice): its budget is 1 s, the "
        "predictions' 100 ms",
    )
    # Woken for every few messages the core runs cold: replaying 400 wearables' input,
    # the handler's cost per message rose from 121 to 136-147 us with short sleeps between
    # small batches, and the service took 45-49 % of a core at 0.05 s against 46-53 % at 0
    # (six pairs, 2026-12-05). Off by default: live, the repetition latency's p95 was
    # already 0.97 s on six tuning wearers, and 1.02 s with 0.05 s (docs/workout.md).
    batch_wait: float = Field(
        default=0.0, ge=0, le=0.5, description="Wait for more messages to fill a batch (s)"
    )
