//! Line and scatter plots with error bars, log axes, a legend and a residual panel.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::RelativeSize;

use super::{plot_err, write_png_atomic, Axis, Ticked, FONT, PALETTE};
use xpcs_core::error::Result;

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesStyle {
    /// Markers (with error bars when given).
    Points,
    /// A line through the points in order (e.g. a fit curve).
    Line,
    /// A dashed line.
    Dashed,
}

/// One data series.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend entry ("" = none).
    pub label: String,
    /// Abscissae (data units).
    pub x: Vec<f64>,
    /// Ordinates (data units).
    pub y: Vec<f64>,
    /// Optional 1σ errors of y.
    pub y_err: Option<Vec<f64>>,
    /// Drawing style.
    pub style: SeriesStyle,
    /// Colour (None = next palette colour).
    pub color: Option<RGBColor>,
}

impl Series {
    /// Markers.
    pub fn points(label: &str, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series {
            label: label.into(),
            x,
            y,
            y_err: None,
            style: SeriesStyle::Points,
            color: None,
        }
    }

    /// A solid line.
    pub fn line(label: &str, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series {
            style: SeriesStyle::Line,
            ..Series::points(label, x, y)
        }
    }

    /// Adds 1σ error bars.
    pub fn with_errors(mut self, y_err: Vec<f64>) -> Self {
        self.y_err = Some(y_err);
        self
    }

    /// Sets the colour.
    pub fn with_color(mut self, c: RGBColor) -> Self {
        self.color = Some(c);
        self
    }

    /// Sets the style.
    pub fn with_style(mut self, s: SeriesStyle) -> Self {
        self.style = s;
        self
    }
}

/// A residual panel under the main plot: normalised residuals at the same x.
#[derive(Clone, Debug)]
pub struct Residuals {
    /// y-axis label, e.g. "(g2 − fit)/σ".
    pub y_label: String,
    /// Abscissae (same units as the main plot).
    pub x: Vec<f64>,
    /// Residuals.
    pub r: Vec<f64>,
}

/// An x-y plot.
#[derive(Clone, Debug)]
pub struct XyPlot {
    /// Title (top).
    pub title: String,
    /// x-axis label with units, e.g. "delay (s)".
    pub x_label: String,
    /// y-axis label with units.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The series, drawn in order.
    pub series: Vec<Series>,
    /// Optional residual panel.
    pub residuals: Option<Residuals>,
    /// Image size in pixels.
    pub size: (u32, u32),
    /// Where the legend goes (default upper right).
    pub legend_position: SeriesLabelPosition,
    /// A note drawn in red at the lower left of the plot area, wrapped (e.g. a fit failure).
    pub note: Option<String>,
}

impl XyPlot {
    /// An empty plot of 1000 × 700 pixels.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        XyPlot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y: false,
            series: Vec::new(),
            residuals: None,
            size: (1000, 700),
            legend_position: SeriesLabelPosition::UpperRight,
            note: None,
        }
    }

    /// Adds a note (drawn in red inside the plot area, lower left).
    pub fn with_note(mut self, note: &str) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Moves the legend (e.g. away from rising data).
    pub fn legend_at(mut self, p: SeriesLabelPosition) -> Self {
        self.legend_position = p;
        self
    }

    /// Sets log axes.
    pub fn log_axes(mut self, log_x: bool, log_y: bool) -> Self {
        self.log_x = log_x;
        self.log_y = log_y;
        self
    }

    /// Adds a series.
    pub fn with(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }

    /// Adds a residual panel.
    pub fn with_residuals(mut self, y_label: &str, x: Vec<f64>, r: Vec<f64>) -> Self {
        self.residuals = Some(Residuals {
            y_label: y_label.into(),
            x,
            r,
        });
        self
    }

    /// Renders to `path` (must end in .png), atomically.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        let (x_axis, y_axis) = self.axes();
        write_png_atomic(path, self.size, |root| {
            self.draw(root, &x_axis, &y_axis, path)
        })
    }

    /// The x axis covering every series and the residuals, and the y axis covering every
    /// series with its error bars.
    fn axes(&self) -> (Axis, Axis) {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.x.iter().copied())
            .chain(self.residuals.iter().flat_map(|r| r.x.iter().copied()));
        let x_axis = Axis::fit(xs, self.log_x);
        let ys = self.series.iter().flat_map(|s| {
            let e = s.y_err.clone().unwrap_or_else(|| vec![0.0; s.y.len()]);
            s.y.iter()
                .zip(e)
                .flat_map(|(y, e)| {
                    let e = if e.is_finite() { e } else { 0.0 };
                    [y - e, y + e]
                })
                .collect::<Vec<_>>()
        });
        let y_axis = Axis::fit(ys, self.log_y);
        (x_axis, y_axis)
    }

    /// Draws the plot on `root`: title, main panel (grid, series, legend, note) and the
    /// residual panel; `path` names the file in errors.
    fn draw(
        &self,
        root: &DrawingArea<BitMapBackend, Shift>,
        x_axis: &Axis,
        y_axis: &Axis,
        path: &Path,
    ) -> Result<()> {
        let err = |e| plot_err(path, e);
        // A top margin so that tall glyphs (τ, Å) of the title are not clipped.
        let root = root
            .margin(12, 0, 0, 0)
            .titled(&self.title, (FONT, 26).into_font().color(&BLACK))
            .map_err(err)?;
        let (top, bottom) = match &self.residuals {
            Some(_) => {
                let (t, b) = root.split_vertically(RelativeSize::Height(0.72));
                (t, Some(b))
            }
            None => (root, None),
        };
        let x_range = x_axis.coord();
        let y_range = y_axis.coord();
        let mut chart = ChartBuilder::on(&top)
            .margin_left(10)
            .margin_right(30)
            .margin_top(10)
            .x_label_area_size(if bottom.is_some() { 10 } else { 60 })
            .y_label_area_size(95)
            .build_cartesian_2d(x_range, y_range)
            .map_err(err)?;
        self.draw_mesh(&mut chart, x_axis, y_axis, bottom.is_none(), path)?;

        let mut any_label = false;
        for (k, s) in self.series.iter().enumerate() {
            if draw_series(&mut chart, k, s, x_axis, y_axis, path)? {
                any_label = true;
            }
        }
        if any_label {
            chart
                .configure_series_labels()
                .position(self.legend_position.clone())
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(160, 160, 160))
                .label_font((FONT, 17))
                .draw()
                .map_err(err)?;
        }

        if let Some(note) = &self.note {
            draw_note(&chart, note, path)?;
        }

        if let (Some(area), Some(res)) = (bottom, &self.residuals) {
            self.draw_residuals(&area, res, x_axis, path)?;
        }
        Ok(())
    }

    /// Draws the main panel's grid, tick labels and axis titles (the x ones when `show_x`).
    fn draw_mesh(
        &self,
        chart: &mut Chart,
        x_axis: &Axis,
        y_axis: &Axis,
        show_x: bool,
        path: &Path,
    ) -> Result<()> {
        let xa = x_axis.clone();
        let ya = y_axis.clone();
        let x_fmt = move |v: &f64| if show_x { xa.label(*v) } else { String::new() };
        let y_fmt = move |v: &f64| ya.label(*v);
        let mut mesh = chart.configure_mesh();
        mesh.bold_line_style(RGBColor(225, 225, 225))
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style((FONT, 17))
            .axis_desc_style((FONT, 20))
            .y_desc(self.y_label.as_str());
        if show_x {
            mesh.x_desc(self.x_label.as_str());
        }
        mesh.draw().map_err(|e| plot_err(path, e))
    }

    /// Draws the residual panel on `area`: the residuals `res` against x, a line at 0 and a
    /// symmetric y range of at least ±3.
    fn draw_residuals(
        &self,
        area: &DrawingArea<BitMapBackend, Shift>,
        res: &Residuals,
        x_axis: &Axis,
        path: &Path,
    ) -> Result<()> {
        let err = |e| plot_err(path, e);
        let rmax = res
            .r
            .iter()
            .filter(|v| v.is_finite())
            .fold(3.0f64, |m, v| m.max(v.abs()))
            * 1.1;
        let ra = Axis::with_range(-rmax, rmax, false);
        let x_range = x_axis.coord();
        let y_range = ra.coord();
        let mut rc = ChartBuilder::on(area)
            .margin_left(10)
            .margin_right(30)
            .margin_top(5)
            .x_label_area_size(60)
            .y_label_area_size(95)
            .build_cartesian_2d(x_range, y_range)
            .map_err(err)?;
        let xa = x_axis.clone();
        let x_fmt = move |v: &f64| xa.label(*v);
        let y_fmt = move |v: &f64| ra.label(*v);
        rc.configure_mesh()
            .bold_line_style(RGBColor(225, 225, 225))
            .light_line_style(TRANSPARENT)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .y_labels(5)
            .label_style((FONT, 17))
            .axis_desc_style((FONT, 20))
            .x_desc(self.x_label.as_str())
            .y_desc(res.y_label.as_str())
            .draw()
            .map_err(err)?;
        rc.draw_series(std::iter::once(PathElement::new(
            vec![(x_axis.lo, 0.0), (x_axis.hi, 0.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(err)?;
        let color = PALETTE[0];
        rc.draw_series(res.x.iter().zip(&res.r).filter_map(|(&x, &r)| {
            let px = x_axis.map(x)?;
            r.is_finite()
                .then(|| Circle::new((px, r), 3, color.filled()))
        }))
        .map_err(err)?;
        Ok(())
    }
}

/// The main panel of an [`XyPlot`]: plot coordinates (log10 of the data on a log axis).
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Ticked, Ticked>>;

/// Draws series `k` (colour: its own or the palette's `k`-th) on `chart` with its legend
/// entry; true when it has a label.
fn draw_series<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    k: usize,
    s: &Series,
    x_axis: &Axis,
    y_axis: &Axis,
    path: &Path,
) -> Result<bool> {
    let err = |e| plot_err(path, e);
    let color = s.color.unwrap_or(PALETTE[k % PALETTE.len()]);
    // Points in plot space; non-finite values (and ≤ 0 on log axes) are skipped.
    let pts: Vec<(f64, f64)> =
        s.x.iter()
            .zip(&s.y)
            .filter_map(|(&x, &y)| Some((x_axis.map(x)?, y_axis.map(y)?)))
            .collect();
    let anno = match s.style {
        SeriesStyle::Points => {
            if s.y_err.is_some() {
                chart
                    .draw_series(error_bars(s, color, x_axis, y_axis))
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
                )
                .map_err(err)?
        }
        SeriesStyle::Line => chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(3)))
            .map_err(err)?,
        SeriesStyle::Dashed => chart
            .draw_series(DashedLineSeries::new(
                pts.iter().copied(),
                10,
                6,
                color.stroke_width(2),
            ))
            .map_err(err)?,
    };
    if s.label.is_empty() {
        return Ok(false);
    }
    let style = s.style;
    anno.label(s.label.as_str())
        .legend(move |(x, y)| -> DynElement<'static, _, _> {
            match style {
                SeriesStyle::Points => Circle::new((x + 12, y), 5, color.filled()).into_dyn(),
                _ => PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)).into_dyn(),
            }
        });
    Ok(true)
}

/// The 1σ error bars of the points of `s` in plot space, with caps 0.4 % of the x range wide
/// (a bar reaching ≤ 0 on a log axis is clipped at the bottom).
fn error_bars(
    s: &Series,
    color: RGBColor,
    x_axis: &Axis,
    y_axis: &Axis,
) -> Vec<PathElement<(f64, f64)>> {
    let cap = 0.004 * (x_axis.hi - x_axis.lo);
    s.x.iter()
        .zip(&s.y)
        .zip(s.y_err.as_ref().into_iter().flatten())
        .filter_map(|((&x, &y), &e)| {
            let px = x_axis.map(x)?;
            if !e.is_finite() || y_axis.map(y).is_none() {
                return None;
            }
            // A log axis clips the lower end of a bar that reaches ≤ 0.
            let lo = y_axis.map(y - e).unwrap_or(y_axis.lo);
            let hi = y_axis.map(y + e)?;
            Some([
                PathElement::new(vec![(px, lo), (px, hi)], color.stroke_width(1)),
                PathElement::new(vec![(px - cap, lo), (px + cap, lo)], color.stroke_width(1)),
                PathElement::new(vec![(px - cap, hi), (px + cap, hi)], color.stroke_width(1)),
            ])
        })
        .flatten()
        .collect()
}

/// Draws `note` in red, wrapped at 80 characters, at the lower left of the plotting area.
fn draw_note(chart: &Chart, note: &str, path: &Path) -> Result<()> {
    // Coordinates relative to the plotting area (lower left, above the axis).
    let area = chart.plotting_area().strip_coord_spec();
    let h = area.dim_in_pixel().1 as i32;
    let style = (FONT, 17).into_font().color(&RGBColor(190, 0, 0));
    let lines = wrap(note, 80);
    let n = lines.len() as i32;
    for (k, line) in lines.iter().enumerate() {
        let y = h - 10 - 22 * (n - k as i32);
        area.draw_text(line, &style, (12, y))
            .map_err(|e| plot_err(path, e))?;
    }
    Ok(())
}

/// Greedy word wrap at `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}
