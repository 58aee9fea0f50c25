//! The job page's chart: deletes and disables of the last cycles as bars, with the count
//! threshold drawn as a line, so a spike against the limit is seen at a glance. Plain SVG.

use maud::{Markup, html};

/// One bar: a cycle's label and its counts.
pub struct Bar {
    /// Shown under the bar (the cycle's date) and in its tooltip.
    pub label: String,
    /// Deletes in the cycle.
    pub deletes: u64,
    /// Disables in the cycle.
    pub disables: u64,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;

/// The chart for `bars` (oldest first) with `threshold`, a count limit, when there is one.
pub fn chart(bars: &[Bar], threshold: Option<u64>) -> Markup {
    let highest = bars
        .iter()
        .map(|bar| bar.deletes + bar.disables)
        .chain(threshold)
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.15;
    let plot_height = HEIGHT - BOTTOM - TOP;
    let y = |value: f64| TOP + plot_height - value / highest * plot_height;
    let slot = (WIDTH - LEFT) / bars.len().max(1) as f64;
    let bar_width = (slot * 0.7).max(2.0);
    html! {
        svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%" role="img"
            aria-label="Deletes and disables per cycle, with the threshold" {
            line x1=(LEFT) y1=(y(0.0)) x2=(WIDTH) y2=(y(0.0)) stroke="#8a94a0" {}
            text x="2" y=(y(0.0)) { "0" }
            text x="2" y=(TOP + 10.0) { (format!("{:.0}", highest)) }
            @for (index, bar) in bars.iter().enumerate() {
                @let x = LEFT + index as f64 * slot + (slot - bar_width) / 2.0;
                @let deletes_top = y(bar.deletes as f64);
                @let both_top = y((bar.deletes + bar.disables) as f64);
                g {
                    title { (bar.label) ": " (bar.deletes) " deletes, " (bar.disables) " disables" }
                    rect x=(x) y=(deletes_top) width=(bar_width) height=(y(0.0) - deletes_top) fill="#b42318" {}
                    rect x=(x) y=(both_top) width=(bar_width) height=(deletes_top - both_top) fill="#f4a261" {}
                }
            }
            @if let Some(threshold) = threshold {
                line x1=(LEFT) y1=(y(threshold as f64)) x2=(WIDTH) y2=(y(threshold as f64))
                    stroke="#1d3557" stroke-dasharray="6 4" stroke-width="2" {}
                text x=(LEFT + 4.0) y=(y(threshold as f64) - 4.0) fill="#1d3557" { "threshold " (threshold) }
            }
            @if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
                text x=(LEFT) y=(HEIGHT - 6.0) { (first.label) }
                text x=(WIDTH) y=(HEIGHT - 6.0) text-anchor="end" { (last.label) }
            }
        }
        p.muted { span style="color:#b42318" { "■" } " deletes  " span style="color:#f4a261" { "■" } " disables  "
            @if threshold.is_some() { "- - threshold" } }
    }
}
