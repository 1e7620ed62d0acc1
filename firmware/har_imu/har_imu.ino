/*
 * har_imu.ino - imu-har wearable firmware for the Arduino Nano 33 BLE Sense.
 *
 * Samples the 9-axis IMU at SAMPLE_RATE_HZ, fills batched packets
 * (har_packet.h, docs/protocol.md "BLE packet formats") and sends each full
 * packet as a notification of the IMU characteristic. Build and flash: see
 * firmware/README.md.
 */
#include <ArduinoBLE.h>

#if defined(HAR_SENSE_REV2)
#include <Arduino_BMI270_BMM150.h>  // Nano 33 BLE Sense Rev2
#else
#include <Arduino_LSM9DS1.h>  // Nano 33 BLE Sense (Rev1)
#endif

#include "har_packet.h"

// ---- configuration -------------------------------------------------------------
#ifndef SAMPLE_RATE_HZ
#define SAMPLE_RATE_HZ 50
#endif
// Samples per notification: 10 + 18 * N bytes must fit the negotiated ATT MTU - 3.
// 4 samples = 82 bytes (needs MTU >= 85); 13 samples = 244 bytes (MTU 247).
#ifndef SAMPLES_PER_PACKET
#define SAMPLES_PER_PACKET 4
#endif
#ifndef DEVICE_NAME
#define DEVICE_NAME "HAR-Nano"
#endif
#define SERVICE_UUID "5a4e0001-6a3c-4b7e-9c1d-2f8e7a4b0001"
#define IMU_CHAR_UUID "5a4e0002-6a3c-4b7e-9c1d-2f8e7a4b0001"

#define PACKET_BYTES (HAR_BATCH_HEADER_SIZE + SAMPLES_PER_PACKET * HAR_SAMPLE_SIZE)

BLEService imuService(SERVICE_UUID);
BLECharacteristic imuChar(IMU_CHAR_UUID, BLENotify, PACKET_BYTES, true);

static float samples[SAMPLES_PER_PACKET][HAR_CHANNELS];
static uint8_t packet[PACKET_BYTES];
static size_t filled = 0;
static uint16_t seq = 0;
static uint32_t firstSampleMs = 0;
static unsigned long nextSampleUs = 0;
static float last[HAR_CHANNELS];  // the magnetometer updates slower than the rate: keep its last value

void setup() {
  Serial.begin(115200);
  pinMode(LED_BUILTIN, OUTPUT);
  if (!IMU.begin()) {
    Serial.println("IMU init failed");
    while (true) { digitalWrite(LED_BUILTIN, millis() / 100 % 2); }
  }
  if (!BLE.begin()) {
    Serial.println("BLE init failed");
    while (true) { digitalWrite(LED_BUILTIN, millis() / 500 % 2); }
  }
  BLE.setLocalName(DEVICE_NAME);
  BLE.setDeviceName(DEVICE_NAME);
  BLE.setAdvertisedService(imuService);
  imuService.addCharacteristic(imuChar);
  BLE.addService(imuService);
  BLE.advertise();
  Serial.println("advertising " DEVICE_NAME);
}

static void readSample(float out[HAR_CHANNELS]) {
  float x, y, z;
  if (IMU.accelerationAvailable()) { IMU.readAcceleration(x, y, z); last[0] = x; last[1] = y; last[2] = z; }
  if (IMU.gyroscopeAvailable()) { IMU.readGyroscope(x, y, z); last[3] = x; last[4] = y; last[5] = z; }
  if (IMU.magneticFieldAvailable()) { IMU.readMagneticField(x, y, z); last[6] = x; last[7] = y; last[8] = z; }
  for (int i = 0; i < HAR_CHANNELS; i++) out[i] = last[i];  // g, deg/s, uT
}

void loop() {
  BLEDevice central = BLE.central();
  if (!central || !central.connected()) {
    filled = 0;
    digitalWrite(LED_BUILTIN, LOW);
    return;
  }
  digitalWrite(LED_BUILTIN, HIGH);
  unsigned long now = micros();
  if ((long)(now - nextSampleUs) < 0) return;
  nextSampleUs = (nextSampleUs == 0 ? now : nextSampleUs) + 1000000UL / SAMPLE_RATE_HZ;
  if (filled == 0) firstSampleMs = millis();
  readSample(samples[filled++]);
  if (filled == SAMPLES_PER_PACKET) {
    size_t len = har_encode_batched(packet, sizeof packet, seq, firstSampleMs,
                                    (uint16_t)(SAMPLE_RATE_HZ * 10), samples, filled);
    if (imuChar.subscribed()) imuChar.writeValue(packet, len);  // a notification
    seq++;  // counts packets even when nobody listens: gaps show up as lost packets
    filled = 0;
  }
}
