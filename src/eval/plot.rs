//! Score-against-truth scatter plots (`dasnas eval --plot FILE.svg|png`).
//!
//! One panel per score field, in a grid of up to [`COLUMNS`] columns: x is
//! the score, y the truth target, one dot per architecture of the scores
//! file found in the truth table. Each panel's title holds the field's N,
//! Kendall τ-b and Spearman ρ taken from the [`EvalReport`] that `eval`
//! prints, formatted as its table formats them, so the plot and the table
//! agree; and how many of the joined rows the panel leaves out: a null score
//! (a singular cell's WOT, ln 0) has no place on a finite axis.
//!
//! The format follows the file extension. SVG text is left to the viewer's
//! `sans-serif` font; PNG text is drawn with DejaVu Sans, compiled into the
//! binary from `assets/fonts` (a subset; license beside it), so that
//! drawing a PNG needs no system fonts or fontconfig.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use plotters::backend::{PixelFormat, RGBPixel};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::join::{format_correlation, EvalReport, FieldReport, ScoreTable};
use crate::error::{Error, Result};

/// Panels per row of the grid (fewer when there are fewer panels).
pub const COLUMNS: usize = 3;
/// Size of one panel in pixels (SVG user units): width, height.
pub const PANEL_SIZE: (u32, u32) = (480, 400);

/// The font PNG text is drawn with (see `assets/fonts/README.md`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");
/// The family every text in a plot asks for: the name the bundled font is
/// registered under, and the generic family an SVG viewer resolves.
const FAMILY: &str = "sans-serif";

/// Image format of a plot, chosen by the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    /// `.svg`: vector, text as text.
    Svg,
    /// `.png`: a bitmap.
    Png,
}

impl PlotFormat {
    /// The format `path`'s extension names: `.svg` or `.png`, in any case.
    /// Any other extension, or none, is an [`Error::Arg`] naming the path
    /// and the accepted extensions.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext.to_ascii_lowercase().as_str() {
            "svg" => Ok(PlotFormat::Svg),
            "png" => Ok(PlotFormat::Png),
            _ => Err(Error::Arg(format!(
                "plot file `{}`: the extension must be .svg or .png (it chooses the format)",
                path.display()
            ))),
        }
    }
}

/// The score fields drawn when none are asked for: every field of `report`
/// in its order, except `n_units` when `ln_n_units` is there too (its
/// logarithm ranks the same, so τ and ρ are the same, and spreads the dots).
pub fn default_fields(report: &EvalReport) -> Vec<String> {
    let has_ln = report.fields.iter().any(|f| f.field == "ln_n_units");
    report
        .fields
        .iter()
        .filter(|f| !(has_ln && f.field == "n_units"))
        .map(|f| f.field.clone())
        .collect()
}

/// One panel: a field's report line and its dots.
#[derive(Debug, Clone, PartialEq)]
struct Panel<'a> {
    report: &'a FieldReport,
    /// (score, truth) of each joined row with a finite number in the field.
    points: Vec<(f64, f64)>,
    /// Joined rows not drawn: null (or missing) score, or a value that is not
    /// finite.
    left_out: usize,
}

impl Panel<'_> {
    /// `field: N=…, τ=…, ρ=…, k left out`, the numbers as in the table.
    fn title(&self) -> String {
        format!(
            "{}: N={}, τ={}, ρ={}, {} left out",
            self.report.field,
            self.report.n,
            format_correlation(self.report.kendall_tau_b),
            format_correlation(self.report.spearman_rho),
            self.left_out
        )
    }
}

/// Draws score against truth for `fields` (default: [`default_fields`]),
/// one panel each, to `path`, as SVG or PNG by its extension
/// ([`PlotFormat::from_path`]).
///
/// `table` and `truth` are what `report` was computed from
/// ([`super::evaluate_tables`]); the titles carry `report`'s numbers.
/// Errors: an extension other than `.svg`/`.png` or a field that is not a
/// score field of `report` ([`Error::Arg`]); no field to draw, or values too
/// large to put on an axis ([`Error::Data`]); the file cannot be written
/// ([`Error::Io`]). Nothing is written unless the whole plot is drawn.
pub fn plot(
    table: &ScoreTable,
    truth: &HashMap<String, f64>,
    report: &EvalReport,
    path: &Path,
    fields: Option<&[String]>,
) -> Result<()> {
    let format = PlotFormat::from_path(path)?;
    let fields = match fields {
        Some(f) => f.to_vec(),
        None => default_fields(report),
    };
    let panels = panels(table, truth, report, &fields)?;
    let bytes = match format {
        PlotFormat::Svg => render_svg(&panels, &report.target)?.into_bytes(),
        PlotFormat::Png => render_png(&panels, &report.target)?,
    };
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// The panels of `fields`, in that order (a field named twice is drawn once).
fn panels<'a>(
    table: &ScoreTable,
    truth: &HashMap<String, f64>,
    report: &'a EvalReport,
    fields: &[String],
) -> Result<Vec<Panel<'a>>> {
    if fields.is_empty() {
        return Err(Error::Data(if report.fields.is_empty() {
            "the scores file has no score field to plot".into()
        } else {
            "no score field given to plot".into()
        }));
    }
    let joined: Vec<(&[Option<f64>], f64)> = table
        .rows
        .iter()
        .filter_map(|r| truth.get(&r.arch).map(|&t| (r.values.as_slice(), t)))
        .collect();
    let mut panels: Vec<Panel<'a>> = Vec::with_capacity(fields.len());
    for field in fields {
        if panels.iter().any(|p| &p.report.field == field) {
            continue;
        }
        let unknown = || {
            let known: Vec<&str> = report.fields.iter().map(|f| f.field.as_str()).collect();
            Error::Arg(format!(
                "no score field `{field}` to plot; the score fields are: {}",
                known.join(", ")
            ))
        };
        let fr = report
            .fields
            .iter()
            .find(|f| &f.field == field)
            .ok_or_else(unknown)?;
        let k = table.field_index(field).ok_or_else(unknown)?;
        let points: Vec<(f64, f64)> = joined
            .iter()
            .filter_map(|(values, t)| values.get(k).copied().flatten().map(|x| (x, *t)))
            .filter(|(x, t)| x.is_finite() && t.is_finite())
            .collect();
        panels.push(Panel {
            report: fr,
            left_out: joined.len() - points.len(),
            points,
        });
    }
    Ok(panels)
}

/// Grid of `n` panels: (rows, columns).
fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, COLUMNS);
    (n.div_ceil(cols), cols)
}

/// Size of the whole image for `n` panels, in pixels.
fn image_size(n: usize) -> Result<(u32, u32)> {
    let (rows, cols) = grid(n);
    let dim = |count: usize, each: u32| {
        u32::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(each))
            .ok_or_else(|| Error::Data(format!("{n} panels are too many to draw")))
    };
    Ok((dim(cols, PANEL_SIZE.0)?, dim(rows, PANEL_SIZE.1)?))
}

/// The axis range that shows `values` with a 5 % margin on either side.
///
/// A range too narrow for its magnitude is widened (plotters' tick search
/// never ends on a span of a few ulps), and a span that overflows is an
/// error, since no axis can show it.
fn axis_range(values: impl Iterator<Item = f64>, what: &str) -> Result<(f64, f64)> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        // No dots: an empty panel still gets axes.
        return Ok((0.0, 1.0));
    }
    let span = hi - lo;
    let magnitude = lo.abs().max(hi.abs());
    let (lo, hi) = if span > 1e-9 * magnitude && span > 1e-200 {
        (lo - 0.05 * span, hi + 0.05 * span)
    } else {
        // One value (or a cluster indistinguishable from one): centre it.
        let mid = lo + span / 2.0;
        let pad = if mid.abs() > 1e-200 {
            0.05 * mid.abs()
        } else {
            0.5
        };
        (mid - pad, mid + pad)
    };
    if (hi - lo).is_finite() {
        Ok((lo, hi))
    } else {
        Err(Error::Data(format!(
            "{what}: values span more than an axis can show"
        )))
    }
}

/// Radius and opacity of a dot: smaller and fainter when there are many,
/// so that where they crowd still shows.
fn dot_style(n: usize) -> (u32, f64) {
    if n > 1000 {
        (2, 0.25)
    } else {
        (3, 0.6)
    }
}

/// Registers the bundled font under [`FAMILY`] (once per process): plotters
/// measures text with it for either format and draws PNG text with it.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Internal(
            "the font compiled into dasnas cannot be read".into(),
        ))
    }
}

/// The plot as an SVG document.
fn render_svg(panels: &[Panel<'_>], target: &str) -> Result<String> {
    register_font()?;
    let size = image_size(panels.len())?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(&root, panels, target)?;
    }
    Ok(svg)
}

/// The plot as a PNG file's bytes (8-bit RGB).
fn render_png(panels: &[Panel<'_>], target: &str) -> Result<Vec<u8>> {
    register_font()?;
    let (w, h) = image_size(panels.len())?;
    let too_big = || Error::Data(format!("a {w}×{h} image is too large"));
    let len = (w as usize)
        .checked_mul(h as usize)
        .and_then(|p| p.checked_mul(RGBPixel::PIXEL_SIZE))
        .ok_or_else(too_big)?;
    let mut pixels = vec![0u8; len];
    {
        let backend = BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut pixels, (w, h))
            .map_err(|e| Error::Data(format!("cannot draw a {w}×{h} image: {e}")))?;
        draw(&backend.into_drawing_area(), panels, target)?;
    }
    let encoding = |e: png::EncodingError| Error::Data(format!("cannot encode the PNG: {e}"));
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(encoding)?;
    writer.write_image_data(&pixels).map_err(encoding)?;
    writer.finish().map_err(encoding)?;
    Ok(out)
}

/// A tick's label, short and readable: thousands, millions and billions
/// as `k`, `M` and `G` (`150M`, not `150000000.0`), at most two decimals,
/// no trailing zeros.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    let (scaled, unit) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if scaled.abs() >= 100.0 || scaled == 0.0 {
        0
    } else if scaled.abs() >= 0.1 {
        2
    } else {
        4
    };
    let mut s = format!("{scaled:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" {
        s = "0".into();
    }
    s + unit
}

/// Draws the panels on `root`, in a grid, row by row.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[Panel<'_>],
    target: &str,
) -> Result<()> {
    let failed =
        |e: DrawingAreaErrorKind<DB::ErrorType>| Error::Data(format!("cannot draw the plot: {e}"));
    root.fill(&WHITE).map_err(failed)?;
    let areas = root.split_evenly(grid(panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        let field = &panel.report.field;
        let x = axis_range(panel.points.iter().map(|p| p.0), field)?;
        let y = axis_range(panel.points.iter().map(|p| p.1), target)?;
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title(), (FAMILY, 19))
            .margin(12)
            // Room for the last x tick's label, centred on the right edge.
            .margin_right(30)
            .x_label_area_size(42)
            .y_label_area_size(58)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)
            .map_err(failed)?;
        chart
            .configure_mesh()
            .x_desc(field.as_str())
            .y_desc(target)
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|v| tick_label(*v))
            .y_label_formatter(&|v| tick_label(*v))
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .light_line_style(WHITE)
            .draw()
            .map_err(failed)?;
        let (radius, opacity) = dot_style(panel.points.len());
        let dot = BLUE.mix(opacity).filled();
        chart
            .draw_series(panel.points.iter().map(|&p| Circle::new(p, radius, dot)))
            .map_err(failed)?;
    }
    root.present().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::join::{evaluate_tables, scores_from_reader, NullPolicy};

    const SCORES: &str = "\
{\"arch\":\"a\",\"wot\":1.0,\"n_units\":10,\"ln_n_units\":2.3,\"ms\":5}
{\"arch\":\"b\",\"wot\":2.0,\"n_units\":20,\"ln_n_units\":3.0}
{\"arch\":\"c\",\"wot\":null,\"n_units\":30,\"ln_n_units\":3.4}
{\"arch\":\"d\",\"wot\":4.0,\"n_units\":40,\"ln_n_units\":3.7}
{\"arch\":\"z\",\"wot\":9.0,\"n_units\":50,\"ln_n_units\":3.9}
";

    fn inputs() -> (ScoreTable, HashMap<String, f64>) {
        let table = scores_from_reader(SCORES.as_bytes(), "s.jsonl").unwrap();
        let truth = [("a", 50.0), ("b", 60.0), ("c", 70.0), ("d", 80.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        (table, truth)
    }

    #[test]
    fn tick_labels_are_short() {
        for (v, want) in [
            (150_000_000.0, "150M"),
            (1_500_000.0, "1.5M"),
            (2_500_000_000.0, "2.5G"),
            (12_000.0, "12k"),
            (1464.39, "1464"),
            (93.25, "93.25"),
            (0.5, "0.5"),
            (0.0, "0"),
            (-3.0, "-3"),
            (0.001_23, "0.0012"),
        ] {
            assert_eq!(tick_label(v), want, "{v}");
        }
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            PlotFormat::from_path(Path::new("a/b.SVG")).unwrap(),
            PlotFormat::Svg
        );
        assert_eq!(
            PlotFormat::from_path(Path::new("b.png")).unwrap(),
            PlotFormat::Png
        );
        for bad in ["out.txt", "out", "svg", "out.svg.gz"] {
            let e = PlotFormat::from_path(Path::new(bad)).unwrap_err();
            assert!(matches!(e, Error::Arg(_)), "{bad}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(bad) && msg.contains(".svg or .png"), "{msg}");
        }
    }

    #[test]
    fn n_units_is_dropped_only_beside_ln_n_units() {
        let (table, truth) = inputs();
        let report = evaluate_tables(&table, &truth, "acc", NullPolicy::Lowest);
        assert_eq!(default_fields(&report), ["wot", "ln_n_units"]);
        let mut without_ln = report.clone();
        without_ln.fields.retain(|f| f.field != "ln_n_units");
        assert_eq!(default_fields(&without_ln), ["wot", "n_units"]);
    }

    #[test]
    fn panels_leave_out_nulls_and_carry_the_report_numbers() {
        let (table, truth) = inputs();
        let report = evaluate_tables(&table, &truth, "acc", NullPolicy::Lowest);
        let fields = ["ln_n_units".to_string(), "wot".into(), "ln_n_units".into()];
        let panels = panels(&table, &truth, &report, &fields).unwrap();
        assert_eq!(panels.len(), 2, "a repeated field is drawn once");
        let wot = &panels[1];
        // c is null in wot; z is not in the truth (not joined, not counted).
        assert_eq!(wot.points, [(1.0, 50.0), (2.0, 60.0), (4.0, 80.0)]);
        assert_eq!(wot.left_out, 1);
        let r = &report.fields[0];
        assert_eq!(r.field, "wot");
        let want = format!(
            "wot: N=4, τ={:.4}, ρ={:.4}, 1 left out",
            r.kendall_tau_b.unwrap(),
            r.spearman_rho.unwrap()
        );
        assert_eq!(wot.title(), want);
        assert_eq!(panels[0].left_out, 0);
        assert_eq!(
            panels[0].title(),
            "ln_n_units: N=4, τ=1.0000, ρ=1.0000, 0 left out"
        );

        let e = super::panels(&table, &truth, &report, &["nope".into()]).unwrap_err();
        assert!(matches!(e, Error::Arg(_)), "{e}");
        assert!(e.to_string().contains("`nope`") && e.to_string().contains("wot, n_units"));
        assert!(matches!(
            super::panels(&table, &truth, &report, &[]),
            Err(Error::Data(_))
        ));
    }

    #[test]
    fn axis_ranges_are_finite_and_never_empty() {
        let r = |v: &[f64]| axis_range(v.iter().copied(), "x").unwrap();
        assert_eq!(r(&[]), (0.0, 1.0));
        let (lo, hi) = r(&[0.0, 10.0]);
        assert!((lo + 0.5).abs() < 1e-12 && (hi - 10.5).abs() < 1e-12);
        assert_eq!(r(&[0.0, 0.0]), (-0.5, 0.5));
        let (lo, hi) = r(&[3.0, 3.0]);
        assert!(lo < 3.0 && hi > 3.0);
        // A span of a few ulps is widened like a single value.
        let (lo, hi) = r(&[1e17, 1e17 + 32.0]);
        assert!(hi - lo > 1e15);
        assert!(axis_range([-1e308, 1e308].into_iter(), "x").is_err());
    }

    #[test]
    fn grid_has_up_to_three_columns() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(2), (1, 2));
        assert_eq!(grid(3), (1, 3));
        assert_eq!(grid(4), (2, 3));
        assert_eq!(grid(7), (3, 3));
    }

    #[test]
    fn svg_and_png_render() {
        let (table, truth) = inputs();
        let report = evaluate_tables(&table, &truth, "acc", NullPolicy::Lowest);
        let fields = default_fields(&report);
        let panels = panels(&table, &truth, &report, &fields).unwrap();
        let svg = render_svg(&panels, "acc").unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for p in &panels {
            assert!(svg.contains(&p.title()), "{}", p.title());
        }
        assert!(svg.contains("\nacc\n</text>"), "y axis label");
        let png = render_png(&panels, "acc").unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    }

    #[test]
    fn png_text_is_drawn() {
        // Text drawn with the bundled font leaves dark pixels where a blank
        // panel has none: the title band above the plotting area.
        let (table, truth) = inputs();
        let report = evaluate_tables(&table, &truth, "acc", NullPolicy::Lowest);
        let panels = panels(&table, &truth, &report, &["wot".into()]).unwrap();
        register_font().unwrap();
        let (w, h) = image_size(1).unwrap();
        let mut pixels = vec![0u8; (w * h * 3) as usize];
        {
            let backend =
                BitMapBackend::<RGBPixel>::with_buffer_and_format(&mut pixels, (w, h)).unwrap();
            draw(&backend.into_drawing_area(), &panels, "acc").unwrap();
        }
        let title_band = &pixels[(12 * w * 3) as usize..(34 * w * 3) as usize];
        let dark = title_band
            .chunks(3)
            .filter(|p| p.iter().all(|&c| c < 128))
            .count();
        assert!(dark > 100, "{dark} dark pixels in the title band");
    }
}
