# Two commands on a fresh machine: `make demo` (separate a real song) and `make test`.
# Each creates .venv/ when missing, installs the package with its test extras and the
# system tools it needs (ffmpeg for musdb/stempeg; fluidsynth for the synthetic set; headless
# Chromium and chromedriver for the web page's browser test).
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
APT_PKGS := ffmpeg fluidsynth fluid-soundfont-gm openttd-openmsx chromium chromium-driver

.PHONY: demo test system-deps

$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[test]'
	# Editable installs skip setup.py's .pth (wheels carry it): asteroid then finds UNet without our import.
	cp asteroid_unet_autoregister.pth "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
	touch $(STAMP)

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

demo: $(STAMP) system-deps
	$(PYTHON) -m asteroid_unet.demo

test: $(STAMP) system-deps
	$(PYTHON) -m pytest
