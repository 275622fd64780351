# The two commands of the README: `make demo` and `make test`. Each sets up .venv/ first.
VENV := .venv

.PHONY: demo test setup

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(VENV)/.installed

# The case study on the embedded demo model.
demo: $(VENV)/.installed
	$(VENV)/bin/circ run specs/mcq_correct_letter.circ --out out/mcq_correct_letter

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest
