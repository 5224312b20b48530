# make demo : the main job on the embedded default corpus (offline)
# make test : everything the tests need (two virtual environments), then the test suite
PYTHON ?= python3
VENV ?= .venv
HEARVENV ?= .venv-hear
# The CPU wheel this machine keeps on disk; an open range would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo test install

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install --disable-pip-version-check -q -e ".[dev,train,eval]"
	# tinysoundfont's metadata asks for pyaudio (no Linux wheel; only its playback needs it): no deps.
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps tinysoundfont
	# torchaudio only for the test that compares our log-mel with its MelSpectrogram: PyPI's 2.11.0 has no
	# torch pin, and without its CUDA extension (.so, unloadable beside a CPU torch) it runs as pure Python.
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps torchaudio==2.11.0
	rm -f $$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torchaudio/lib/*.so
	touch $@

$(HEARVENV)/.installed: heareval_env/setup.sh
	TORCH_SPEC="$(TORCH_SPEC)" bash heareval_env/setup.sh $(HEARVENV)
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/python -m training.demo --out out/demo

test: $(VENV)/.installed $(HEARVENV)/.installed
	HEAR_GRAM_HEAREVAL_PY=$(abspath $(HEARVENV))/bin/python $(VENV)/bin/python -m pytest -q -ra $(PYTEST_ARGS)
