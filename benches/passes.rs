//! What the optimizer's passes buy in wall-clock time: `dlc train
//! programs/mlp.dl --json` with the passes and with `--no-opt`, alternating
//! in one run so that both see the same machine. Run with:
//!
//!     cargo bench --bench passes [-- ROUNDS EPOCHS PROGRAM]
//!
//! Prints every epoch's seconds, then the median of each and their ratio,
//! and the median of the per-round ratios. (Shared vCPUs drift by tens of
//! percent within minutes: a round's two runs are back to back, so their
//! ratio is the steadier figure.)

use std::process::Command;

fn epochs(program: &str, epochs: u32, flags: &[&str]) -> Vec<f64> {
    let out = Command::new(env!("CARGO_BIN_EXE_dlc"))
        .args(["train", program, "--json", "--quiet", "--epochs"])
        .arg(epochs.to_string())
        .args(flags)
        .output()
        .expect("dlc runs");
    assert!(
        out.status.success(),
        "dlc train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "epoch")
        .filter_map(|v| v["seconds"].as_f64())
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds: u32 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let n: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let root = env!("CARGO_MANIFEST_DIR");
    let default = format!("{root}/programs/mlp.dl");
    let program = args.get(2).map_or(default.as_str(), |s| s.as_str());
    let (mut opt, mut plain, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for r in 1..=rounds {
        // Which goes first alternates, so that a drift favours neither.
        let (a, b) = if r % 2 == 1 {
            let a = epochs(program, n, &[]);
            (a, epochs(program, n, &["--no-opt"]))
        } else {
            let b = epochs(program, n, &["--no-opt"]);
            (epochs(program, n, &[]), b)
        };
        ratios.push(median(&mut b.clone()) / median(&mut a.clone()));
        let show = |v: &[f64]| {
            v.iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!("round {r}: passes {}   --no-opt {}", show(&a), show(&b));
        opt.extend(a);
        plain.extend(b);
    }
    let (mo, mp) = (median(&mut opt), median(&mut plain));
    println!(
        "median epoch: {mo:.3} s with the passes, {mp:.3} s with --no-opt: {:.2}x",
        mp / mo
    );
    let mr = median(&mut ratios);
    println!(
        "per round, --no-opt / passes (medians of each run's epochs): median {mr:.2}x, range {:.2}x to {:.2}x",
        ratios[0],
        ratios[ratios.len() - 1]
    );
}
