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

.PHONY: setup lab test build check clean data site slides

# torch comes through pip (it alone reads the machine's local CPU wheel); uv then installs the ~150 other packages
# in parallel (CI measures the install; see .ci/run), with the same constraints, leaving torch as it is. Where uv
# cannot reach an index, pip installs them instead.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch uv
	$(VENV)/bin/uv pip install --python $(PY) -q $(PIN) -e ".[all]" || $(PIP) -e ".[all]"
	touch $@

# Data on a package registry, fetched at set-up since the tests never download: Hour 07's labelled sentences
# (the source archive of vaderSentiment 3.3.2 on PyPI, 2.5 MB, sha256-verified), and the web assets of the slides
# and the site (reveal.js from npm, 2.4 MB; MathJax 2.7 from PyPI, 3 MB), into the user's cache
# (~/.cache/amla), where the notebooks look after the data directory; AMLA_DATA (in CI ../shared/data) is left alone.
# A file already there is only verified (about 2 s), so a checkout set up before this target existed gets it too.
data: $(VENV)/.installed
	AMLA_DATA= $(VENV)/bin/amla fetch sentence-polarity reveal.js mathjax

# JupyterLab's settings for the course (utils/amla/course/lab-overrides.json): no "Would you like to get notified
# about official Jupyter news?" prompt and no update check over the first notebook. JupyterLab reads
# <prefix>/share/jupyter/lab/settings/overrides.json as the defaults; a user's own settings still win.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
$(LAB_OVERRIDES): utils/amla/course/lab-overrides.json $(VENV)/.installed
	mkdir -p $(dir $@)
	cp $< $@

# A Colab-like wheelhouse for tests/test_colab.py, downloaded once by make test (about 330 MB; the tests themselves
# never download): what Colab has before a notebook's first cell (COLAB_PREINSTALLED: its widget stack ipywidgets 7.7 with IPython
# 7.34, ipykernel 6.17 and the classic notebook; torch and the scientific packages) and what the course's extras
# add there (the dependencies of ".[graphs,rl]"). The test installs from it only; preinstalled.txt is its list.
# After changing COLAB_PREINSTALLED: rm -r build/colab-wheels && make colab-wheels.
COLAB_WHEELS := build/colab-wheels
COLAB_PREINSTALLED := ipywidgets==7.7.1 ipython==7.34.0 ipykernel==6.17.1 notebook==6.5.7 \
	torch numpy matplotlib scikit-learn tqdm networkx pip
$(COLAB_WHEELS)/preinstalled.txt: pyproject.toml constraints.txt | $(VENV)/.installed
	$(PY) -m pip download --disable-pip-version-check -q $(PIN) -d $(COLAB_WHEELS) $(COLAB_PREINSTALLED) ".[graphs,rl]"
	printf '%s\n' $(COLAB_PREINSTALLED) > $@

.PHONY: colab-wheels
colab-wheels: $(COLAB_WHEELS)/preinstalled.txt

setup: $(VENV)/.installed data $(LAB_OVERRIDES)

# The whole course is reachable (hours/ for students, solutions/ for instructors); Lab opens in hours/.
lab: setup
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/hours

# Every hour as reveal.js slides in build/slides/ (student decks: answers hidden; instructor decks: answers as
# speaker notes), working offline. SLIDES_PROFILE=cpu executes the hours first, so the slides show their outputs.
slides: setup
	$(VENV)/bin/amla slides $(if $(SLIDES_PROFILE),--profile $(SLIDES_PROFILE))
	$(VENV)/bin/amla slides --solutions $(if $(SLIDES_PROFILE),--profile $(SLIDES_PROFILE))

# The Colab wheelhouse only for the tests (make lab and the rest never download it).
test: setup colab-wheels
	$(PY) -m pytest

build: setup
	$(VENV)/bin/amla build

check: setup
	$(VENV)/bin/amla build --check

# The course website in build/site/ (open build/site/index.html; it works offline): every student notebook executed
# under PROFILE (cached in build/site-executed/), then Sphinx + myst-nb. smoke is quick but its numbers are tiny;
# cpu is what a published site should use.
PROFILE ?= cpu
site: setup
	$(VENV)/bin/amla site --profile $(PROFILE)

clean:
	rm -rf $(VENV) build test-artifacts
