# The two commands of the README: `make demo` and `make test`. Each sets up .venv/ first.
VENV := .venv

.PHONY: demo test setup

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh

setup: $(VENV)/.installed

# The case study on the embedded demo model; while the package ships no demo weights,
# a spec on a small model with a hand-planted circuit instead.
demo: $(VENV)/.installed
	@if [ -f runtime/demo_model/weights/model.safetensors ]; then \
		$(VENV)/bin/circ run specs/mcq_correct_letter.circ --out out/mcq_correct_letter; \
	else \
		echo "no demo model weights in runtime/demo_model/weights: running the planted-circuit demo"; \
		$(VENV)/bin/python scripts/planted_demo.py out/planted_copy; \
	fi

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest
