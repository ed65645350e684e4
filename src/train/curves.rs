//! Learning curves: a run's per-epoch metrics drawn to an .svg or .png
//! file, the losses in one panel, the other metrics in a second and the
//! learning rate in a third when a schedule changes it.

use super::Sink;

/// Draws learning curves from a run's per-epoch metrics: the losses in one
/// panel, the other metrics (accuracy, RMSE) in a second.
pub(super) fn draw_curves(
    path: &std::path::Path,
    title: &str,
    history: &[(u64, Vec<(String, f64)>)],
    sink: &mut Sink,
) -> Result<(), String> {
    use crate::plot::{Figure, Panel, Series};
    let mut names: Vec<String> = Vec::new();
    for (_, rec) in history {
        for (m, _) in rec {
            if !names.contains(m) {
                names.push(m.clone());
            }
        }
    }
    let series = |keep: &dyn Fn(&str) -> bool| -> Vec<Series> {
        names
            .iter()
            .filter(|n| keep(n))
            .map(|n| Series {
                name: n.replace('_', " "),
                points: history
                    .iter()
                    .filter_map(|(e, rec)| {
                        rec.iter()
                            .find(|(m, _)| m == n)
                            .map(|(_, v)| (*e as f64, *v))
                    })
                    .collect(),
            })
            .collect()
    };
    let is_loss = |n: &str| n.ends_with("_loss");
    let mut panels = vec![Panel {
        y_label: "loss".into(),
        series: series(&is_loss),
    }];
    let others = series(&|n: &str| !is_loss(n) && n != "lr");
    if !others.is_empty() {
        let mut kinds: Vec<&str> = Vec::new();
        for n in names.iter().filter(|n| !is_loss(n) && *n != "lr") {
            let kind = match n.split_once('_').map(|x| x.1) {
                Some("acc") => "accuracy",
                Some("rmse") => "RMSE",
                Some("log_rmse") => "log RMSE",
                _ => "metric",
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        panels.push(Panel {
            y_label: kinds.join(", "),
            series: others,
        });
    }
    // The learning rate, in a panel of its own when a schedule moved it.
    let lr = series(&|n: &str| n == "lr");
    let moved = lr
        .iter()
        .any(|s| s.points.iter().any(|p| p.1 != s.points[0].1));
    if moved {
        panels.push(Panel {
            y_label: "learning rate".into(),
            series: lr,
        });
    }
    let fig = Figure {
        title: title.to_string(),
        x_label: "epoch".into(),
        panels,
    };
    crate::plot::figure(path, &fig)?;
    sink.human(&format!("learning curves drawn to {}", path.display()));
    Ok(())
}
