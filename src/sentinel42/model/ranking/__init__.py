"""Cross-sectional ranking models: one network pooled over a universe, judged by rank IC."""
