# Two entry points for a fresh machine: `make reproduce` and `make test`.
# Both create (or reuse) .venv and reinstall only when pyproject.toml changed:
# the stamp file's name carries a hash of pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_HASH := $(shell $(PYTHON) -c "import hashlib;print(hashlib.sha1(open('pyproject.toml','rb').read()).hexdigest()[:12])")
STAMP := $(VENV)/.installed-$(DEPS_HASH)
PROFILE ?= default

.PHONY: install browser test test-fast reproduce lab benchmarks site clean

install: $(STAMP) browser

# Debian's Chromium for the browser test of the widgets (Playwright drives it; it downloads no
# browser). Installed when missing and this runs as root with apt-get; otherwise the test skips
# and says why.
browser:
	@command -v chromium > /dev/null 2>&1 || command -v chromium-browser > /dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null) || \
	      echo "note: could not install chromium: the browser test will be skipped"; \
	  else echo "note: no chromium and no root apt-get to install it: the browser test will be skipped"; fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -c "import torch, torchvision, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	@rm -f $(VENV)/.installed-*
	@touch $@

test: $(STAMP) browser
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not notebooks and not slow"

reproduce: $(STAMP)
	$(VENV)/bin/m3mstl reproduce --profile $(PROFILE)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

benchmarks: $(STAMP)
	$(PY) -m benchmarks

# The companion site: README.md, the executed notebooks (executed/*.ipynb, with their stored
# outputs and figures) and docs/*.md as static HTML in build/site/html, built from scratch and
# offline. Nothing is executed (site/conf.py sets myst-nb's execution off).
site: $(STAMP)
	rm -rf build/site
	$(PY) -m sphinx -b html -q -c site -d build/site/doctrees . build/site/html
	@echo "the companion site: build/site/html/index.html"

clean:
	rm -rf build runs data/synth-*
