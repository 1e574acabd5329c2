# The build recipe shared by the functions' Makefiles (SAM `BuildMethod: makefile`).
#
# SAM runs `make --makefile <repo>/functions/<name>/Makefile build-<LogicalId>` in a scratch copy
# of the function folder with ARTIFACTS_DIR set, so every repository path here is resolved from
# the Makefile's own location (FUNCTION_DIR), never from the working directory. The pattern rule
# accepts any logical ID the template gives the function.
#
# Each function Makefile sets FUNCTION_DIR, PACKAGE_FILES (paths under src/) and REPO_FILES
# (repository files the code reads through flu_monitor.paths), then includes this file.

REPO := $(abspath $(FUNCTION_DIR)/../..)
PYTHON ?= $(firstword $(wildcard $(REPO)/.venv/bin/python) python3)
# Wheels for the Lambda runtime (python3.13 on arm64), not for this machine's Python. --no-deps:
# requirements.txt pins every package the bundle needs; boto3 comes from the runtime.
PIP_FOR_LAMBDA := --python-version 3.13 --implementation cp --platform manylinux2014_aarch64 \
	--platform manylinux_2_28_aarch64 \
	--only-binary=:all: --no-deps --no-compile

build-%:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)"; exit 2; }
	mkdir -p "$(ARTIFACTS_DIR)"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target "$(ARTIFACTS_DIR)" \
		$(PIP_FOR_LAMBDA) -r "$(FUNCTION_DIR)/requirements.txt"
	cp "$(FUNCTION_DIR)/app.py" "$(ARTIFACTS_DIR)/"
	cd "$(REPO)/src" && cp --parents $(PACKAGE_FILES) "$(ARTIFACTS_DIR)/"
	$(if $(strip $(REPO_FILES)),cd "$(REPO)" && cp -R --parents $(REPO_FILES) "$(ARTIFACTS_DIR)/")
	rm -rf "$(ARTIFACTS_DIR)/bin"
