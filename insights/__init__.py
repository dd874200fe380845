"""Flag insights: per-flag, per-variation, per-day evaluation counts folded from the events
stream (Kinesis) or, without Kinesis, from the local spool."""
