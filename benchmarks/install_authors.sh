#!/usr/bin/env bash
# Installs the authors' maintained code base (rainx0r/metaworld-algorithms) from a checkout the user
# gives into its own Python 3.12 virtual environment, at the versions of their uv.lock (jax on CPU)
# plus metaworld 3.1.1 from the package index; their package goes in editable, without dependencies.
# Nothing of theirs is copied into this repository.
#
# usage: benchmarks/install_authors.sh CHECKOUT VENV [PYTHON3.12]
#   CHECKOUT  a checkout or `git archive` export of rainx0r/metaworld-algorithms (tested: 30c9991)
#   VENV      the environment to create (e.g. benchmarks/tmp/authors-venv); reused when complete
#   PYTHON    a Python 3.12 interpreter; default: pyenv's newest 3.12
# JAX_EXTRA=cuda13 installs their GPU extra (jax[cuda13], for a GPU node) instead of jax on the CPU.
set -euo pipefail

die() { echo "install_authors: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: install_authors.sh CHECKOUT VENV [PYTHON3.12]"
checkout=$1
venv=$2
[ -f "$checkout/pyproject.toml" ] && [ -d "$checkout/metaworld_algorithms" ] \
  || die "$checkout is not a checkout of rainx0r/metaworld-algorithms (no pyproject.toml or metaworld_algorithms/)"

# Their uv.lock's versions (jax's cpu extra); metaworld is 3.1.1 from the index, not their git source.
case "${JAX_EXTRA:-cpu}" in
  cpu) jax=jax==0.10.0 ;;
  cuda13) jax="jax[cuda13]==0.10.0" ;;
  *) die "JAX_EXTRA: cpu or cuda13 (their pyproject's extras), got $JAX_EXTRA" ;;
esac
pins=(
  "$jax" jaxlib==0.10.0 flax==0.10.6 distrax==0.1.8 optax==0.2.4 orbax-checkpoint==0.11.40
  tyro==0.9.20 scipy==1.15.3 jaxtyping==0.3.2 chex==0.1.91 numpy==2.2.5 ml-dtypes==0.5.1
  wandb==0.27.0 metaworld==3.1.1
)
stamp="$venv/.authors-installed"
want="$(printf '%s ' "${pins[@]}")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install_authors: $venv is complete"; exit 0
fi

if [ $# -ge 3 ]; then
  python=$3
else
  command -v pyenv >/dev/null || die "no pyenv on PATH: pass a Python 3.12 as the third argument"
  version=$(pyenv versions --bare | grep -E '^3\.12\.[0-9]+$' | sort -V | tail -n 1) \
    || die "pyenv has no Python 3.12 (pyenv install 3.12), or pass one as the third argument"
  python="$(pyenv root)/versions/$version/bin/python"
fi
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null \
  || die "$python is not a Python 3.12 (their pyproject requires >=3.12; their lock was made with 3.12)"

test -x "$venv/bin/python" || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "${pins[@]}"
"$venv/bin/python" -m pip install -q --no-deps -e "$checkout"
"$venv/bin/python" -c 'import metaworld_algorithms, jax, metaworld; print("install_authors: jax", jax.__version__, "on", jax.devices()[0].platform)'
echo "$want" > "$stamp"
