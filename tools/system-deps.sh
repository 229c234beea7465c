#!/usr/bin/env bash
# Debian packages some tests use: source-extractor (real SExtractor runs), promtool
# (Prometheus rule checks), astrometry.net with the Tycho-2 index files for fields from
# 22' to 2000' (plate solving of uploaded frames; the Dockerfile installs the same ones).
# Installed when missing and we may (root + apt-get); otherwise the tests that need
# source-extractor or promtool skip and say why, and the plate-solving tests fail saying
# what is missing (the server needs it). Never fails the build.
set -u
need=()
command -v source-extractor >/dev/null 2>&1 || need+=(source-extractor)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v solve-field >/dev/null 2>&1 || need+=(astrometry.net)
for scale in 07 08 09 10-19; do
  [ -e "/usr/share/astrometry/index-tycho2-${scale%%-*}.littleendian.fits" ] || need+=("astrometry-data-tycho2-$scale")
done
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
