#!/bin/sh
# Builds tests/data/scan/golang/hello.gz: a tiny Go program (src/) with two vendored dependencies,
# one replaced by a fork, so its embedded build info lists a main module, a dep and a replacement.
# Built once with Debian's golang-go (go1.19.8, linux/amd64), offline (vendored: no module proxy).
# Usage: sh tests/data/scan/golang/make-hello.sh   (`go version -m` prints what the binary records)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$here/src/." "$work/"
(cd "$work" && CGO_ENABLED=0 GOPROXY=off GOFLAGS=-mod=vendor go build -trimpath -ldflags="-s -w" -o hello .)
go version -m "$work/hello"
gzip -9 -n -c "$work/hello" > "$here/hello.gz"
