#!/usr/bin/env bash
# Renders the example's HTML report in headless Chromium: trains the example over a few hours,
# writes `levered report --html`, then checks that Chromium parses the page (three SVG charts in the
# DOM) and takes a non-empty screenshot. Installs Debian's chromium when it is missing.
# Usage: scripts/check-html.sh [OUTPUT_DIR]   (the screenshot is OUTPUT_DIR/hero.png)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/levered-target}"
if ! command -v chromium >/dev/null; then
    apt-get install -y chromium >/dev/null
fi
work="${1:-$(mktemp -d)}"
mkdir -p "$work/fixtures"
cp optimizations.example.yaml "$work/"
cp -r fixtures/warehouse "$work/fixtures/"
cargo build --release --locked --quiet
levered="$CARGO_TARGET_DIR/release/levered"
for hour in 18 19 20 21 22 23; do
    "$levered" train --all -q --config "$work/optimizations.example.yaml" --as-of "2026-01-07T$hour:00:00Z" 2>/dev/null
done
"$levered" train --all -q --config "$work/optimizations.example.yaml" --as-of 2026-01-08T00:00:00Z 2>/dev/null
"$levered" report --config "$work/optimizations.example.yaml" --optimization hero --html "$work/hero.html"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$work/profile")
svgs=$(chromium "${flags[@]}" --dump-dom "file://$work/hero.html" 2>/dev/null | grep -o '<svg' | wc -l)
chromium "${flags[@]}" --window-size=840,1900 --screenshot="$work/hero.png" "file://$work/hero.html" 2>/dev/null
size=$(stat -c %s "$work/hero.png")
echo "chromium rendered $work/hero.html: $svgs SVG charts in the DOM, screenshot $work/hero.png ($size bytes)"
[ "$svgs" -eq 3 ] && [ "$size" -gt 20000 ]
