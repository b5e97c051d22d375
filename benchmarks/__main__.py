"""``python -m benchmarks``: run every section and write RESULTS.md (see run_all.py)."""

from benchmarks.run_all import main

raise SystemExit(main())
