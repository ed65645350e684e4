//! Data-parallel training under a real MPI launcher (issue #19), built
//! with `--features mpi`: `cargo test --release --features mpi --test mpi`
//! (`.ci/run` installs Open MPI and runs it). Every test runs `mpirun` on
//! this machine, oversubscribed where it asks for more processes than
//! cores, over shared memory and again over TCP (`--mca btl tcp,self`,
//! the transport two hosts use).

#![cfg(feature = "mpi")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DLC: &str = env!("CARGO_BIN_EXE_dlc");

/// The transports: Open MPI's default (shared memory between local ranks)
/// and TCP alone.
const TRANSPORTS: [&[&str]; 2] = [&[], &["--mca", "btl", "tcp,self"]];

fn mpirun(ranks: usize, transport: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(ranks.to_string())
        .args(transport);
    c
}

/// A scratch folder of the test's own.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dlc-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a scratch folder");
    d
}

/// The first `train` training and `test` test images of the repository's
/// Fashion-MNIST, as IDX files in `dir`: a data set of a few steps.
fn fashion_subset(dir: &Path, train: usize, test: usize) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/data/fashion-mnist");
    for (part, keep) in [("train", train), ("t10k", test)] {
        for (kind, header, per) in [("images-idx3-ubyte", 16, 784), ("labels-idx1-ubyte", 8, 1)] {
            let name = format!("{part}-{kind}");
            let file = std::fs::File::open(src.join(format!("{name}.gz"))).expect("the data");
            let mut bytes = Vec::new();
            flate2::read::GzDecoder::new(file)
                .read_to_end(&mut bytes)
                .expect("gzip");
            let mut out = bytes[..header].to_vec();
            out[4..8].copy_from_slice(&(keep as u32).to_be_bytes());
            out.extend_from_slice(&bytes[header..header + keep * per]);
            std::fs::write(dir.join(name), out).expect("written");
        }
    }
}

/// The f32 tensors of a safetensors checkpoint whose names start with
/// `param.`, by name.
fn params(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).expect("the checkpoint");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("a header");
    let data = &bytes[8 + n..];
    let mut out: Vec<(String, Vec<f32>)> = header
        .as_object()
        .expect("an object")
        .iter()
        .filter(|(k, _)| k.starts_with("param."))
        .map(|(k, v)| {
            let at = &v["data_offsets"];
            let (a, b) = (at[0].as_u64().unwrap_or(0), at[1].as_u64().unwrap_or(0));
            let values = data[a as usize..b as usize]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            (k.clone(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The largest difference between the two checkpoints' parameters, each
/// relative to that parameter's largest magnitude.
fn max_relative(a: &Path, b: &Path) -> f64 {
    let (pa, pb) = (params(a), params(b));
    assert_eq!(pa.len(), pb.len());
    assert!(!pa.is_empty(), "no parameters in {}", a.display());
    pa.iter()
        .zip(&pb)
        .map(|((na, va), (nb, vb))| {
            assert_eq!(na, nb);
            let scale = va.iter().fold(0.0f64, |m, x| m.max(f64::from(x.abs())));
            let diff = va
                .iter()
                .zip(vb)
                .fold(0.0f64, |m, (x, y)| m.max(f64::from((x - y).abs())));
            diff / scale.max(1e-30)
        })
        .fold(0.0, f64::max)
}

fn train_args(program: &str, data: &Path, save: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [DLC, "train", program, "--data"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.push(data.display().to_string());
    if !extra.contains(&"--epochs") {
        a.extend(["--epochs", "1"].map(String::from));
    }
    a.extend(["--threads", "1", "--quiet", "--save"].map(String::from));
    a.push(save.display().to_string());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Trains `program` for one epoch on `data` in one process, or under
/// mpirun on `ranks` processes, saving to `save`.
fn train(
    ranks: usize,
    transport: &[&str],
    program: &str,
    data: &Path,
    save: &Path,
    extra: &[&str],
) {
    let args = train_args(program, data, save, extra);
    let out = if ranks == 1 {
        Command::new(&args[0]).args(&args[1..]).output()
    } else {
        mpirun(ranks, transport).args(&args).output()
    }
    .expect("runs");
    assert!(
        out.status.success(),
        "{ranks} process(es) failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 2 processes × 128 and 4 × 64 take the steps of one process × 256: 50
/// steps of mlp.dl and mlp_dropout.dl end within 1e-5 of its parameters
/// (the order of the sums differs, nothing else), and two runs on the same
/// number of processes end bit for bit the same. mlp_dropout runs at
/// lr = 0.1: at its own 0.5 its first 50 steps pass a phase in which any
/// other order of the same sums moves the parameters by ~2e-4, one
/// process's own alternative matmul kernel (`--matmul jit`) included
/// (docs/distributed.md).
#[test]
fn ranks_train_as_one_process_does() {
    let dir = scratch("same");
    // mlp: 50 steps of 256 on 12,800 rows; mlp_dropout holds out 10% for
    // validation: 50 steps on 12,800 of 14,222.
    for (program, rows, extra) in [
        ("programs/mlp.dl", 12_800, &[][..]),
        ("programs/mlp_dropout.dl", 14_222, &["--lr", "0.1"][..]),
    ] {
        let data = dir.join(format!("data-{rows}"));
        std::fs::create_dir_all(&data).expect("a folder");
        fashion_subset(&data, rows, 500);
        let one = dir.join("one.safetensors");
        train(1, &[], program, &data, &one, extra);
        for transport in TRANSPORTS {
            for ranks in [2, 4] {
                let many = dir.join(format!("ranks{ranks}.safetensors"));
                train(ranks, transport, program, &data, &many, extra);
                let d = max_relative(&one, &many);
                assert!(
                    d <= 1e-5,
                    "{program}, {ranks} processes {transport:?}: parameters {d:e} from one process's"
                );
            }
            let again = dir.join("again.safetensors");
            train(2, transport, program, &data, &again, extra);
            let first = dir.join("ranks2.safetensors");
            assert_eq!(
                params(&first),
                params(&again),
                "{program}: two runs on 2 processes differ {transport:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The rank processes under `mpirun`'s pid: (pid, rank).
fn ranks_of(mpirun: u32) -> Vec<(u32, usize)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // pid (comm) state ppid ...
        let after = stat.rsplit(')').next().unwrap_or("");
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(mpirun) {
            continue;
        }
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let rank = env
            .split(|b| *b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| v.strip_prefix("OMPI_COMM_WORLD_RANK="))
            .and_then(|r| r.parse::<usize>().ok());
        if let Some(r) = rank {
            out.push((pid, r));
        }
    }
    out
}

/// A rank killed mid-epoch: every other process ends, non-zero, within 10
/// seconds, and mpirun says which rank died.
#[test]
fn a_dead_rank_ends_the_run() {
    for transport in TRANSPORTS {
        let mut child = mpirun(3, transport)
            .args([
                DLC,
                "train",
                "programs/mlp.dl",
                "--epochs",
                "20",
                "--threads",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mpirun starts");
        let pid = child.id();
        // Wait until the three ranks train (their first epoch is running).
        let start = Instant::now();
        let mut ranks = Vec::new();
        while start.elapsed() < Duration::from_secs(60) {
            ranks = ranks_of(pid);
            if ranks.len() == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(ranks.len(), 3, "the ranks did not start: {ranks:?}");
        std::thread::sleep(Duration::from_secs(2));
        let victim = ranks.iter().find(|(_, r)| *r == 1).expect("rank 1").0;
        let killed = Command::new("kill")
            .args(["-9", &victim.to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("waits") {
                break s;
            }
            if t.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("the other ranks still ran 10 s after rank 1 died ({transport:?})");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(!status.success(), "mpirun exited 0 after a rank died");
        assert!(
            ranks
                .iter()
                .all(|(p, _)| !Path::new(&format!("/proc/{p}")).exists()
                    || std::fs::read_to_string(format!("/proc/{p}/stat"))
                        .is_ok_and(|s| s.contains(") Z "))),
            "a rank outlived the run"
        );
        assert!(
            err.contains("rank 1"),
            "mpirun's message names no rank: {err}"
        );
    }
}

/// Processes started with different programs, or one that cannot read
/// its data, refuse to train, with a message, and all end non-zero.
#[test]
fn mismatched_ranks_refuse() {
    let dir = scratch("mismatch");
    let other = dir.join("other.dl");
    let src = std::fs::read_to_string("programs/mlp.dl").expect("mlp.dl");
    std::fs::write(&other, src.replace("lr = 0.1", "lr = 0.2")).expect("written");
    let same = [DLC, "train", "programs/mlp.dl", "--epochs", "1"];
    for transport in TRANSPORTS {
        let out = mpirun(1, transport)
            .args(same)
            .arg(":")
            .args(["-np", "1", DLC, "train"])
            .arg(&other)
            .args(["--epochs", "1", "--data", "programs/data/fashion-mnist"])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("the processes disagree") && err.contains("rank 1"),
            "{err}"
        );
        // One process cannot read its data: it says so, naming its rank,
        // and none trains.
        let t = Instant::now();
        let out = mpirun(1, transport)
            .args(same)
            .arg(":")
            .args(["-np", "1"])
            .args(same)
            .args(["--data", "/nonexistent/fashion"])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(t.elapsed() < Duration::from_secs(30));
        assert!(err.contains("/nonexistent/fashion"), "{err}");
        assert!(err.contains("rank 1 of 2"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint saved by 2 processes resumes on 4 (and one saved by one
/// process on 2), and ends where one process training throughout ends.
#[test]
fn a_checkpoint_resumes_on_another_number_of_processes() {
    let dir = scratch("resume");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("a folder");
    fashion_subset(&data, 6_400, 500);
    let program = "programs/mlp.dl";
    let whole = dir.join("whole.safetensors");
    train(1, &[], program, &data, &whole, &["--epochs", "2"]);
    for (first, then) in [(2, 4), (1, 2)] {
        let half = dir.join(format!("half{first}.safetensors"));
        train(first, &[], program, &data, &half, &[]);
        let resumed = dir.join(format!("resumed{then}.safetensors"));
        let half_arg = half.display().to_string();
        train(
            then,
            &[],
            program,
            &data,
            &resumed,
            &["--epochs", "2", "--resume", &half_arg],
        );
        let d = max_relative(&whole, &resumed);
        assert!(
            d <= 1e-5,
            "saved on {first}, resumed on {then}: {d:e} from one process's"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A regression on a CSV of `x1,x2,y`, for the tests below.
const LINEAR: &str = r#"
data d = csv("data.csv", label = "y", test = 0.25, standardize = true)
model linear(x: f32[B, D]) -> f32[B, 1] {
    param w: f32[D, 1] = normal(0.01)
    param b: f32[1] = zeros
    x @ w + b
}
train lin: linear on d {
    loss = squared_loss(output, label)
    optimizer = sgd(lr = 0.05)
    batch = 8
    epochs = 2
    seed = 7
    metrics = [loss, rmse]
}
"#;

/// 64 rows of `x1,x2,y`, row `changed` (when given) with another x1.
fn linear_csv(path: &Path, changed: Option<usize>) {
    let mut s = String::from("x1,x2,y\n");
    for i in 0..64 {
        let x1 = if changed == Some(i) {
            100.0
        } else {
            i as f64 * 0.25
        };
        let x2 = (i % 7) as f64;
        s.push_str(&format!("{x1},{x2},{}\n", 2.0 * x1 - x2 + 1.0));
    }
    std::fs::write(path, s).expect("written");
}

/// Processes whose data files have the same shape and differ in content
/// (one value of one row; a byte of one image) refuse to train, every one
/// of them with exit 1 and a message naming the rank that differs; the
/// same contents at other paths train.
#[test]
fn ranks_with_different_data_refuse() {
    let dir = scratch("contents");
    let program = dir.join("linear.dl");
    std::fs::write(&program, LINEAR).expect("written");
    let (same, copy, other) = (
        dir.join("data.csv"),
        dir.join("copy.csv"),
        dir.join("other.csv"),
    );
    linear_csv(&same, None);
    linear_csv(&copy, None);
    linear_csv(&other, Some(40));
    let save = dir.join("ck.safetensors");
    let idx = [dir.join("idx"), dir.join("idx-other")];
    for d in &idx {
        std::fs::create_dir_all(d).expect("a folder");
        fashion_subset(d, 512, 64);
    }
    let image = idx[1].join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&image).expect("images");
    bytes[16 + 300 * 784 + 400] ^= 0x55;
    std::fs::write(&image, bytes).expect("written");
    let runs = [
        (program.display().to_string(), &same, &other, "`d`"),
        ("programs/mlp.dl".to_string(), &idx[0], &idx[1], "`fashion`"),
    ];
    for (program, mine, theirs, name) in runs {
        let on = |data: &Path| {
            let mut a = train_args(&program, data, &save, &[]);
            a.remove(0);
            a
        };
        let out = mpirun(1, &[])
            .arg(DLC)
            .args(on(mine))
            .arg(":")
            .args(["-np", "1", DLC])
            .args(on(theirs))
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let said = format!("the processes disagree on the contents of data {name}: rank 1 of 2 differs from rank 0");
        assert!(err.contains(&format!("error: {said}")), "{err}");
        assert!(
            err.contains(&format!("error: rank 1 of 2: {said}")),
            "{err}"
        );
        assert!(
            !err.contains("MPI_ABORT"),
            "every process ends by itself: {err}"
        );
        assert!(!save.exists(), "a model of mixed data was saved");
    }
    // The same contents at another path train.
    let out = mpirun(1, &[])
        .arg(DLC)
        .args(&train_args(&program.display().to_string(), &same, &save, &[])[1..])
        .arg(":")
        .args(["-np", "1", DLC])
        .args(&train_args(&program.display().to_string(), &copy, &save, &[])[1..])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(save.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Collects what is written to the FIFO at `path`, by however many
/// writers one after another, until [`FifoReader::finish`].
struct FifoReader {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u8>>,
}

impl FifoReader {
    fn new(path: &Path) -> FifoReader {
        let _ = std::fs::remove_file(path);
        let made = Command::new("mkfifo").arg(path).status().expect("mkfifo");
        assert!(made.success());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (path.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut all = Vec::new();
            loop {
                // Each open waits for a writer; each writer's bytes end at
                // its close.
                let mut f = std::fs::File::open(&p).expect("the FIFO");
                let _ = f.read_to_end(&mut all);
                if s.load(std::sync::atomic::Ordering::SeqCst) {
                    return all;
                }
            }
        });
        FifoReader {
            path: path.to_path_buf(),
            stop,
            thread,
        }
    }

    /// Everything written, once the writers are gone.
    fn finish(self) -> Vec<u8> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // A writer of nothing lets the reader's last open return.
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .expect("the FIFO"),
        );
        self.thread.join().expect("the reader")
    }
}

/// Under `mpirun -np 2`, every command but training runs on rank 0 alone:
/// check, data, ir, gradcheck, eval, predict and export print what one
/// process prints, once, and write their files once (a FIFO's reader gets
/// one process's bytes); both processes exit 0.
#[test]
fn commands_other_than_train_run_once() {
    let dir = scratch("once");
    let program = dir.join("linear.dl");
    std::fs::write(&program, LINEAR).expect("written");
    linear_csv(&dir.join("data.csv"), None);
    let p = program.display().to_string();
    let ck = dir.join("ck.safetensors").display().to_string();
    let ok = |mut c: Command| {
        let out = c.output().expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let alone = |args: &[&str]| {
        let mut c = Command::new(DLC);
        c.args(args).current_dir(&dir);
        ok(c)
    };
    let two = |args: &[&str]| {
        let mut c = mpirun(2, &[]);
        c.arg(DLC).args(args).current_dir(&dir);
        ok(c)
    };
    alone(&["train", &p, "--quiet", "--save", &ck]);
    let data = dir.join("data.csv").display().to_string();
    let commands: [&[&str]; 7] = [
        &["check", &p],
        &["data", &p, "--show", "3"],
        // Under 2 processes `ir` shows one of 2 processes' step.
        &["ir", &p, "--stage", "opt"],
        &["gradcheck", &p],
        &["eval", &p, "--load", &ck],
        &["eval", &p, "--load", &ck, "--json"],
        &["predict", &p, "--load", &ck, "--input", &data, "--out", "-"],
    ];
    for args in commands {
        let mut one: Vec<&str> = args.to_vec();
        if args[0] == "ir" {
            one.extend(["--ranks", "2"]);
        }
        let (out1, err1) = alone(&one);
        let (out2, err2) = two(args);
        assert!(
            !out1.is_empty() || args[0] == "check",
            "{args:?} printed nothing"
        );
        if args[0] == "eval" {
            // Times aside (infer_seconds), the same lines.
            assert_eq!(
                out1.lines().count(),
                out2.lines().count(),
                "{args:?}:\n{out2}"
            );
        } else {
            assert_eq!(out1, out2, "dlc {args:?} under mpirun -np 2");
        }
        assert_eq!(
            err1.lines().count(),
            err2.lines().count(),
            "{args:?}: {err2}"
        );
    }
    // Files: predict's and export's outputs are written once.
    let files = [
        (
            vec!["predict", &p, "--load", &ck, "--input", &data, "--out"],
            "p.csv",
        ),
        (vec!["export", &p, "--load", &ck, "--out"], "m.npz"),
    ];
    for (args, name) in files {
        let file = dir.join(name);
        let mut one = args.clone();
        let f = file.display().to_string();
        one.push(&f);
        alone(&one);
        let expected = std::fs::read(&file).expect("written");
        let fifo = dir.join(format!("fifo-{name}"));
        let reader = FifoReader::new(&fifo);
        let mut many = args.clone();
        let f = fifo.display().to_string();
        many.push(&f);
        two(&many);
        let got = reader.finish();
        assert_eq!(got.len(), expected.len(), "dlc {many:?} under mpirun -np 2");
        assert_eq!(got, expected);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
