"""Result files: per-slide summaries, decision tables and overlay images."""
