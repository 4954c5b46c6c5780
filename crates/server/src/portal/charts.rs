//! Charts drawn on the service as inline SVG: no script, nothing to load, and a
//! text alternative (the SVG's title and a data table for screen readers).

use maud::{html, Markup};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 30.0;
const TOP: f64 = 12.0;

/// One value on a chart, with the label its axis and table show.
pub struct Point {
    pub label: String,
    pub value: u64,
}

fn scale(max: u64) -> f64 {
    if max == 0 {
        1.0
    } else {
        max as f64
    }
}

/// Bars, one per point (bytes per backup).
pub fn bar_chart(title: &str, points: &[Point], format: fn(u64) -> String) -> Markup {
    let max = points.iter().map(|p| p.value).max().unwrap_or(0);
    let plot_width = WIDTH - LEFT - 10.0;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width / points.len().max(1) as f64;
    html! {
        figure {
            svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
                title { (title) }
                (axes(max, format))
                @for (i, point) in points.iter().enumerate() {
                    @let height = point.value as f64 / scale(max) * plot_height;
                    rect x=(format!("{:.1}", LEFT + i as f64 * slot + slot * 0.15)) y=(format!("{:.1}", TOP + plot_height - height))
                        width=(format!("{:.1}", slot * 0.7)) height=(format!("{:.1}", height)) fill="#0b62a4" {
                        title { (point.label) ": " (format(point.value)) }
                    }
                }
                (x_labels(points, slot))
            }
            figcaption { (title) }
            (data_table(title, points, format))
        }
    }
}

/// A line over time (storage used).
pub fn line_chart(title: &str, points: &[Point], format: fn(u64) -> String) -> Markup {
    let max = points.iter().map(|p| p.value).max().unwrap_or(0);
    let plot_width = WIDTH - LEFT - 10.0;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width / points.len().max(1) as f64;
    let coordinates: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let x = LEFT + i as f64 * slot + slot / 2.0;
            let y = TOP + plot_height - p.value as f64 / scale(max) * plot_height;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    html! {
        figure {
            svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
                title { (title) }
                (axes(max, format))
                polyline points=(coordinates.join(" ")) fill="none" stroke="#0b62a4" stroke-width="2.5" {}
                @for (point, xy) in points.iter().zip(&coordinates) {
                    @let (x, y) = xy.split_once(',').unwrap_or(("0", "0"));
                    circle cx=(x) cy=(y) r="3.5" fill="#0b62a4" { title { (point.label) ": " (format(point.value)) } }
                }
                (x_labels(points, slot))
            }
            figcaption { (title) }
            (data_table(title, points, format))
        }
    }
}

fn axes(max: u64, format: fn(u64) -> String) -> Markup {
    let bottom = HEIGHT - BOTTOM;
    html! {
        line x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(bottom) stroke="#5b6875" {}
        line x1=(LEFT) y1=(bottom) x2=(WIDTH - 10.0) y2=(bottom) stroke="#5b6875" {}
        text x=(LEFT - 6.0) y=(TOP + 10.0) text-anchor="end" font-size="12" fill="#5b6875" { (format(max)) }
        text x=(LEFT - 6.0) y=(bottom) text-anchor="end" font-size="12" fill="#5b6875" { (format(0)) }
    }
}

/// At most about eight labels, so they never overlap.
fn x_labels(points: &[Point], slot: f64) -> Markup {
    let every = points.len().div_ceil(8).max(1);
    html! {
        @for (i, point) in points.iter().enumerate().filter(|(i, _)| i % every == 0) {
            text x=(format!("{:.1}", LEFT + i as f64 * slot + slot / 2.0)) y=(HEIGHT - 10.0) text-anchor="middle" font-size="11" fill="#5b6875" {
                (point.label)
            }
        }
    }
}

fn data_table(title: &str, points: &[Point], format: fn(u64) -> String) -> Markup {
    html! {
        details {
            summary { "The figures of " (title.to_lowercase()) }
            div.scroll {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Value" } } }
                    tbody {
                        @for point in points { tr { td { (point.label) } td { (format(point.value)) } } }
                    }
                }
            }
        }
    }
}
