"""Benchmarks: study files (tasks × models × seeds), the cross of cells, leaderboards, cross-cell-line transfer."""
