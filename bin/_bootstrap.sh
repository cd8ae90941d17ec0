# Sourced by bin/demo and bin/test: create the virtual environment and install the locked dependencies when
# pyproject.toml or requirements.lock changed since the last install. Needs only Python 3.11.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV=${ALBUMGEN_VENV:-$ROOT/.venv}

if [ ! -x "$VENV/bin/python" ]; then
  PYTHON=${PYTHON:-}
  if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3 python; do
      if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        PYTHON=$candidate
        break
      fi
    done
  fi
  if [ -z "$PYTHON" ]; then
    echo "AlbumGen Studio needs Python 3.11 and found none on PATH; set PYTHON=/path/to/python3.11." >&2
    exit 2
  fi
  echo "Creating the virtual environment in $VENV with $PYTHON ..." >&2
  "$PYTHON" -m venv "$VENV"
fi

wanted=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
stamp="$VENV/.albumgen-installed"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
  echo "Installing dependencies (requirements.lock) into $VENV; the first time takes a few minutes ..." >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c requirements.lock -e ".[dev]"
  echo "$wanted" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
