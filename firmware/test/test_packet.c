/*
 * Host test of har_packet.h against the shared test vectors.
 * The vectors come from firmware/test_vectors.json, turned into vectors.h by
 * tests/gateway/test_firmware_vectors.py (compile with -I<dir of vectors.h>).
 * Exit status 0 when every vector encodes to exactly its expected bytes.
 */
#include <stdio.h>
#include <string.h>

#include "../har_imu/har_packet.h"
#include "vectors.h"

static int hex_to_bytes(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return (int)n;
}

static int check(const char *name, const uint8_t *got, size_t got_len, const char *hex) {
    uint8_t want[512];
    int want_len = hex_to_bytes(hex, want, sizeof want);
    if (want_len < 0 || (size_t)want_len != got_len || memcmp(want, got, got_len) != 0) {
        printf("FAIL %s: %zu bytes, expected %d\n  got  ", name, got_len, want_len);
        for (size_t i = 0; i < got_len; i++) printf("%02x", got[i]);
        printf("\n  want %s\n", hex);
        return 1;
    }
    printf("ok   %s (%zu bytes)\n", name, got_len);
    return 0;
}

int main(void) {
    int failures = 0, checked = 0;
    uint8_t buf[512];
    for (size_t i = 0; i < sizeof BATCHED / sizeof BATCHED[0]; i++) {
        const struct batched_vector *v = &BATCHED[i];
        size_t len = har_encode_batched(buf, sizeof buf, v->seq, v->time_ms, v->rate_dhz,
                                        (const float(*)[HAR_CHANNELS])v->samples, v->n);
        failures += check(v->name, buf, len, v->hex);
        checked++;
    }
    for (size_t i = 0; i < sizeof LEGACY / sizeof LEGACY[0]; i++) {
        const struct legacy_vector *v = &LEGACY[i];
        size_t len = har_encode_legacy(buf, v->sample, v->padded);
        failures += check(v->name, buf, len, v->hex);
        checked++;
    }
    /* Sizing: MTU 247 holds 13 samples, MTU 23 none, MTU 31 exactly one. */
    if (har_batch_capacity(247) != 13 || har_batch_capacity(23) != 0 || har_batch_capacity(31) != 1) {
        printf("FAIL har_batch_capacity\n");
        failures++;
    }
    /* A packet that does not fit the buffer is refused, not overflowed. */
    float one[1][HAR_CHANNELS] = {{0}};
    if (har_encode_batched(buf, 27, 0, 0, 500, (const float(*)[HAR_CHANNELS])one, 1) != 0) {
        printf("FAIL encoder wrote past a 27-byte buffer\n");
        failures++;
    }
    printf("%d vectors, %d failures\n", checked, failures);
    return failures ? 1 : 0;
}
