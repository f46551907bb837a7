#!/usr/bin/env bash
# Set up homlearn's virtual environment (.venv) from the committed lock file.
#
#   1. uv: the one on PATH, else a pinned copy installed into the cache directory.
#   2. A Python >= 3.12 (the DOLFINx wheel needs it): $HOMLEARN_PYTHON, python3.1x on PATH,
#      pyenv or uv-managed interpreters, or one built earlier into the cache; if none exists,
#      CPython 3.13 is built from Debian's (trixie) source package into the cache directory.
#   3. .venv created with uv and synced to requirements.lock; homlearn installed editable.
#
# A stamp (.venv/.homlearn-stamp) records the lock hash and interpreter: a second call that
# finds it current returns at once. The cache directory lives outside the tracked tree:
# $HOMLEARN_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/homlearn.
# HOMLEARN_BUILD_PYTHON=1 forces the source build (used to test that path).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${HOMLEARN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homlearn}
venv="$repo/.venv"
lock="$repo/requirements.lock"
uv_version=0.13.9
py_series=3.13

say() { printf '[homlearn setup] %s\n' "$*" >&2; }

stamp_of() {  # what the venv must have been built from
  { sha256sum "$lock" "$repo/pyproject.toml" | cut -d' ' -f1; "$1" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

# Fast path: the venv exists and was built from this lock with its own interpreter.
if [[ -z "${HOMLEARN_BUILD_PYTHON:-}" && -x "$venv/bin/python" && -f "$venv/.homlearn-stamp" ]]; then
  if [[ "$(cat "$venv/.homlearn-stamp")" == "$(stamp_of "$venv/bin/python")" ]]; then
    exit 0
  fi
fi

mkdir -p "$cache"

# 1. uv ---------------------------------------------------------------------------------
find_uv() {
  if command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then command -v uv; return; fi
  if [[ -x "$cache/uv/bin/uv" ]]; then echo "$cache/uv/bin/uv"; return; fi
  say "installing uv $uv_version into $cache/uv"
  python3 -m venv "$cache/uv" >&2
  "$cache/uv/bin/pip" install -q "uv==$uv_version" >&2
  echo "$cache/uv/bin/uv"
}
UV=$(find_uv)

# 2. Python >= 3.12 ----------------------------------------------------------------------
is_py312() { [[ -n "$1" ]] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
  local c
  local candidates=("${HOMLEARN_PYTHON:-}" "$cache/python/bin/python3")
  if [[ -z "${HOMLEARN_BUILD_PYTHON:-}" ]]; then
    for c in python3.14 python3.13 python3.12 python3; do
      command -v "$c" >/dev/null 2>&1 && candidates+=("$(command -v "$c")")
    done
    candidates+=("${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3)
    candidates+=("${XDG_DATA_HOME:-$HOME/.local/share}"/uv/python/cpython-3.1[2-9]*/bin/python3)
    candidates+=(/usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9])
  fi
  for c in "${candidates[@]}"; do
    if is_py312 "$c"; then echo "$c"; return 0; fi
  done
  return 1
}

build_python() {
  # CPython from Debian's source package (upstream tarball only), built into $cache/python.
  local src="$cache/src"
  say "no Python >= 3.12 found: building CPython $py_series from Debian sources into $cache/python (a few minutes)"
  if [[ $(id -u) -ne 0 ]]; then
    say "building Python needs apt-get (root): run as root, or set HOMLEARN_PYTHON to a Python >= 3.12"
    exit 1
  fi
  local list=/etc/apt/sources.list.d/homlearn-trixie-src.list
  [[ -f $list ]] || echo "deb-src http://deb.debian.org/debian trixie main" > "$list"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-upgrade build-essential dpkg-dev pkg-config \
    libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev \
    uuid-dev libgdbm-dev libncurses-dev >&2
  rm -rf "$src" && mkdir -p "$src"
  (cd "$src" && apt-get source --download-only -qq "python$py_series" >&2)
  local tarball
  tarball=$(ls "$src"/python"$py_series"_*.orig.tar.* | head -n 1)
  tar -C "$src" -xf "$tarball"
  local dir
  dir=$(find "$src" -mindepth 1 -maxdepth 1 -type d -name 'Python-*' | head -n 1)
  (cd "$dir" && ./configure -q --prefix="$cache/python" >&2 && make -s -j"$(nproc)" >&2 && make -s install >&2)
  rm -rf "$src"
}

if ! PY=$(find_python); then
  build_python
  PY="$cache/python/bin/python3"
  is_py312 "$PY" || { say "the Python build in $cache/python does not run"; exit 1; }
fi
say "using $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"

# 3. The venv ----------------------------------------------------------------------------
if [[ -x "$venv/bin/python" ]] && ! is_py312 "$venv/bin/python"; then rm -rf "$venv"; fi
[[ -x "$venv/bin/python" ]] || "$UV" venv -q -p "$PY" "$venv"
"$UV" pip sync -q -p "$venv/bin/python" "$lock"
"$UV" pip install -q -p "$venv/bin/python" --no-deps -e "$repo"
stamp_of "$venv/bin/python" > "$venv/.homlearn-stamp"
say "ready: $venv"
