# The two commands of the README:
#   make lab    set everything up (first time only) and open the course in JupyterLab
#   make test   set everything up (first time only) and run the whole test suite
# Set-up makes a virtual environment in .venv with the pinned torch (constraints.txt) and the course
# package with all extras, editable, so `amla` is importable from every notebook.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIN    := -c constraints.txt
PIP    := $(PY) -m pip install --disable-pip-version-check -q $(PIN)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test build check clean data

# torch comes through pip (it alone reads the machine's local CPU wheel); uv then installs the ~150 other packages
# in parallel (CI measures the install; see .ci/run), with the same constraints, leaving torch as it is. Where uv
# cannot reach an index, pip installs them instead.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch uv
	$(VENV)/bin/uv pip install --python $(PY) -q $(PIN) -e ".[all]" || $(PIP) -e ".[all]"
	touch $@

# Data on a package registry, fetched at set-up since the tests never download: Hour 07's labelled sentences
# (the source archive of vaderSentiment 3.3.2 on PyPI, 2.5 MB, sha256-verified), into the user's cache
# (~/.cache/amla), where the notebooks look after the data directory; AMLA_DATA (in CI ../shared/data) is left alone.
# A file already there is only verified (about 2 s), so a checkout set up before this target existed gets it too.
data: $(VENV)/.installed
	AMLA_DATA= $(VENV)/bin/amla fetch sentence-polarity

# JupyterLab's settings for the course (utils/amla/course/lab-overrides.json): no "Would you like to get notified
# about official Jupyter news?" prompt and no update check over the first notebook. JupyterLab reads
# <prefix>/share/jupyter/lab/settings/overrides.json as the defaults; a user's own settings still win.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_OVERRIDES): utils/amla/course/lab-overrides.json $(VENV)/.installed
	mkdir -p $(dir $@)
	cp $< $@

setup: $(VENV)/.installed data $(LAB_OVERRIDES)

# The whole course is reachable (hours/ for students, solutions/ for instructors); Lab opens in hours/.
lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/hours

test: setup
	$(PY) -m pytest

build: setup
	$(VENV)/bin/amla build

check: setup
	$(VENV)/bin/amla build --check

clean:
	rm -rf $(VENV) build test-artifacts
