"""Sequence data: encoding, in-memory datasets, input-file readers, seeded splits and duplicate audits."""
