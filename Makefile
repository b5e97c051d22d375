# Developer entry points. `make bench` runs the whole benchmark suite from a clean checkout.

PYTHON := .venv/bin/python
BENCH_ARGS ?=

.PHONY: bench bench-quick coverage

# Bootstrap .venv with the store clients, the test servers' deps and the `bench` extra,
# start every local server, run all sections (writes benchmarks/RESULTS.md, plots and
# results JSON), then stop the servers again, also when a section failed.
bench:
	scripts/bootstrap all,test,bench
	scripts/services up
	status=0; $(PYTHON) -m benchmarks $(BENCH_ARGS) || status=$$?; \
	scripts/services down; exit $$status

# The same in a few minutes (shorter runs, fewer points): a smoke run, not for RESULTS.md.
bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick

# The test suite (scripts/test: servers, lint, types, tests) with line coverage of the
# library, as .ci/run runs it; fails below [tool.slipcover] fail-under in pyproject.toml.
coverage:
	scripts/test
