"""Deezer's Spleeter in TensorFlow, the reference of the benchmarks (see README.md here)."""
