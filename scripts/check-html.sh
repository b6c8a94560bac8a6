#!/usr/bin/env bash
# Renders levered's HTML pages in headless Chromium and checks them: the example's report (MAB,
# with a guardrail),
# the same optimizations trained as contextual bandits (CMAB), and a simulation page. For each page
# it runs a layout check inside Chromium (no horizontal overflow, every chart has axis titles, no
# tick labels overlap, no text leaves the page) and takes a screenshot. Installs Debian's chromium
# when it is missing.
# Usage: scripts/check-html.sh [SCREENSHOT_DIR]
#   prints one verdict per page and writes report-mab.png, report-cmab.png and simulate.png into SCREENSHOT_DIR (default: a
#   temporary folder); `scripts/check-html.sh docs/img` refreshes the screenshots of the README.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/levered-target}"
if ! command -v chromium >/dev/null; then
    apt-get install -y chromium >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
shots="${1:-$work}"
mkdir -p "$shots"
shots="$(cd "$shots" && pwd)"
cargo build --release --locked --quiet
levered="$CARGO_TARGET_DIR/release/levered"

mkdir -p "$work/fixtures"
cp -r fixtures/warehouse "$work/fixtures/"
cp -r sql "$work/"
# The example, with a guardrail on hero (its page then has a guardrail panel).
sed -e 's/^    reward: signup$/    reward: signup\n    guardrails: [{metric: revenue, better: higher, tolerance: {relative: 0.1}}]/' \
    optimizations.example.yaml > "$work/mab.yaml"
# The same optimizations, personalized by the exposures' country and device.
sed -e 's/^      kind: mab$/      kind: cmab/' \
    -e 's/^    model:$/    context_factors: [country, device]\n    model:/' \
    -e 's|^state: .*|state: .levered/cmab.duckdb|' -e 's|^output_dir: .*|output_dir: out-cmab|' \
    optimizations.example.yaml > "$work/cmab.yaml"
for config in mab cmab; do
    for as_of in 2026-01-02T00 2026-01-03T00 2026-01-04T00 2026-01-05T00 2026-01-06T00 2026-01-07T00 2026-01-08T00; do
        "$levered" train --all -q --config "$work/$config.yaml" --as-of "$as_of:00:00Z" 2>/dev/null
    done
    "$levered" report -q --config "$work/$config.yaml" --optimization hero --html "$work/report-$config.html"
done
"$levered" simulate -q examples/scenarios/drift.yaml --fast --out "$work/simulate" --html "$work/simulate.html" >/dev/null

# The layout check, run by Chromium on a copy of each page; its verdict becomes the page title.
cat > "$work/check.js" <<'EOF'
addEventListener('load', () => {
  const problems = [];
  const page = document.documentElement;
  if (page.scrollWidth > innerWidth) problems.push(`page ${page.scrollWidth}px wide in a ${innerWidth}px window`);
  const svgs = [...document.querySelectorAll('svg')];
  for (const [i, svg] of svgs.entries()) {
    if (!svg.querySelector('.axis-title')) problems.push(`chart ${i + 1} has no axis title`);
    const ticks = [...svg.querySelectorAll('text.tick')].map(t => t.getBoundingClientRect());
    for (const a of ticks) for (const b of ticks) {
      if (a !== b && a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) {
        problems.push(`chart ${i + 1}: tick labels overlap`);
      }
    }
    for (const text of svg.querySelectorAll('text')) {
      const box = text.getBoundingClientRect();
      if (box.left < 0 || box.right > page.clientWidth) problems.push(`chart ${i + 1}: "${text.textContent}" leaves the page`);
    }
  }
  if (!document.querySelector('.headline')) problems.push('no headline');
  const verdict = problems.length ? 'FAIL ' + [...new Set(problems)].join('; ') : `OK ${svgs.length} charts`;
  document.title = `${verdict} @${page.scrollHeight}`;
});
EOF
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --user-data-dir="$work/profile" --window-size=860,1000)
failed=0
for name in report-mab report-cmab simulate; do
    sed 's|</body>|<script src="check.js"></script></body>|' "$work/$name.html" > "$work/$name.checked.html"
    title=$(chromium "${flags[@]}" --virtual-time-budget=5000 --dump-dom "file://$work/$name.checked.html" 2>/dev/null \
        | grep -o -m1 '<title>[^<]*</title>' | head -1 | sed -e 's/<title>//' -e 's|</title>||')
    verdict="${title% @*}"
    height="${title##* @}"    # the page's height, so that the screenshot holds all of it
    chromium "${flags[@]}" --window-size=860,"$height" --hide-scrollbars --screenshot="$shots/$name.png" \
        "file://$work/$name.html" 2>/dev/null
    echo "$name: $verdict; screenshot $shots/$name.png ($(stat -c %s "$shots/$name.png") bytes)"
    [[ "$verdict" == OK* ]] || failed=1
done
exit "$failed"
