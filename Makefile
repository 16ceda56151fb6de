# The two commands of the README:
#   make demo   install into .venv, run every experiment on the quick profile, write the report
#   make test   install into .venv (with test tools), run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

install: $(VENV)/.installed

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(BIN)/dlprobe run all --profile quick

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf runs report
