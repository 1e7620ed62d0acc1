"""Simulated and replayed wearables send whole BLE notifications: pacing, frames, truth times."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from imu_har.protocol.codec import MAX_FRAME_SAMPLES, Frame, decode_frame
from imu_har.protocol.messages import GroundTruth
from imu_har.sim.realism import BoutPlan
from services.ble_gateway import packets
from services.ble_gateway.core import GatewayCore
from services.ble_gateway.replay import ReplaySource, Track, frame_end
from services.ble_gateway.settings import GatewaySettings
from services.ble_gateway.sim import (
    TAIL,
    Pacer,
    SimFleet,
    SimSource,
    packet_samples,
    realistic_schedule,
)
from services.ble_gateway.sources import make_source

DEFAULT = GatewaySettings()


def fleet(n: int, **settings: object) -> SimFleet:
    """A fleet of ``n`` simulated wearables with these gateway settings."""
    return SimFleet(GatewaySettings(devices=n, **settings))  # type: ignore[arg-type]


def test_notification_size_follows_the_mtu_unless_a_tick_is_given() -> None:
    assert packet_samples(247, 50.0) == 13
    assert packet_samples(517, 50.0) == 28
    assert packet_samples(247, 50.0, tick=0.2) == 10  # the old fixed tick: 10-sample packets
    assert packet_samples(247, 50.0, tick=1.0) == 13  # never more than a full packet
    assert packet_samples(247, 50.0, tick=0.001) == 1
    with pytest.raises(ValueError, match="too small"):
        packet_samples(23, 50.0)


def test_pacer_sends_a_packet_when_it_is_full() -> None:
    pacer = Pacer(50.0, 13)
    assert pacer.ready(0.0) == (0, 0)
    assert pacer.next_wake(0.0) == pytest.approx(0.26)
    assert pacer.ready(0.25) == (0, 12) and pacer.ends(0, 12) == []  # 12 taken: not full yet
    assert pacer.ready(0.26) == (12, 13) and pacer.ends(12, 13) == [13]
    assert pacer.next_wake(0.26) == pytest.approx(0.52)
    assert pacer.ready(0.60) == (13, 30) and pacer.ends(13, 30) == [26]  # a late wake
    assert pacer.next_wake(0.60) == pytest.approx(0.78)
    assert pacer.ready(1.05) == (30, 52) and pacer.ends(30, 52) == [39, 52]  # two became full
    assert pacer.lagged == 0
    # Far behind (10 s): skip ahead to 2 s of backlog (the stream pauses), send what is full.
    assert pacer.ready(10.0) == (52, 152)
    assert pacer.ends(52, 152) == list(range(65, 152, 13))
    assert pacer.lagged == 500 - 52 - 100
    assert pacer.next_wake(10.0) == pytest.approx((156 + 348) / 50)


def test_pacer_wakes_for_every_phase_and_sends_each_packet_once_never_early() -> None:
    pacer = Pacer(50.0, 13, phases=[0, 4, 8])  # three devices: their packets end 4 or 5 apart
    assert pacer.ends(0, 30) == [13, 17, 21, 26, 30]
    assert [pacer.next_end(e) for e in (0, 13, 16, 17, 21, 25)] == [13, 17, 17, 21, 26, 26]
    everyone = Pacer(50.0, 13, phases=range(13))  # 13+ devices: one phase per sample period
    assert everyone.ends(12, 40) == list(range(13, 41))
    rng = np.random.default_rng(0)
    elapsed, sent = 0.0, []
    for _ in range(2000):
        elapsed = pacer.next_wake(elapsed) + float(rng.exponential(0.02))  # wake late
        lo, hi = pacer.ready(elapsed)
        ends = pacer.ends(lo, hi)
        assert all(end / 50 <= elapsed + 1e-9 for end in ends)  # last sample taken before
        sent += ends
    assert sent == [e for e in range(13, pacer.sent + 1) if e % 13 in (0, 4, 8)]
    assert pacer.lagged == 0
    with pytest.raises(ValueError, match="phases"):
        Pacer(50.0, 13, phases=[13])


def test_pacer_with_an_explicit_tick_wakes_every_tick() -> None:
    pacer = Pacer(50.0, 13, tick=0.5)
    assert pacer.next_wake(0.0) == pytest.approx(0.5)
    assert pacer.ready(0.5) == (0, 25) and pacer.ends(0, 25) == [13]
    assert pacer.next_wake(0.5) == pytest.approx(1.0)
    assert pacer.ready(1.0) == (25, 50) and pacer.ends(25, 50) == [26, 39]
    old_tick = Pacer(50.0, packet_samples(247, 50.0, 0.2), tick=0.2)
    assert old_tick.next_wake(0.0) == pytest.approx(0.2)
    assert old_tick.ready(0.2) == (0, 10) and old_tick.ends(0, 10) == [10]


def test_phases_spread_any_fleet_over_the_packet() -> None:
    assert fleet(1).phases.tolist() == [0]
    assert fleet(3).phases.tolist() == [0, 4, 8]
    assert fleet(13).phases.tolist() == list(range(13))
    assert sorted(set(np.bincount(fleet(1000).phases))) == [76, 77]
    assert fleet(5, tick=0.2).phases.tolist() == [0] * 5  # notify together every tick


T0 = 1_800_000_000.0  # wall clock at the simulation start


class _Run:
    """A SimSource driven by a synthetic clock that wakes exactly when due (no sleeping)."""

    def __init__(self, n: int, start_seq: int = 0, **kw: object) -> None:
        self.sent: list[tuple[str, bytes, int, bool]] = []
        self.raw: dict[str, list[tuple[bytes, float]]] = {}
        settings = GatewaySettings(devices=n, seed=3, **kw)  # type: ignore[arg-type]
        self.core = GatewayCore(lambda *m: self.sent.append(m), settings)
        self.fleet = SimFleet(settings, start_seq=start_seq)
        self.source = SimSource(self.core, self.fleet, self._sink, settings)
        self.generated: list[np.ndarray] = []
        self.ahead = 0  # most samples generated beyond those taken
        generate = self.fleet.fleet.next_samples

        def spy(labels: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
            samples, reps = generate(labels, k)
            self.generated.append(samples)
            return samples, reps

        self.fleet.fleet.next_samples = spy  # type: ignore[method-assign]

    def _sink(self, device: str, data: bytes, now: float) -> None:
        self.raw.setdefault(device, []).append((data, now))
        self.core.on_packet(device, data, now)

    def run(self, seconds: float) -> list[int]:
        """Packets sent at each wake."""
        elapsed, counts = 0.0, []
        while elapsed < seconds:
            elapsed = self.source.pacer.next_wake(elapsed)
            counts.append(self.source.step(elapsed, T0 + elapsed))
            self.ahead = max(self.ahead, self.fleet.fleet._index - self.source.pacer.sent)
        return counts

    def frames(self, device: str) -> list[Frame]:
        return [decode_frame(p) for t, p, _q, _r in self.sent if t == f"har/{device}/imu"]

    def truth(self, device: str) -> list[GroundTruth]:
        topic = f"har/{device}/truth"
        return [GroundTruth.from_payload(p) for t, p, _q, _r in self.sent if t == topic]


def test_sim_notifications_are_spread_over_the_sample_periods() -> None:
    run = _Run(40)
    counts = run.run(4.0)
    # One wake per sample period from the first full packet on, each sending one phase group.
    assert len(counts) == 200 - 12 and set(counts) == {3, 4}
    assert all(sum(counts[i : i + 13]) == 40 for i in range(len(counts) - 13))
    assert run.ahead <= 13  # generation runs at most one block ahead


def test_sim_streams_send_every_sample_once_in_order_on_a_continuous_clock() -> None:
    run = _Run(20, start_seq=65530)
    run.run(3.0)  # 150 samples
    generated = np.concatenate(run.generated, axis=1)
    expected = (packets.quantize(generated, packets.BATCH_SCALE) * packets.BATCH_SCALE).astype(
        np.float32
    )
    for i, device in enumerate(run.fleet.devices):
        phase = int(run.fleet.phases[i])
        decoded = [(packets.decode_batched(data), now) for data, now in run.raw[device]]
        assert len(decoded) == (150 - phase) // 13
        samples = np.concatenate([p.samples for p, _ in decoded])
        np.testing.assert_array_equal(samples, expected[i, phase : phase + len(samples)])
        assert [p.seq for p, _ in decoded] == [(65530 + m) & 0xFFFF for m in range(len(decoded))]
        # each packet leaves when its last sample is taken (synthetic clock), not before
        ends = [(now - T0) * 50 for _, now in decoded]
        np.testing.assert_allclose(ends, phase + 13 * np.arange(1, len(decoded) + 1), atol=1e-4)
        frames = run.frames(device)
        assert [len(f.samples) for f in frames] == [13] * len(decoded)
        np.testing.assert_allclose(np.diff([f.device_time for f in frames]), 0.26, atol=1e-9)
        link = run.core.links[device]
        assert link.seq.lost == 0 and link.seq.duplicates == 0 and link.decode_errors == 0


def test_sim_truth_times_follow_the_global_sample_timeline_whatever_the_phase() -> None:
    run = _Run(3, schedule="Squat:1,rest:0.5")  # phases 0, 4, 8
    run.run(2.0)  # Squat 0-52, rest 52-78, Squat again
    for i, device in enumerate(run.fleet.devices):
        truth = run.truth(device)
        phase = int(run.fleet.phases[i])
        # Sample k is taken at T0 + (k + 1) / 50. A device starts with its phase's sample.
        assert (truth[0].label, truth[0].rep) == ("Squat", 0)
        assert truth[0].time == pytest.approx(T0 + (phase + 1) / 50, abs=1e-6)
        assert truth[0].until == pytest.approx(T0 + 51 / 50, abs=1e-6)  # the 1 s bout
        # The bouts switch at block boundaries of the global timeline: rest from sample 52.
        rest = [x for x in truth if x.label == "rest"]
        assert [x.rep for x in rest] == [0]
        assert rest[0].time == pytest.approx(T0 + 53 / 50, abs=1e-6)
        assert rest[0].until == pytest.approx(T0 + 76 / 50, abs=1e-6)
        again = [x for x in truth if x.time > rest[0].time]
        assert again[0].label == "Squat" and again[0].time == pytest.approx(T0 + 79 / 50, abs=1e-6)
        first_bout = truth[: truth.index(rest[0])]
        assert [x.rep for x in first_bout] == list(range(len(first_bout)))  # one per repetition


def test_gateway_builds_sources_from_the_tick_setting() -> None:
    def source(**kw: object) -> SimSource:
        settings = GatewaySettings(devices=2, **kw)  # type: ignore[arg-type]
        core = GatewayCore(lambda *m: None, settings)
        made = make_source(settings, core, core.on_packet)
        assert isinstance(made, SimSource)
        return made

    default = source()
    assert default.fleet.per_packet == 13 and default.pacer.tick is None
    assert default.pacer.phases == {0, 6}
    assert source(mtu=517).fleet.per_packet == 28
    explicit = source(tick=0.2)
    assert explicit.fleet.per_packet == 10 and explicit.pacer.tick == 0.2
    assert explicit.pacer.phases == {0}


def test_replay_frames_hold_whole_notifications() -> None:
    times = np.arange(150) / 50.0
    assert frame_end(times, 0, 0.10, 13) == 0  # nothing full yet
    assert frame_end(times, 0, 0.24, 13) == 13  # the 13th sample (t = 0.24 s) is due
    assert frame_end(times, 13, 0.49, 13) == 13
    assert frame_end(times, 13, 0.50, 13) == 26
    assert frame_end(times, 13, 1.00, 13) == 39  # a faster replay: several in one frame
    assert frame_end(times, 143, 2.98, 13) == 150  # the recording ended: last partial one
    long = np.arange(5000) / 50.0
    assert frame_end(long, 0, 1e9, 13) == MAX_FRAME_SAMPLES // 13 * 13
    assert frame_end(long, 0, 1e9, 1) == MAX_FRAME_SAMPLES


def test_replay_notification_size_follows_the_recording_rate() -> None:
    def track(rate: float) -> Track:
        samples = np.zeros((10, 9), np.float32)
        return Track(f"r{int(rate)}", np.arange(10) / rate, samples, None, rate)

    core = GatewayCore(lambda *m: None, DEFAULT)
    source = ReplaySource(core, [track(50.0), track(2.0), track(100.0), track(25.0)], DEFAULT)
    assert source.packets == [13, 1, 13, 6]
    old_tick = GatewaySettings(tick=0.2)
    old = ReplaySource(GatewayCore(lambda *m: None, old_tick), [track(50.0)], old_tick)
    assert old.packets == [10]


def test_sim_truth_is_at_most_one_per_packet_per_device() -> None:
    run = _Run(5, schedule="Squat:0.02,Lunge:0.02")  # the label changes on every sample
    run.run(3.0)
    for device in run.fleet.devices:
        truth, packets_sent = run.truth(device), len(run.raw[device])
        assert 0 < len(truth) <= packets_sent


def _bouts(truths: list[GroundTruth]) -> list[list[GroundTruth]]:
    """The truths split into bouts (runs of one label)."""
    out: list[list[GroundTruth]] = []
    for truth in truths:
        if not out or out[-1][0].label != truth.label:
            out.append([])
        out[-1].append(truth)
    return out


def test_realistic_sim_sets_last_until_their_reps_are_done_and_truth_counts_each_rep() -> None:
    run = _Run(2, schedule="rest:1,Squat:1,rest:2,Situp:1,rest:2", sim_style="realistic")
    plans: list[list[BoutPlan]] = [[], []]
    generate = run.fleet.fleet.next_samples

    def record(labels: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        out = generate(labels, k)
        for i, plan in enumerate(run.fleet.fleet.plans):
            fresh = plan is not None and all(plan is not p for p in plans[i])
            if fresh and plan.counted.any():  # type: ignore[union-attr]
                plans[i].append(plan)
        return out

    run.fleet.fleet.next_samples = record  # type: ignore[method-assign]
    run.run(130.0)  # the sets take about 40 s each
    block = 13 / 50  # bouts switch at block boundaries
    for i, device in enumerate(run.fleet.devices):
        bouts = _bouts(run.truth(device))
        sets = [b for b in bouts[:-1] if b[0].label != "rest"]  # finished exercise bouts
        assert [b[0].label for b in sets][:2] == ["Squat", "Situp"], device
        following = [bouts[bouts.index(b) + 1] for b in sets]
        for bout, plan, after in zip(sets, plans[i][: len(sets)], following, strict=True):
            ends = plan.rep_ends
            counted = [x for x in bout if x.rep > 0]
            assert [x.rep for x in counted] == list(range(1, len(ends) + 1))
            assert len(ends) >= 8  # Realism().reps: 8-16 (a one-second step is not cut short)
            # Sample k is taken at T0 + (k + 1) / 50: each rep's truth is its end, to a sample.
            times = np.array([x.time for x in counted]) - T0 - 1 / 50
            np.testing.assert_allclose(times, ends, atol=1 / 50 + 1e-6)
            last = float(ends[-1]) + TAIL
            assert bout[0].until == pytest.approx(T0 + 1 / 50 + last, abs=1 / 50 + 1e-6)
            assert last <= after[0].time - T0 - 1 / 50 < last + block + 1 / 50


def test_realistic_sim_draws_workouts_of_sets_and_rests_by_default() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):  # random_workout: 8 sets from rest to rest, placeholder seconds
        steps = realistic_schedule(rng)
        labels = [label for label, _ in steps]
        assert labels[0] == labels[-1] == "rest" and sum(x != "rest" for x in labels) == 8
        assert all(seconds > 0 for _, seconds in steps)  # a 0 s step would be no bout at all
        assert all(a != "rest" or b != "rest" for a, b in itertools.pairwise(labels))
    realistic = SimFleet(GatewaySettings(devices=3, seed=4, sim_style="realistic"))
    assert [b.label for b in realistic._bouts] == ["rest"] * 3
    steady = SimFleet(GatewaySettings(devices=3, seed=4))
    assert realistic.fleet.style == "realistic" and steady.fleet.style == "steady"
    assert GatewaySettings().sim_style == "steady"  # the default stays the steady simulator
    with pytest.raises(ValueError, match="sim_style"):
        GatewaySettings(sim_style="lazy")  # type: ignore[arg-type]
