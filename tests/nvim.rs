//! `dlc lsp` in a real client (issue #20): Neovim's built-in LSP client,
//! headless, on a copy of programs/mlp.dl, driven by tests/nvim/check.lua.
//! It must receive the hover text `f32[B,256]` on `h` and the diagnostic
//! of an injected shape error. Runs where `nvim` is installed (Debian's
//! `neovim`; `.ci/run` installs it), and says that it skipped elsewhere.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn neovim_gets_hover_and_diagnostics() {
    if Command::new("nvim").arg("--version").output().is_err() {
        eprintln!("skipped: nvim is not installed (apt-get install neovim)");
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("dlc-nvim-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder");
    // The program's data path is relative to its folder.
    std::os::unix::fs::symlink(root.join("programs/data"), dir.join("data")).expect("a link");
    let file = dir.join("mlp.dl");
    std::fs::copy(root.join("programs/mlp.dl"), &file).expect("copied");
    let out = dir.join("out.txt");
    let status = Command::new("timeout")
        .args(["60", "nvim", "--headless", "-u", "NONE", "-c"])
        .arg(format!(
            "luafile {}",
            root.join("tests/nvim/check.lua").display()
        ))
        .env("DLC_BIN", env!("CARGO_BIN_EXE_dlc"))
        .env("DLC_FILE", &file)
        .env("DLC_OUT", &out)
        .status()
        .expect("nvim runs");
    let seen = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "nvim failed ({status}); it saw:\n{seen}");
    assert!(seen.contains("initialized=true"), "{seen}");
    assert!(
        seen.contains("hover=") && seen.contains("f32[B,256]"),
        "{seen}"
    );
    assert!(
        seen.contains("diagnostic=23: cannot multiply [B,256] by [128,10]"),
        "{seen}"
    );
}
