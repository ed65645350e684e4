//! Every program in programs/ checks, and its typed IR is snapshotted
//! (each snapshot shows the program's source first, then the IR).

use dlc::driver::{cmd_check, cmd_ir, ProgramArgs, Stage};

fn args(path: &std::path::Path) -> ProgramArgs {
    ProgramArgs {
        file: path.to_path_buf(),
        ..ProgramArgs::default()
    }
}

#[test]
fn typed_ir_of_every_program() {
    insta::glob!("../programs", "*.dl", |path| {
        let path = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path);
        let check = cmd_check(&args(path));
        assert_eq!(
            check.code,
            0,
            "{} does not check:\n{}",
            path.display(),
            check.stderr
        );
        let src = std::fs::read_to_string(path).expect("program is readable");
        let ir = cmd_ir(&args(path), Stage::Typed, 1);
        assert_eq!(ir.code, 0, "{}", ir.stderr);
        insta::assert_snapshot!(format!(
            "== SOURCE ==\n{src}\n== TYPED IR ==\n{}",
            ir.stdout
        ));
    });
}

#[test]
fn ast_stage_round_trips_through_the_parser() {
    // The AST printer writes valid source: printing what it parsed and
    // parsing that again gives the same text.
    insta::glob!("../programs", "*.dl", |path| {
        let path = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path);
        let once = cmd_ir(&args(path), Stage::Ast, 1);
        assert_eq!(once.code, 0, "{}", once.stderr);
        let (program, diags) = dlc::syntax::parse(&once.stdout);
        assert!(diags.is_empty(), "printed AST does not parse: {diags:?}");
        assert_eq!(dlc::syntax::print::program(&program), once.stdout);
    });
}

#[test]
fn training_step_of_every_program() {
    insta::glob!("../programs", "*.dl", |path| {
        let path = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path);
        let src = std::fs::read_to_string(path).expect("program is readable");
        let ir = cmd_ir(&args(path), Stage::Grad, 1);
        assert_eq!(ir.code, 0, "{}", ir.stderr);
        // Every gradient names the forward op it came from.
        assert!(ir.stdout.contains(" d(%"), "{}", ir.stdout);
        insta::assert_snapshot!(format!(
            "== SOURCE ==\n{src}\n== TRAINING STEP ==\n{}",
            ir.stdout
        ));
    });
}

#[test]
fn cranelift_ir_of_linear_regression() {
    // One small program's kernels, as Cranelift IR (the stage is printed
    // for every program; one snapshot keeps it reviewable).
    let ir = cmd_ir(
        &ProgramArgs {
            file: std::path::PathBuf::from("programs/linreg.dl"),
            run: Some("sgd".into()),
            ..ProgramArgs::default()
        },
        Stage::Clif,
        1,
    );
    assert_eq!(ir.code, 0, "{}", ir.stderr);
    assert!(ir.stderr.contains("compiled in"));
    insta::assert_snapshot!(ir.stdout);
}

#[test]
fn optimized_step_and_kernel_plan_of_every_program() {
    // `--stage opt`: the training step and eval function after the IR
    // passes; `--stage kernels`: the fused kernels and the memory plan.
    insta::glob!("../programs", "*.dl", |path| {
        let path = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(path);
        let opt = cmd_ir(&args(path), Stage::Opt, 1);
        assert_eq!(opt.code, 0, "{}", opt.stderr);
        let kernels = cmd_ir(&args(path), Stage::Kernels, 1);
        assert_eq!(kernels.code, 0, "{}", kernels.stderr);
        insta::assert_snapshot!(format!(
            "== OPT ==\n{}\n== KERNELS ==\n{}",
            opt.stdout, kernels.stdout
        ));
    });
}

#[test]
fn data_parallel_step_of_the_mlp() {
    // `--ranks 2`: the step of one of two processes training data-parallel
    // (issue #19): every gradient, the loss and the correct count summed
    // across the processes, each sum started after the kernel that
    // completes its operand and waited for before the first that reads it.
    for stage in [Stage::Grad, Stage::Kernels] {
        let ir = cmd_ir(&args(std::path::Path::new("programs/mlp.dl")), stage, 2);
        assert_eq!(ir.code, 0, "{}", ir.stderr);
        insta::assert_snapshot!(format!("data_parallel_{stage:?}"), ir.stdout);
    }
}
