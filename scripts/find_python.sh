#!/usr/bin/env bash
# Print the path of a Python 3.12 interpreter, or explain on stderr and exit 1.
# The project runs on 3.12 (pyproject's requires-python); pyenv shims that exist but are not
# activated fail when run, so each candidate is run, not just looked up.
set -uo pipefail
candidates=("${PYTHON:-}" python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12)
for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin; do candidates+=("$dir/python3.12"); done
candidates+=(python3)
for candidate in "${candidates[@]}"; do
  [ -n "$candidate" ] || continue
  if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; then
    command -v "$candidate"
    exit 0
  fi
done
echo "ERROR: Python 3.12 is required and none was found (tried python3.12, pyenv's 3.12.x, python3)." >&2
echo "Install it (e.g. 'apt-get install python3.12' or 'pyenv install 3.12') or set PYTHON=/path/to/python3.12." >&2
exit 1
