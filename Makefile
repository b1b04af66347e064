# OPUS: `make run` starts a server with the embedded defaults, `make test` runs the suite.
# Everything is installed into .venv; system packages come from apt-get when missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
export OPUS_BASE_URL ?= http://$(HOST):$(PORT)

.PHONY: run test install install-test lint format bench clean vendor vendor-codemirror

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,fits]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

# System packages the tests use, as "command:package" pairs, installed with apt-get
# when the command is missing: bash runs batch scripts, curl sends their callbacks;
# a single-node SLURM cluster (munge, slurmctld, slurmd, client commands), a throwaway
# PostgreSQL server and a loopback sshd (the SLURM command prefix) are started by the
# tests themselves; chromium is the browser the Playwright tests drive (never
# `playwright install`: its download is not needed); graphviz's dot draws the
# provenance graphs; git clones the job code of definitions with a source (and the
# tests make local repositories with it).
SYSTEM_TOOLS := bash:bash curl:curl sbatch:slurm-client slurmctld:slurmctld \
	slurmd:slurmd munged:munge ssh:openssh-client sshd:openssh-server \
	pg_ctlcluster:postgresql chromium:chromium dot:graphviz git:git
export PATH := $(PATH):/usr/sbin:/sbin

# The current release of prov, apart from the one voprov needs: the tests check that
# MODEL=W3C documents are read by it without error (tests/test_provenance_w3c.py).
PROV_VENV := .venv-prov
$(PROV_VENV)/.installed: | $(BIN)/python
	$(PYTHON) -m venv $(PROV_VENV)
	$(PROV_VENV)/bin/pip install --quiet --upgrade prov lxml
	touch $@

install-test: $(VENV)/.installed-test $(PROV_VENV)/.installed
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# The data directory is made absolute, so that the server and any later command agree on
# it; the server runs in the foreground until Ctrl-C.
run: export OPUS_VAR_PATH ?= $(CURDIR)/var
run: install
	$(BIN)/opus init
	$(BIN)/opus serve --host $(HOST) --port $(PORT)

test: install-test
	$(BIN)/ruff check opus tests bench wsgi.py
	$(BIN)/ruff format --check opus tests bench wsgi.py
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

lint: install-test
	$(BIN)/ruff check opus tests bench wsgi.py
	$(BIN)/mypy

format: install-test
	$(BIN)/ruff format opus tests bench wsgi.py
	$(BIN)/ruff check --fix opus tests bench wsgi.py

bench: install-test
	@# wrk is the load generator of bench_create (a Python one is used without it).
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
	  || echo "wrk could not be installed: bench_create uses Python clients"
	$(BIN)/python bench/run_all.py

# Bootstrap and sampjs (the SAMP Web Profile client of "Send to SAMP") for the web
# pages, from npm, into static/vendor, and axe-core for the browser tests' accessibility
# checks, into tests/vendor (test-only, never served). Only this target needs npm; the
# files are committed. BOOTSTRAP=5.3.9, SAMPJS=1.0.3 and AXE=4.14.1 pin versions.
# sampjs ends with a CommonJS export (module.exports), which neither a module nor a
# classic script has: that one line becomes an ES module export. Its licence (CC0) is
# in its header, copied to LICENSE.
BOOTSTRAP ?= 5
SAMPJS ?= 1
AXE ?= 4
vendor:
	@command -v npm >/dev/null || { echo "make vendor needs npm"; exit 1; }
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	  (cd "$$scratch" && npm pack --silent "bootstrap@$(BOOTSTRAP)" >/dev/null && \
	   tar xzf bootstrap-*.tgz) && \
	  dest=static/vendor/bootstrap && mkdir -p $$dest && \
	  cp "$$scratch/package/dist/css/bootstrap.min.css" \
	     "$$scratch/package/dist/js/bootstrap.bundle.min.js" \
	     "$$scratch/package/LICENSE" $$dest/ && \
	  node -p "require('$$scratch/package/package.json').version" > $$dest/VERSION && \
	  echo "static/vendor/bootstrap: bootstrap $$(cat $$dest/VERSION)"
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	  (cd "$$scratch" && npm pack --silent "sampjs@$(SAMPJS)" >/dev/null && \
	   tar xzf sampjs-*.tgz) && \
	  dest=static/vendor/sampjs && mkdir -p $$dest && \
	  grep -q '^module.exports = { samp }$$' "$$scratch/package/samp.js" && \
	  sed 's/^module\.exports = { samp }$$/export { samp };/' "$$scratch/package/samp.js" \
	    > $$dest/samp.js && \
	  sed -n '/^\/\/ LICENCE/,/^\/\/ warranty\./s/^\/\/ \{0,1\}//p' "$$scratch/package/samp.js" \
	    > $$dest/LICENSE && \
	  node -p "require('$$scratch/package/package.json').version" > $$dest/VERSION && \
	  echo "static/vendor/sampjs: sampjs $$(cat $$dest/VERSION)"
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	  (cd "$$scratch" && npm pack --silent "axe-core@$(AXE)" >/dev/null && \
	   tar xzf axe-core-*.tgz) && \
	  dest=tests/vendor/axe-core && mkdir -p $$dest && \
	  cp "$$scratch/package/axe.min.js" "$$scratch/package/LICENSE" \
	     "$$scratch/package/LICENSE-3RD-PARTY.txt" $$dest/ && \
	  node -p "require('$$scratch/package/package.json').version" > $$dest/VERSION && \
	  echo "tests/vendor/axe-core: axe-core $$(cat $$dest/VERSION)"

# The job definition editor's libraries (docs/client.md), from npm, into static/vendor:
# CodeMirror 6 (the editors, with the YAML language and the legacy shell mode) bundled
# by esbuild into ONE minified ES module, and js-yaml's ES module, minified. Only this
# target needs npm; the files are committed. The bundle's packages, their versions and
# licences are written next to it (VERSIONS, LICENSE). CODEMIRROR=6.0.2, JSYAML=4.3.2,
# ESBUILD=0.28.2 pin versions.
CODEMIRROR ?= 6
JSYAML ?= 4
ESBUILD ?= 0
CODEMIRROR_EXPORTS := \
	"export { EditorView, keymap } from '@codemirror/view';" \
	"export { EditorState, Compartment } from '@codemirror/state';" \
	"export { basicSetup } from 'codemirror';" \
	"export { StreamLanguage } from '@codemirror/language';" \
	"export { shell } from '@codemirror/legacy-modes/mode/shell';" \
	"export { yaml } from '@codemirror/lang-yaml';" \
	"export { setDiagnostics, lintGutter } from '@codemirror/lint';"
# Which packages esbuild put in the bundle (its metafile), with their versions and licences.
CODEMIRROR_LICENSES := const fs = require("fs"); \
	const inputs = Object.keys(require("./meta.json").inputs); \
	const names = [...new Set(inputs.map((p) => p.match(/node_modules\/((@[^/]+\/)?[^/]+)/)) \
	  .filter(Boolean).map((m) => m[1]))].sort(); \
	const pkg = (n) => require(`./node_modules/$${n}/package.json`); \
	fs.writeFileSync("VERSIONS", names.map((n) => `$${n} $${pkg(n).version}\n`).join("")); \
	fs.writeFileSync("LICENSE", names.map((n) => `$${n} $${pkg(n).version} ($${pkg(n).license})\n\n` + \
	  fs.readFileSync(`./node_modules/$${n}/LICENSE`, "utf8").trim() + "\n").join("\n---\n\n"));
vendor-codemirror:
	@command -v npm >/dev/null || { echo "make vendor-codemirror needs npm"; exit 1; }
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	  (cd "$$scratch" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund \
	     "codemirror@$(CODEMIRROR)" "@codemirror/legacy-modes@6" "@codemirror/lang-yaml@6" \
	     "@codemirror/lint@6" "esbuild@$(ESBUILD)" "js-yaml@$(JSYAML)" && \
	   printf '%s\n' $(CODEMIRROR_EXPORTS) > entry.mjs && \
	   npx esbuild entry.mjs --bundle --format=esm --minify --legal-comments=none \
	     --metafile=meta.json --log-level=warning --outfile=codemirror.js && \
	   npx esbuild node_modules/js-yaml/dist/js-yaml.mjs --format=esm --minify \
	     --legal-comments=none --log-level=warning --outfile=js-yaml.js) && \
	  dest=static/vendor/codemirror && mkdir -p $$dest && \
	  (printf '/* CodeMirror 6 for OPUS, bundled: see VERSIONS and LICENSE. */\n'; \
	   cat "$$scratch/codemirror.js") > $$dest/codemirror.js && \
	  (cd "$$scratch" && node -e '$(CODEMIRROR_LICENSES)') && \
	  cp "$$scratch/VERSIONS" "$$scratch/LICENSE" $$dest/ && \
	  echo "static/vendor/codemirror: $$(tr '\n' ' ' < $$dest/VERSIONS)" && \
	  dest=static/vendor/js-yaml && mkdir -p $$dest && \
	  version=$$(node -p "require('$$scratch/node_modules/js-yaml/package.json').version") && \
	  (printf '/*! js-yaml %s https://github.com/nodeca/js-yaml @license MIT */\n' $$version; \
	   cat "$$scratch/js-yaml.js") > $$dest/js-yaml.js && \
	  cp "$$scratch/node_modules/js-yaml/LICENSE" $$dest/ && echo $$version > $$dest/VERSION && \
	  echo "static/vendor/js-yaml: js-yaml $$version"

clean:
	rm -rf $(VENV) $(PROV_VENV) var .pytest_cache
