# Two commands do everything on a fresh machine (each creates .venv on first use):
#   make demo   train the default model on embedded synthetic data, evaluate, write a report
#   make test   run the test suite
# A GPU node with no network (docs/gpu.md), with the Python that holds the node's torch (PYTHON=...):
#   make wheelhouse WHEELHOUSE=DIR [NODE_PYTHON=3.11]   on a connected machine: the wheels the node lacks
#   make install-offline WHEELHOUSE=DIR                 on the node: install from them, torch kept
#   make gpu-check OUT=DIR [WHEELHOUSE=DIR]             on the node: GPU tests, throughput, latency
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Keep freed activation memory in the process instead of unmapping it after every step (2x faster on CPU).
RUNENV := HF_HUB_OFFLINE=1 MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824

.PHONY: demo test install clean-venv wheelhouse install-offline gpu-check

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned explicitly: an unpinned request may pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[test,data,loggers]'
	touch $(STAMP)

demo: $(STAMP)
	$(RUNENV) WANDB_MODE=offline $(BIN)/matting demo $(ARGS)

test: $(STAMP)
	$(RUNENV) WANDB_MODE=disabled $(BIN)/python -m pytest -q $(ARGS)

clean-venv:
	rm -rf $(VENV)

NODE_PYTHON ?= $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')

wheelhouse:
	@test -n "$(WHEELHOUSE)" || { echo "make wheelhouse WHEELHOUSE=DIR [NODE_PYTHON=3.11]"; exit 2; }
	$(PYTHON) tools/wheelhouse.py download $(WHEELHOUSE) --python-version $(NODE_PYTHON) $(ARGS)

install-offline:
	@test -n "$(WHEELHOUSE)" || { echo "make install-offline WHEELHOUSE=DIR"; exit 2; }
	$(PYTHON) tools/wheelhouse.py install $(WHEELHOUSE) $(ARGS)

gpu-check:
	@test -n "$(OUT)" || { echo "make gpu-check OUT=DIR [WHEELHOUSE=DIR]"; exit 2; }
	$(RUNENV) WANDB_MODE=disabled $(PYTHON) tools/gpu_check.py --out $(OUT) $(if $(WHEELHOUSE),--wheelhouse $(WHEELHOUSE)) $(ARGS)
