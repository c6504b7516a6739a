"""Audio helpers: resampling and sample-format conversion (numpy arrays, mono)."""
