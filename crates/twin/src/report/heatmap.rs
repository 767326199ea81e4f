//! Heatmaps with a colour bar (two-time maps), with optional overlaid lines (age cuts).

use std::path::Path;

use ndarray::Array2;
use plotters::prelude::*;
use plotters::style::RelativeSize;

use super::{plot_err, viridis, write_png_atomic, Axis, FONT, PALETTE};
use xpcs_core::error::{Error, Result};

/// A polyline drawn over the map, in data units (e.g. an age cut t1 + t2 = 2·age).
#[derive(Clone, Debug)]
pub struct Overlay {
    /// Legend entry ("" = none).
    pub label: String,
    /// Vertices (x, y) in data units.
    pub points: Vec<(f64, f64)>,
}

/// A map drawn cell by cell, `data[[ix, iy]]` at x index ix and y index iy; origin lower left.
#[derive(Clone, Debug)]
pub struct Heatmap {
    /// Title.
    pub title: String,
    /// The values; NaN cells are drawn light grey.
    pub data: Array2<f64>,
    /// Data-unit x of the first and last cell centres.
    pub x_extent: (f64, f64),
    /// Data-unit y of the first and last cell centres.
    pub y_extent: (f64, f64),
    /// x-axis label with units.
    pub x_label: String,
    /// y-axis label with units.
    pub y_label: String,
    /// Colour-bar label with units.
    pub colorbar_label: String,
    /// Colour range; None = the 1st to 99th percentile of the finite values.
    pub range: Option<(f64, f64)>,
    /// Lines drawn on top.
    pub overlays: Vec<Overlay>,
    /// Image size in pixels.
    pub size: (u32, u32),
}

/// Largest number of cells drawn per axis: larger maps are block-averaged (NaN-aware).
const MAX_CELLS: usize = 500;

impl Heatmap {
    /// A heatmap of 960 × 800 pixels.
    pub fn new(title: &str, data: Array2<f64>, x_extent: (f64, f64), y_extent: (f64, f64)) -> Self {
        Heatmap {
            title: title.into(),
            data,
            x_extent,
            y_extent,
            x_label: String::new(),
            y_label: String::new(),
            colorbar_label: String::new(),
            range: None,
            overlays: Vec::new(),
            size: (960, 800),
        }
    }

    /// Sets the three labels (x, y, colour bar), each with units.
    pub fn labels(mut self, x: &str, y: &str, colorbar: &str) -> Self {
        self.x_label = x.into();
        self.y_label = y.into();
        self.colorbar_label = colorbar.into();
        self
    }

    /// Renders to `path` (must end in .png), atomically.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        let (nx, ny) = self.data.dim();
        if nx == 0 || ny == 0 {
            return Err(Error::invalid(
                path.display().to_string(),
                "heatmap of an empty map",
            ));
        }
        let (bx, by) = (nx.div_ceil(MAX_CELLS), ny.div_ceil(MAX_CELLS));
        let (cx, cy) = (nx.div_ceil(bx), ny.div_ceil(by));
        let mut cells = Array2::from_elem((cx, cy), f64::NAN);
        for i in 0..cx {
            for j in 0..cy {
                let (mut s, mut k) = (0.0, 0usize);
                for a in i * bx..((i + 1) * bx).min(nx) {
                    for b in j * by..((j + 1) * by).min(ny) {
                        let v = self.data[[a, b]];
                        if v.is_finite() {
                            s += v;
                            k += 1;
                        }
                    }
                }
                if k > 0 {
                    cells[[i, j]] = s / k as f64;
                }
            }
        }
        let (vmin, vmax) = match self.range {
            Some(r) => r,
            None => {
                let mut v: Vec<f64> = cells.iter().copied().filter(|x| x.is_finite()).collect();
                v.sort_by(f64::total_cmp);
                if v.is_empty() {
                    (0.0, 1.0)
                } else {
                    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
                    (q(0.01), q(0.99))
                }
            }
        };
        let (vmin, vmax) = if vmax > vmin {
            (vmin, vmax)
        } else {
            (vmin - 0.5, vmin + 0.5)
        };

        // Cell edges in data units: centres span the extents.
        let dx = if nx > 1 {
            (self.x_extent.1 - self.x_extent.0) / (nx - 1) as f64
        } else {
            1.0
        };
        let dy = if ny > 1 {
            (self.y_extent.1 - self.y_extent.0) / (ny - 1) as f64
        } else {
            1.0
        };
        let x0 = self.x_extent.0 - 0.5 * dx;
        let y0 = self.y_extent.0 - 0.5 * dy;
        let (x1, y1) = (x0 + nx as f64 * dx, y0 + ny as f64 * dy);
        let xa = Axis::with_range(x0, x1, false);
        let ya = Axis::with_range(y0, y1, false);
        let ca = Axis::with_range(vmin, vmax, false);

        write_png_atomic(path, self.size, |root| {
            let err = |e| plot_err(path, e);
            // A top margin so that tall glyphs (τ, Å) of the title are not clipped.
            let root = root
                .margin(12, 0, 0, 0)
                .titled(&self.title, (FONT, 26).into_font().color(&BLACK))
                .map_err(err)?;
            let (main, bar) = root.split_horizontally(RelativeSize::Width(0.84));
            let mut chart = ChartBuilder::on(&main)
                .margin(10)
                .x_label_area_size(60)
                .y_label_area_size(90)
                .build_cartesian_2d(xa.coord(), ya.coord())
                .map_err(err)?;
            let (xl, yl) = (xa.clone(), ya.clone());
            let xf = move |v: &f64| xl.label(*v);
            let yf = move |v: &f64| yl.label(*v);
            chart
                .configure_mesh()
                .disable_mesh()
                .x_label_formatter(&xf)
                .y_label_formatter(&yf)
                .label_style((FONT, 17))
                .axis_desc_style((FONT, 20))
                .x_desc(self.x_label.as_str())
                .y_desc(self.y_label.as_str())
                .draw()
                .map_err(err)?;
            let (wx, wy) = (bx as f64 * dx, by as f64 * dy);
            chart
                .draw_series(cells.indexed_iter().map(|((i, j), &v)| {
                    let color = if v.is_finite() {
                        viridis((v - vmin) / (vmax - vmin))
                    } else {
                        RGBColor(220, 220, 220)
                    };
                    let (ax, ay) = (x0 + i as f64 * wx, y0 + j as f64 * wy);
                    Rectangle::new(
                        [(ax, ay), ((ax + wx).min(x1), (ay + wy).min(y1))],
                        color.filled(),
                    )
                }))
                .map_err(err)?;
            let mut any = false;
            for (k, o) in self.overlays.iter().enumerate() {
                // White-outlined lines stay visible on every colour of the map.
                let c = PALETTE[(k + 1) % PALETTE.len()];
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        o.points.clone(),
                        WHITE.stroke_width(5),
                    )))
                    .map_err(err)?;
                let a = chart
                    .draw_series(std::iter::once(PathElement::new(
                        o.points.clone(),
                        c.stroke_width(3),
                    )))
                    .map_err(err)?;
                if !o.label.is_empty() {
                    any = true;
                    a.label(o.label.as_str()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3))
                    });
                }
            }
            if any {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .background_style(WHITE.mix(0.9))
                    .border_style(RGBColor(160, 160, 160))
                    .label_font((FONT, 16))
                    .draw()
                    .map_err(err)?;
            }

            // Colour bar: a thin chart with the value axis on the right.
            let mut cb = ChartBuilder::on(&bar)
                .margin_top(10)
                .margin_bottom(70)
                .margin_left(5)
                .margin_right(10)
                .right_y_label_area_size(95)
                .build_cartesian_2d(0.0..1.0, ca.coord())
                .map_err(err)?;
            let cl = ca.clone();
            let cf = move |v: &f64| cl.label(*v);
            cb.configure_mesh()
                .disable_mesh()
                .set_tick_mark_size(plotters::chart::LabelAreaPosition::Right, 6)
                .disable_x_axis()
                .y_label_formatter(&cf)
                .label_style((FONT, 17))
                .axis_desc_style((FONT, 20))
                .y_desc(self.colorbar_label.as_str())
                .draw()
                .map_err(err)?;
            let n = 256;
            cb.draw_series((0..n).map(|k| {
                let a = vmin + (vmax - vmin) * k as f64 / n as f64;
                let b = vmin + (vmax - vmin) * (k + 1) as f64 / n as f64;
                Rectangle::new(
                    [(0.0, a), (1.0, b)],
                    viridis((k as f64 + 0.5) / n as f64).filled(),
                )
            }))
            .map_err(err)?;
            Ok(())
        })
    }
}
