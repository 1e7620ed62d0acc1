/*
 * har_packet.h - encoder of the imu-har BLE packet formats (docs/protocol.md,
 * "BLE packet formats"). Plain C99, no Arduino dependency: the firmware sketch
 * uses it, and firmware/test/test_packet.c checks it on the host against the
 * shared test vectors (firmware/test_vectors.json).
 *
 * Batched packet (little-endian):
 *   0  u8   version (1)
 *   1  u8   N, samples in this packet (1..255)
 *   2  u16  sequence number, +1 per packet, wraps at 65535 -> 0
 *   4  u32  device time of the first sample, ms (wraps after 49.7 days)
 *   8  u16  sample rate in 0.1 Hz (500 = 50 Hz)
 *   10 N x 9 x i16: ax ay az [0.001 g] gx gy gz [0.1 deg/s] mx my mz [0.01 uT]
 * Legacy packet: one sample, 9 x i16: acc [0.001 g], gyro [0.01 deg/s],
 *   mag [0.1 uT = 1 mG], optionally zero-padded to 32 bytes.
 */
#ifndef HAR_PACKET_H
#define HAR_PACKET_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define HAR_BATCH_VERSION 1
#define HAR_BATCH_HEADER_SIZE 10
#define HAR_SAMPLE_SIZE 18
#define HAR_ATT_OVERHEAD 3
#define HAR_CHANNELS 9

/* Units per count (LSB) of the batched and legacy formats, per channel group. */
static const double HAR_BATCH_LSB[3] = {0.001, 0.1, 0.01};
static const double HAR_LEGACY_LSB[3] = {0.001, 0.01, 0.1};

/* Samples of a batched packet that fit a notification at ATT MTU `mtu` (0 if none). */
static inline size_t har_batch_capacity(uint16_t mtu) {
    if (mtu < HAR_ATT_OVERHEAD + HAR_BATCH_HEADER_SIZE + HAR_SAMPLE_SIZE) return 0;
    size_t n = (size_t)(mtu - HAR_ATT_OVERHEAD - HAR_BATCH_HEADER_SIZE) / HAR_SAMPLE_SIZE;
    return n > 255 ? 255 : n;
}

/* Bytes of a batched packet holding n samples. */
static inline size_t har_batch_size(size_t n) { return HAR_BATCH_HEADER_SIZE + n * HAR_SAMPLE_SIZE; }

/* value / lsb rounded half-to-even, saturated to int16 (same as numpy rint + clip). */
static inline int16_t har_quantize(float value, double lsb) {
    double counts = rint((double)value / lsb);
    if (counts != counts) return 0; /* NaN */
    if (counts > 32767.0) return 32767;
    if (counts < -32768.0) return -32768;
    return (int16_t)counts;
}

static inline uint8_t *har_put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

static inline uint8_t *har_put_u32(uint8_t *p, uint32_t v) {
    p = har_put_u16(p, (uint16_t)(v & 0xFFFF));
    return har_put_u16(p, (uint16_t)(v >> 16));
}

static inline uint8_t *har_put_sample(uint8_t *p, const float s[HAR_CHANNELS], const double lsb[3]) {
    for (int i = 0; i < HAR_CHANNELS; i++) p = har_put_u16(p, (uint16_t)har_quantize(s[i], lsb[i / 3]));
    return p;
}

/*
 * Encode n samples (g, deg/s, uT) into out (capacity cap bytes).
 * Returns the packet length, or 0 if n is 0, above 255 or does not fit.
 */
static inline size_t har_encode_batched(uint8_t *out, size_t cap, uint16_t seq, uint32_t time_ms,
                                        uint16_t rate_dhz, const float (*samples)[HAR_CHANNELS],
                                        size_t n) {
    if (n == 0 || n > 255 || har_batch_size(n) > cap) return 0;
    uint8_t *p = out;
    *p++ = HAR_BATCH_VERSION;
    *p++ = (uint8_t)n;
    p = har_put_u16(p, seq);
    p = har_put_u32(p, time_ms);
    p = har_put_u16(p, rate_dhz);
    for (size_t k = 0; k < n; k++) p = har_put_sample(p, samples[k], HAR_BATCH_LSB);
    return (size_t)(p - out);
}

/* Encode one legacy sample into out (18 bytes, or 32 zero-padded when padded != 0). */
static inline size_t har_encode_legacy(uint8_t *out, const float sample[HAR_CHANNELS], int padded) {
    uint8_t *p = har_put_sample(out, sample, HAR_LEGACY_LSB);
    if (!padded) return HAR_SAMPLE_SIZE;
    while (p < out + 32) *p++ = 0;
    return 32;
}

#endif /* HAR_PACKET_H */
