# Entry points for developers and CI. `make help` lists them.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEVNET ?= devnet
STAMP := $(VENV)/.installed

.PHONY: help demo test lint proto migration clean-devnet console-screenshot

help:
	@echo "make demo   install, start a local test network in ./$(DEVNET) and show it working"
	@echo "make test   install and run the whole test suite"
	@echo "make lint   ruff, mypy --strict and buf lint (STANDARD)"
	@echo "make proto  regenerate hfp/ from proto/ (commit the result)"
	@echo "make console-screenshot  retake docs/console-case.png (the README picture) in headless Chromium"

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(STAMP)
	@test -f $(DEVNET)/manifest.json || $(BIN)/hfed devnet init $(DEVNET)
	$(BIN)/hfed devnet up $(DEVNET)
	$(BIN)/hfed devnet demo $(DEVNET)
	$(BIN)/hfed devnet console $(DEVNET)
	@echo "network and console running; stop both with: $(BIN)/hfed devnet down $(DEVNET)"

test: $(STAMP)
	$(BIN)/python -m pytest

.tools/node_modules/.bin/buf: .tools/package.json .tools/package-lock.json
	# npm install, not npm ci: the lock file written here omits other platforms'
	# optional buf binaries, which npm ci then reports as out of sync.
	cd .tools && npm install --silent --no-audit --no-fund
	touch $@

lint: $(STAMP) .tools/node_modules/.bin/buf
	$(BIN)/ruff check .
	$(BIN)/ruff format --check federation peers crypto scripts
	$(BIN)/mypy
	.tools/node_modules/.bin/buf lint proto
	$(BIN)/hadolint docker/Dockerfile docker/postgres/Dockerfile

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

migration: $(STAMP)
	$(BIN)/python scripts/new_migration.py "$(MSG)"

clean-devnet:
	-$(BIN)/hfed devnet down $(DEVNET)
	rm -rf $(DEVNET)

# The README's picture of the console: the browser test that works a case
# takes it (a real two-node network, synthetic reports), then it is copied.
console-screenshot: $(STAMP)
	rm -rf .ci/artifacts/readme-shots
	CONSOLE_SCREENSHOTS=.ci/artifacts/readme-shots $(BIN)/python -m pytest -q \
		tests/console/test_browser.py -k works_a_case
	cp .ci/artifacts/readme-shots/case-held.png docs/console-case.png
