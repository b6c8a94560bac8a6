//! The SVG charts of the HTML pages (`levered report --html`, `levered simulate --html`): a line
//! chart with labelled axes, round ticks, spread bands and event markers, and an interval chart (a
//! mean and its 95% interval per row). Pure functions of their inputs; every text is escaped here.

use std::fmt::Write;

use crate::time::Instant;

/// Colours told apart by most readers, in order of use.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
/// The colour of grouped or secondary series (arms at the floor, the holdout).
pub const GREY: &str = "#8c8c8c";

/// Microseconds in an hour: x values of a `Time` chart are microseconds, ticks are hours.
pub const HOUR_MICROS: f64 = 3_600_000_000.0;

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A readable time in UTC: `Jan 07 18:00`, or `Jan 07` at a whole day when `days` is set.
pub fn date(t: Instant, days: bool) -> String {
    t.to_utc()
        .map(|t| {
            t.format(if days { "%b %d" } else { "%b %d %H:%M" })
                .to_string()
        })
        .unwrap_or_default()
}

/// A date and time in UTC for a sentence: `2026-01-08 00:00 UTC`.
pub fn date_time(t: Instant) -> String {
    t.to_utc()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Round tick values covering `[low, high]` in about `count` steps of 1, 2 or 5 times a power of
/// ten, and the number of decimals their labels need.
pub fn ticks(low: f64, high: f64, count: usize) -> (Vec<f64>, usize) {
    let (low, high) = if high > low {
        (low, high)
    } else {
        (low - 0.5, low + 0.5)
    };
    let raw = (high - low) / count.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    let first = (low / step + 1e-9).floor() as i64;
    let last = (high / step - 1e-9).ceil() as i64;
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    ((first..=last).map(|k| k as f64 * step).collect(), decimals)
}

/// What the x values of a [`LineChart`] are, which decides its ticks and their labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XScale {
    /// Microseconds since the epoch, labelled as UTC dates.
    Time,
    /// Hours since a start, labelled `6 h` or `day 2`.
    Hours,
}

/// Ticks of a time axis from `first` to `last` (hours since the epoch for `Time`, since the start
/// for `Hours`): positions and labels, at most about seven.
fn hour_ticks(scale: XScale, first: f64, last: f64) -> Vec<(f64, String)> {
    const STEPS: [f64; 12] = [
        1.0, 2.0, 3.0, 6.0, 12.0, 24.0, 48.0, 72.0, 168.0, 336.0, 720.0, 2160.0,
    ];
    let span = (last - first).max(1.0);
    let step = STEPS
        .into_iter()
        .find(|s| span / s <= 7.0)
        .unwrap_or(span / 6.0);
    let mut tick = (first / step).ceil() * step;
    let mut out = Vec::new();
    while tick <= last + 1e-9 {
        let label = match scale {
            XScale::Time => date(
                Instant::from_micros((tick * HOUR_MICROS) as i64),
                step >= 24.0,
            ),
            XScale::Hours if step >= 24.0 => format!("day {}", (tick / 24.0).round()),
            XScale::Hours => format!("{tick} h"),
        };
        out.push((tick, label));
        tick += step;
    }
    out
}

/// One series of a line chart; `band` holds `(x, low, high)` drawn as a shaded area under the line.
#[derive(Debug, Clone, Default)]
pub struct Line {
    pub name: String,
    pub color: String,
    pub points: Vec<(f64, f64)>,
    pub band: Vec<(f64, f64, f64)>,
    pub dashed: bool,
}

/// A line chart: x over time, y a share (0–100%) or a quantity of its own range.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub x: XScale,
    pub x_title: String,
    pub y_title: String,
    /// Shares: the y axis runs from 0% to 100% (bands clipped to it); otherwise from 0 (or below)
    /// to the data's top.
    pub share: bool,
    pub lines: Vec<Line>,
    /// Vertical markers: x and label (a drift, a day of a cycle).
    pub markers: Vec<(f64, String)>,
    pub width: f64,
    pub height: f64,
}

impl LineChart {
    /// The chart as an inline SVG element; an x in microseconds (`Time`) or hours (`Hours`).
    pub fn svg(&self) -> String {
        let (left, right, top, bottom) = (70.0, 44.0, 22.0, 46.0);
        let to_hours = |x: f64| match self.x {
            XScale::Time => x / HOUR_MICROS,
            XScale::Hours => x,
        };
        let xs = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let (x_low, x_high) = bounds(xs.map(to_hours));
        let (y_ticks, decimals) = if self.share {
            ((0..=4).map(|k| f64::from(k) * 0.25).collect(), 0)
        } else {
            let ys = self.lines.iter().flat_map(|l| {
                l.points
                    .iter()
                    .map(|p| p.1)
                    .chain(l.band.iter().flat_map(|b| [b.1, b.2]))
            });
            let (low, high) = bounds(ys.chain([0.0]));
            ticks(low, high, 5)
        };
        let (y_low, y_high) = (y_ticks[0], y_ticks[y_ticks.len() - 1]);
        let plot_w = self.width - left - right;
        let plot_h = self.height - top - bottom;
        let px = |x: f64| left + (to_hours(x) - x_low) / (x_high - x_low).max(1e-12) * plot_w;
        let py = |y: f64| {
            let y = if self.share { y.clamp(0.0, 1.0) } else { y };
            top + (y_high - y) / (y_high - y_low).max(1e-300) * plot_h
        };
        let mut svg = open(self.width, self.height, &self.y_title);
        for &tick in &y_ticks {
            let y = py(tick);
            let label = if self.share {
                format!("{:.0}%", tick * 100.0)
            } else {
                format!("{tick:.decimals$}")
            };
            let _ = write!(
                svg,
                r##"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{label}</text>"##,
                left + plot_w,
                left - 6.0,
                y + 4.0,
            );
        }
        for (tick, label) in hour_ticks(self.x, x_low, x_high) {
            let x = left + (tick - x_low) / (x_high - x_low).max(1e-12) * plot_w;
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" class="axis"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"#,
                top + plot_h,
                top + plot_h + 5.0,
                top + plot_h + 18.0,
                escape(&label)
            );
        }
        for (x, label) in &self.markers {
            let _ = write!(
                svg,
                r#"<line x1="{p:.1}" x2="{p:.1}" y1="{top}" y2="{:.1}" class="marker"/><text x="{:.1}" y="{:.1}" class="marker-label">{}</text>"#,
                top + plot_h,
                px(*x) + 3.0,
                top - 6.0,
                escape(label),
                p = px(*x),
            );
        }
        for line in &self.lines {
            svg.push_str(&draw_line(line, &px, &py));
        }
        let _ = write!(
            svg,
            r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{:.1}" class="axis"/><line x1="{left}" x2="{:.1}" y1="{:.1}" y2="{:.1}" class="axis"/><text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis-title">{}</text><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle" class="axis-title">{}</text></svg>"#,
            top + plot_h,
            left + plot_w,
            top + plot_h,
            top + plot_h,
            left + plot_w / 2.0,
            self.height - 6.0,
            escape(&self.x_title),
            top + plot_h / 2.0,
            escape(&self.y_title),
        );
        svg
    }
}

/// The smallest and largest finite value, `(0, 1)` when there is none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if low.is_finite() {
        (low, high)
    } else {
        (0.0, 1.0)
    }
}

fn open(width: f64, height: f64, label: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{}">"#,
        escape(label)
    )
}

/// A series: its band, its line (a dot when it has one point) and a tooltip with its name.
fn draw_line(line: &Line, px: &impl Fn(f64) -> f64, py: &impl Fn(f64) -> f64) -> String {
    let mut svg = String::new();
    if !line.band.is_empty() {
        let upper = line.band.iter().map(|(x, _, h)| (px(*x), py(*h)));
        let lower = line.band.iter().rev().map(|(x, l, _)| (px(*x), py(*l)));
        let points: Vec<String> = upper
            .chain(lower)
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            svg,
            r#"<polygon points="{}" fill="{}" fill-opacity="0.15" stroke="none"/>"#,
            points.join(" "),
            line.color
        );
    }
    let points: Vec<String> = line
        .points
        .iter()
        .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
        .collect();
    let dash = if line.dashed {
        r#" stroke-dasharray="5 3""#
    } else {
        ""
    };
    let _ = write!(
        svg,
        r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"#,
        line.color,
        points.join(" "),
        escape(&line.name)
    );
    if let [(x, y)] = line.points[..] {
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"/>"#,
            px(x),
            py(y),
            line.color
        );
    }
    svg
}

/// One row of an interval chart.
#[derive(Debug, Clone)]
pub struct Interval {
    pub label: String,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    pub color: String,
}

/// Means with their 95% intervals, one row each, on a shared x axis with ticks and a title;
/// `reference` draws a dashed vertical line (the baseline's mean) with its label; `range` fixes the
/// axis (small multiples share one).
pub struct IntervalChart<'a> {
    pub rows: &'a [Interval],
    pub x_title: &'a str,
    pub reference: Option<(f64, &'a str)>,
    pub range: Option<(f64, f64)>,
    pub width: f64,
    pub label_width: f64,
}

impl IntervalChart<'_> {
    pub fn svg(&self) -> String {
        let (row_height, top, bottom, right) = (24.0, 10.0, 44.0, 20.0);
        let left = self.label_width;
        let height = top + row_height * self.rows.len() as f64 + bottom;
        let (low, high) = self.range.unwrap_or_else(|| self.span());
        let (x_ticks, decimals) = ticks(low, high, ((self.width - left) / 110.0).max(2.0) as usize);
        let (x_low, x_high) = (x_ticks[0], x_ticks[x_ticks.len() - 1]);
        let plot_w = self.width - left - right;
        let px = |v: f64| left + (v - x_low) / (x_high - x_low).max(1e-300) * plot_w;
        let axis_y = top + row_height * self.rows.len() as f64;
        let mut svg = open(self.width, height, self.x_title);
        for &tick in &x_ticks {
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{axis_y:.1}" class="grid"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{tick:.decimals$}</text>"#,
                axis_y + 16.0,
                x = px(tick),
            );
        }
        if let Some((value, label)) = self.reference {
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{axis_y:.1}" class="marker"><title>{}</title></line>"#,
                escape(label),
                x = px(value),
            );
        }
        let max_chars = ((left - 12.0) / 6.6) as usize;
        for (i, row) in self.rows.iter().enumerate() {
            let y = top + row_height * (i as f64 + 0.5);
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="label">{}<title>{}</title></text><line x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{c}" stroke-width="3"/><circle cx="{:.1}" cy="{y:.1}" r="5" fill="{c}"><title>mean {}, 95% [{}, {}]</title></circle>"#,
                left - 10.0,
                y + 4.0,
                escape(&shorten(&row.label, max_chars)),
                escape(&row.label),
                px(row.low),
                px(row.high),
                px(row.mean),
                super::number(row.mean),
                super::number(row.low),
                super::number(row.high),
                c = row.color,
            );
        }
        let _ = write!(
            svg,
            r#"<line x1="{left}" x2="{:.1}" y1="{axis_y:.1}" y2="{axis_y:.1}" class="axis"/><text x="{:.1}" y="{:.1}" text-anchor="middle" class="axis-title">{}</text></svg>"#,
            left + plot_w,
            left + plot_w / 2.0,
            height - 6.0,
            escape(self.x_title)
        );
        svg
    }

    fn span(&self) -> (f64, f64) {
        span(self.rows, self.reference.map(|r| r.0))
    }
}

/// The lowest interval end and the highest, with `reference` inside.
pub fn span(rows: &[Interval], reference: Option<f64>) -> (f64, f64) {
    bounds(rows.iter().flat_map(|r| [r.low, r.high]).chain(reference))
}

/// `text` cut to at most `chars` characters, ending in `…` when cut.
fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_string()
    } else {
        let kept: String = text.chars().take(chars.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let (values, decimals) = ticks(0.0231, 0.0467, 5);
        assert_eq!(decimals, 3);
        assert!(values[0] <= 0.0231 && *values.last().unwrap() >= 0.0467);
        for pair in values.windows(2) {
            assert!((pair[1] - pair[0] - 0.005).abs() < 1e-12, "{values:?}");
        }
        let (values, decimals) = ticks(0.0, 486.0, 5);
        assert_eq!((values[1], decimals), (100.0, 0));
        // One value: a range around it, never a division by zero.
        assert!(ticks(3.0, 3.0, 5).0.len() >= 2);
    }

    #[test]
    fn time_ticks_are_whole_hours_or_days() {
        let day = hour_ticks(XScale::Time, 0.0, 6.0 * 24.0);
        assert_eq!(day[0].1, "Jan 01");
        assert_eq!(day[1].1, "Jan 02");
        let hours = hour_ticks(XScale::Time, 18.0, 24.0);
        assert_eq!(hours[0].1, "Jan 01 18:00");
        assert!(hours.len() <= 7);
        let since = hour_ticks(XScale::Hours, 1.0, 36.0);
        assert_eq!(since[0].1, "6 h");
        assert_eq!(hour_ticks(XScale::Hours, 1.0, 120.0)[0].1, "day 1");
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let rows = [Interval {
            label: "<b>".into(),
            mean: 0.5,
            low: 0.4,
            high: 0.6,
            color: GREY.into(),
        }];
        let svg = IntervalChart {
            rows: &rows,
            x_title: "a & b",
            reference: None,
            range: None,
            width: 400.0,
            label_width: 100.0,
        }
        .svg();
        assert!(svg.contains("&lt;b&gt;") && svg.contains("a &amp; b") && !svg.contains("<b>"));
    }
}
