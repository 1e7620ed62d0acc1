"""The classifier service: windows in, predictions out (see docs/classifier.md)."""
