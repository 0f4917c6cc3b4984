#!/usr/bin/env bash
# Installs the dev servers Keel's tests and `make dev` need, at pinned versions,
# into .tools/bin (git-ignored). Re-running is cheap: present binaries are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.tools/bin"
mkdir -p "$BIN"

# name|module@version
TOOLS=(
  "mailpit|github.com/axllent/mailpit@v1.33.1"
  "stripe-mock|github.com/stripe/stripe-mock@v0.203.0"
  "versitygw|github.com/versity/versitygw/cmd/versitygw@v1.8.0"
  # Checks .github/workflows (make lint, make test).
  "actionlint|github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
)

want=("$@")
for entry in "${TOOLS[@]}"; do
  name=${entry%%|*}
  mod=${entry#*|}
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " =~ " ${name} " ]]; then continue; fi
  stamp="$BIN/.$name.version"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$mod" ]; then continue; fi
  echo "tools: installing $mod (first time only; this can take minutes)" >&2
  GOBIN="$BIN" GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install "$mod"
  echo "$mod" > "$stamp"
done
