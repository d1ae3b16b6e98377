# Python 3.13, for the project's Makefile and the layer's (`sam build` runs that one in a copy of
# layers/pingpost, where the project's .python-version does not reach): PYTHON when it is given,
# else the first that runs of python3.13 on the PATH (a pyenv shim with no 3.13 selected there
# does not) and pyenv's own 3.13 installs, newest first (pyenv need not be on the PATH). Its
# real path, not a shim's.
ifndef PYTHON
PYTHON := $(shell root="$$(pyenv root 2>/dev/null || echo "$${PYENV_ROOT:-$$HOME/.pyenv}")"; \
                  for p in python3.13 $$(ls -d "$$root"/versions/3.13*/bin/python3.13 2>/dev/null \
                                         | sort -rV); do \
                    "$$p" -c "import sys; print(sys.executable)" 2>/dev/null && break; done)
endif
