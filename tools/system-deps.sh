#!/usr/bin/env bash
# Debian packages some tests use: source-extractor (real SExtractor runs), promtool
# (Prometheus rule checks). Installed when missing and we may (root + apt-get);
# otherwise the tests that need them skip and say why. Never fails the build.
set -u
need=()
command -v source-extractor >/dev/null 2>&1 || need+=(source-extractor)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
for pkg in "$@"; do
  case "$pkg" in
    chromium) command -v chromium >/dev/null 2>&1 || need+=(chromium) ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: cannot install ${need[*]} (needs root and apt-get); tests that use them will be skipped"
  exit 0
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/tmp/photcal-apt.log 2>&1 \
  || echo "note: apt-get install ${need[*]} failed (see /tmp/photcal-apt.log); tests that use them will be skipped"
exit 0
