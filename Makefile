# The two commands: `make run` and `make test`. Each sets itself up from scratch on a fresh machine
# (Debian, Python 3.11): a virtual environment in .venv with uv, the project and its dev extras,
# installed exactly as uv.lock says (`uv sync --frozen`: what is tested is what the lock pins).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export UV_PYTHON_DOWNLOADS := never
# The venv is the project's environment for uv (uv sync's default, said explicitly).
export UV_PROJECT_ENVIRONMENT := $(VENV)
# uv itself comes in the version the lock pins (it is a dev dependency), so the bootstrap and the
# synced environment agree and the sync never replaces the running uv.
UV_VERSION := $(shell sed -n '/^name = "uv"$$/{n;s/^version = "\(.*\)"$$/\1/p;}' uv.lock)
# What src/requirements.txt is: the Lambda package's dependencies, exported from uv.lock with hashes.
EXPORT_LAMBDA := export --frozen --only-group lambda --no-emit-project --format requirements-txt

.PHONY: run test lint typecheck unit bench soak clean requirements

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# --inexact keeps pip (which installed uv) in the venv.
$(STAMP): pyproject.toml uv.lock | $(BIN)/uv
	$(BIN)/uv sync --quiet --frozen --inexact --extra dev
	touch $(STAMP)

# After changing dependencies in pyproject.toml: re-lock, then re-export the Lambda package's list
# (tests/template/test_lock.py fails while the two disagree).
requirements: | $(BIN)/uv
	$(BIN)/uv lock
	$(BIN)/uv $(EXPORT_LAMBDA) --output-file src/requirements.txt

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/ecpay-lambda serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/cfn-lint template.yaml
	$(BIN)/checkov --quiet --compact --skip-download --framework cloudformation --file template.yaml

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

soak: $(STAMP)
	SOAK=1 $(BIN)/python -m pytest tests/reliability $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
