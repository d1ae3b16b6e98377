# Python 3.13, for the project's Makefile and the layer's (`sam build` runs that one in a copy of
# layers/pingpost, where the project's .python-version does not reach): PYTHON when it is given,
# else the first of these that runs and is 3.13: python3.13 on the PATH (a pyenv shim with no
# 3.13 selected there does not run), pyenv's 3.13 installs, newest first (pyenv need not be on
# the PATH), and the project's .venv (made with a PYTHON given). Its real path, not a shim's.
_PROJECT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
_IS_313 := import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)
ifndef PYTHON
PYTHON := $(shell root="$$(pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}")"; \
                  for p in python3.13 \
                           $$(ls -d "$$root"/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV) \
                           "$(_PROJECT)/.venv/bin/python3.13"; do \
                    "$$p" -c "$(_IS_313)" 2>/dev/null && break; done)
endif
# A recipe's first line: it stops unless PYTHON is Python 3.13 (a PYTHON given for something
# else, as some tools have python3 in it, would build the layer for the wrong version).
PYTHON_CHECK = "$(PYTHON)" -c "$(_IS_313)" >/dev/null 2>&1 || { echo "Python 3.13 is needed \
(pyenv install 3.13.0, or PYTHON=/path/to/python3.13); PYTHON is '$(PYTHON)'" >&2; exit 1; }
