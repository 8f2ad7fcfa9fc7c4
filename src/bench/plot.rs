//! `ringkv bench --plot FILE.svg`: throughput (top) and p50/p99 latency
//! (bottom) per interval over the run, drawn with `plotters`' SVG backend.
//! Each interval is drawn as a flat step over its own span, so a run of
//! one interval still shows a line and a late tick shows as a wider step.
//! [`plot_data`] (the steps and the axis ranges) is pure; [`draw`] only
//! draws.

use std::path::Path;

use plotters::prelude::*;

use super::stats::Point;

/// Size of the picture, in pixels.
const PLOT_SIZE_PX: (u32, u32) = (1000, 720);
/// Head room above the highest value on each y axis (a fraction).
const Y_HEADROOM: f64 = 0.1;

/// What the plot draws.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotData {
    /// X axis end, in seconds.
    pub x_max_s: f64,
    /// Throughput steps: (seconds, ops/s).
    pub throughput: Vec<(f64, f64)>,
    /// Median latency steps: (seconds, ms).
    pub p50_ms: Vec<(f64, f64)>,
    /// 99th percentile steps: (seconds, ms).
    pub p99_ms: Vec<(f64, f64)>,
    /// Throughput axis end.
    pub ops_max: f64,
    /// Latency axis end, in ms.
    pub latency_max_ms: f64,
}

/// Two points per interval (its start and end at its value), so the
/// lines are steps; axis ends with head room, never zero.
pub fn plot_data(points: &[Point]) -> PlotData {
    let steps = |value: &dyn Fn(&Point) -> f64| -> Vec<(f64, f64)> {
        points
            .iter()
            .flat_map(|p| [(p.start_s, value(p)), (p.t_s, value(p))])
            .collect()
    };
    let top = |series: &[(f64, f64)]| -> f64 {
        let max = series.iter().map(|(_, y)| *y).fold(0.0, f64::max);
        if max > 0.0 {
            max * (1.0 + Y_HEADROOM)
        } else {
            1.0
        }
    };
    let throughput = steps(&|p| p.ops_per_s);
    let p50_ms = steps(&|p| p.p50_us as f64 / 1000.0);
    let p99_ms = steps(&|p| p.p99_us as f64 / 1000.0);
    let x_max_s = points.iter().map(|p| p.t_s).fold(0.0, f64::max);
    PlotData {
        x_max_s: if x_max_s > 0.0 { x_max_s } else { 1.0 },
        ops_max: top(&throughput),
        latency_max_ms: top(&p50_ms).max(top(&p99_ms)),
        throughput,
        p50_ms,
        p99_ms,
    }
}

/// Draws `data` into an SVG file at `path`, `title` on top.
pub fn draw(path: &Path, title: &str, data: &PlotData) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("plot {}: {e}", path.display());
    let root = SVGBackend::new(path, PLOT_SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 18))
        .map_err(|e| err(&e))?;
    let (upper, lower) = root.split_vertically(PLOT_SIZE_PX.1 / 2 - 20);

    let mut chart = ChartBuilder::on(&upper)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..data.x_max_s, 0f64..data.ops_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ops/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(data.throughput.iter().copied(), &BLUE))
        .map_err(|e| err(&e))?
        .label("throughput (ops/s)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let mut chart = ChartBuilder::on(&lower)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..data.x_max_s, 0f64..data.latency_max_ms)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| err(&e))?;
    for (series, label, color) in [(&data.p50_ms, "p50", GREEN), (&data.p99_ms, "p99", RED)] {
        chart
            .draw_series(LineSeries::new(series.iter().copied(), &color))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(start_s: f64, t_s: f64, ops_per_s: f64, p50_us: u64, p99_us: u64) -> Point {
        Point {
            start_s,
            t_s,
            ops_per_s,
            errors: 0,
            p50_us,
            p99_us,
        }
    }

    #[test]
    fn steps_and_axes() {
        let d = plot_data(&[
            point(0.0, 1.0, 1000.0, 500, 2000),
            point(1.0, 2.5, 2000.0, 700, 4000),
        ]);
        assert_eq!(
            d.throughput,
            vec![(0.0, 1000.0), (1.0, 1000.0), (1.0, 2000.0), (2.5, 2000.0)]
        );
        assert_eq!(d.p50_ms[2], (1.0, 0.7));
        assert_eq!(d.p99_ms[3], (2.5, 4.0));
        assert_eq!(d.x_max_s, 2.5);
        assert!((d.ops_max - 2200.0).abs() < 1e-9);
        assert!((d.latency_max_ms - 4.4).abs() < 1e-9);
    }

    #[test]
    fn empty_run_has_drawable_axes() {
        let d = plot_data(&[]);
        assert!(d.throughput.is_empty());
        assert_eq!((d.x_max_s, d.ops_max, d.latency_max_ms), (1.0, 1.0, 1.0));
    }

    #[test]
    fn draws_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.svg");
        let d = plot_data(&[point(0.0, 1.0, 1000.0, 500, 2000)]);
        draw(&path, "a test run", &d).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..80]);
        assert!(svg.contains("a test run") && svg.contains("p99"));
        assert!(svg.contains("<polyline"));
    }
}
