//! Pictures: learning curves (`dlc train --plot`) and grids of samples
//! (`dlc data --show N --out F.png`), drawn with plotters into memory and
//! written atomically as SVG or PNG (chosen by the file's extension).
//!
//! Text uses a subset of DejaVu Sans compiled into the binary (see
//! `plot/FONT-LICENSE`), so a picture has its labels on any machine, with or
//! without system fonts.

use std::path::Path;

use image::ImageEncoder as _;
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("plot/DejaVuSans-subset.ttf");
const FAMILY: &str = "sans-serif";

/// matplotlib's first colours, so the curves look as they do in d2l.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn register_font() -> Result<(), String> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| register_font_bytes(FAMILY, FONT));
    if ok {
        Ok(())
    } else {
        Err("the built-in font cannot be read".into())
    }
}

fn register_font_bytes(family: &str, bytes: &'static [u8]) -> bool {
    plotters::style::register_font(family, FontStyle::Normal, bytes).is_ok()
}

/// One named line: (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: a y-axis label and its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Learning curves: panels side by side sharing the x-axis label.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub panels: Vec<Panel>,
}

/// One image of a grid: `h × w` gray values (or `3 × h × w` colour planes)
/// and its caption.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub values: Vec<f64>,
    pub caption: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Svg,
    Png,
}

fn format_of(path: &Path) -> Result<Format, String> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("png") => Ok(Format::Png),
        _ => Err(format!(
            "cannot draw {}: the picture's file name must end in .svg or .png",
            path.display()
        )),
    }
}

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing failed: {e}")
}

/// Draws with `draw` on a `w × h` canvas and writes it to `path` as SVG or
/// PNG, atomically.
fn render(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl Fn(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
    draw_png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    register_font()?;
    let bytes = match format_of(path)? {
        Format::Svg => {
            let mut s = String::new();
            {
                let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
                root.fill(&WHITE).map_err(err)?;
                draw(&root)?;
                root.present().map_err(err)?;
            }
            s.into_bytes()
        }
        Format::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                root.fill(&WHITE).map_err(err)?;
                draw_png(&root)?;
                root.present().map_err(err)?;
            }
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(&rgb, w, h, image::ColorType::Rgb8)
                .map_err(err)?;
            png
        }
    };
    crate::output::write(path, &[], &bytes)
}

/// Writes learning curves to `path` (.svg or .png).
pub fn figure(path: &Path, fig: &Figure) -> Result<(), String> {
    let panels = fig.panels.len().max(1) as u32;
    render(
        path,
        (520 * panels, 400),
        |root| draw_figure(root, fig),
        |root| draw_figure(root, fig),
    )
}

/// The y range of a panel's points, padded so lines don't sit on the frame.
fn y_range(p: &Panel) -> (f64, f64) {
    let ys = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|q| q.1))
        .filter(|y| y.is_finite());
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.08
    } else {
        lo.abs().max(1.0) * 0.1
    };
    (lo - pad, hi + pad)
}

fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let root = root
        .titled(&fig.title, (FAMILY, 20).into_font())
        .map_err(err)?;
    let areas = root.split_evenly((1, fig.panels.len().max(1)));
    let mut colour = 0;
    for (area, panel) in areas.iter().zip(&fig.panels) {
        let xs = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| q.0));
        let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        let (x0, x1) = if !x0.is_finite() {
            (0.0, 1.0)
        } else if x1 > x0 {
            (x0, x1)
        } else {
            (x0 - 0.5, x0 + 0.5)
        };
        let (y0, y1) = y_range(panel);
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let whole = x1 - x0 <= 12.0 && x0.fract() == 0.0;
        let x_labels = if whole { (x1 - x0) as usize + 1 } else { 8 };
        chart
            .configure_mesh()
            .x_desc(&fig.x_label)
            .y_desc(&panel.y_label)
            .x_labels(x_labels)
            .y_labels(8)
            .x_label_formatter(&|v| {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            })
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 15))
            .max_light_lines(1)
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(err)?;
        for s in &panel.series {
            let c = PALETTE[colour % PALETTE.len()];
            colour += 1;
            let style = ShapeStyle::from(&c).stroke_width(2);
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied().filter(|q| q.1.is_finite()),
                    style,
                ))
                .map_err(err)?
                .label(&s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
        }
        // The legend goes where the curves end farthest from: rising curves
        // (accuracy) get it below, falling ones (loss) above.
        let ends: Vec<f64> = panel
            .series
            .iter()
            .filter_map(|s| s.points.last().map(|q| (q.1 - y0) / (y1 - y0)))
            .filter(|v| v.is_finite())
            .collect();
        let high = !ends.is_empty() && ends.iter().sum::<f64>() / ends.len() as f64 > 0.5;
        let corner = if high {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        };
        chart
            .configure_series_labels()
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .position(corner)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Writes a grid of images with their captions to `path` (.png or .svg).
pub fn image_grid(path: &Path, title: &str, images: &[Image]) -> Result<(), String> {
    let n = images.len().max(1);
    let cols = n.min(8);
    let rows = n.div_ceil(cols);
    let (h, w) = images
        .iter()
        .fold((1, 1), |(h, w), im| (h.max(im.h), w.max(im.w)));
    // Each source pixel becomes a square of `scale` pixels; small images grow.
    let scale = (112 / h.max(w)).clamp(1, 8);
    let cell_w = (w * scale).max(96) + 8;
    let cell_h = h * scale + 26;
    let size = ((cols * cell_w) as u32, (rows * cell_h + 36) as u32);
    render(
        path,
        size,
        |root| draw_grid(root, title, images, cols, scale),
        |root| draw_grid(root, title, images, cols, scale),
    )
}

fn draw_grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    images: &[Image],
    cols: usize,
    scale: usize,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let root = root.titled(title, (FAMILY, 18).into_font()).map_err(err)?;
    let rows = images.len().div_ceil(cols).max(1);
    let cells = root.split_evenly((rows, cols));
    for (cell, im) in cells.iter().zip(images) {
        let (cw, _) = cell.dim_in_pixel();
        let left = (cw as i32 - (im.w * scale) as i32) / 2;
        let plane = im.h * im.w;
        // Each image is stretched to its own range, so standardized or raw
        // pixels draw as well as pixels in [0, 1].
        let (lo, hi) = im
            .values
            .iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(*v), b.max(*v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let level = |v: f64| -> u8 {
            if v.is_finite() {
                (((v - lo) / span) * 255.0).round().clamp(0.0, 255.0) as u8
            } else {
                0
            }
        };
        for y in 0..im.h {
            for x in 0..im.w {
                let at = |c: usize| im.values.get(c * plane + y * im.w + x).copied();
                let colour = if im.channels == 3 {
                    RGBColor(
                        level(at(0).unwrap_or(0.0)),
                        level(at(1).unwrap_or(0.0)),
                        level(at(2).unwrap_or(0.0)),
                    )
                } else {
                    let g = level(at(0).unwrap_or(0.0));
                    RGBColor(g, g, g)
                };
                let (px, py) = (left + (x * scale) as i32, (y * scale) as i32);
                cell.draw(&Rectangle::new(
                    [(px, py), (px + scale as i32, py + scale as i32)],
                    colour.filled(),
                ))
                .map_err(err)?;
            }
        }
        let style =
            TextStyle::from((FAMILY, 14).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ));
        cell.draw(&Text::new(
            im.caption.clone(),
            (cw as i32 / 2, (im.h * scale) as i32 + 4),
            style,
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// The texts of an SVG's `<text>` elements, trimmed: what a picture says
/// (its tests check titles, axis labels and legends with it).
pub fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..t.find("</text>")?];
            Some(body.trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dlc-plot-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        dir.join(name)
    }

    fn fig() -> Figure {
        let line = |name: &str, f: fn(f64) -> f64| Series {
            name: name.into(),
            points: (1..=10).map(|e| (e as f64, f(e as f64))).collect(),
        };
        Figure {
            title: "run main".into(),
            x_label: "epoch".into(),
            panels: vec![
                Panel {
                    y_label: "loss".into(),
                    series: vec![line("train loss", |e| 1.0 / e)],
                },
                Panel {
                    y_label: "accuracy".into(),
                    series: vec![
                        line("train acc", |e| 1.0 - 0.5 / e),
                        line("valid acc", |e| 0.9 - 0.5 / e),
                    ],
                },
            ],
        }
    }

    #[test]
    fn an_svg_holds_its_axis_labels_legend_and_lines() {
        let p = tmp("curves.svg");
        figure(&p, &fig()).expect("drawn");
        let svg = std::fs::read_to_string(&p).expect("written");
        let texts = svg_texts(&svg);
        for text in [
            "epoch",
            "loss",
            "accuracy",
            "train acc",
            "valid acc",
            "run main",
        ] {
            assert!(
                texts.iter().any(|t| t == text),
                "no text {text} in {texts:?}"
            );
        }
        // Three curves: one polyline per series (the legend's marks are
        // polylines too, so at least three).
        assert!(svg.matches("<polyline").count() >= 3);
    }

    #[test]
    fn a_png_is_a_png_with_ink_on_it() {
        let p = tmp("curves.png");
        figure(&p, &fig()).expect("drawn");
        let bytes = std::fs::read(&p).expect("written");
        assert_eq!(&bytes[1..4], b"PNG");
        let img = image::load_from_memory(&bytes).expect("decodes").to_rgb8();
        assert_eq!(img.dimensions(), (1040, 400));
        // The curves' blue is on the canvas.
        assert!(img.pixels().any(|p| p.0 == [31, 119, 180]));
    }

    #[test]
    fn an_unknown_extension_is_refused_before_anything_is_written() {
        let p = tmp("curves.jpg");
        let e = figure(&p, &fig()).expect_err("refused");
        assert!(e.contains(".svg or .png"), "{e}");
        assert!(!p.exists());
    }

    #[test]
    fn a_grid_draws_every_pixel_and_caption() {
        let images: Vec<Image> = (0..3)
            .map(|k| Image {
                channels: 1,
                h: 2,
                w: 2,
                values: vec![0.0, 1.0, 1.0, k as f64 / 2.0],
                caption: format!("class {k}"),
            })
            .collect();
        let p = tmp("grid.svg");
        image_grid(&p, "samples", &images).expect("drawn");
        let svg = std::fs::read_to_string(&p).expect("written");
        let texts = svg_texts(&svg);
        for k in 0..3 {
            assert!(texts.contains(&format!("class {k}")), "{texts:?}");
        }
        let png = tmp("grid.png");
        image_grid(&png, "samples", &images).expect("drawn");
        let img = image::open(&png).expect("decodes").to_rgb8();
        // Black (0) and white (1) pixels both appear.
        assert!(img.pixels().any(|p| p.0 == [0, 0, 0]));
    }
}
