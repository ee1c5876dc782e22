//! ONNX Runtime in a sandbox like Lambda's, which has no `/sys/devices/system/cpu`: on arm64 that
//! made ONNX Runtime abort at start-up (microsoft/onnxruntime#10038). Here `ff process` runs in a
//! mount namespace (`unshare`, as an unprivileged user through a user namespace) where that
//! directory is an empty tmpfs, with the thread count left to ff, and must swap exactly as it does
//! outside. This covers the architecture the test runs on (x86_64 in CI).

use std::path::Path;
use std::process::{Command, Output};

use ff_pipeline::testing::{assets_dir, psnr, read_bgr};

/// The CPU topology directory ONNX Runtime's cpuinfo reads, which Lambda's sandbox lacks.
const CPU_SYSFS: &str = "/sys/devices/system/cpu";

/// `ff process` on the light stand-ins: one face of `biden.jpg` swapped, written as PNG to `output`.
fn swap_command(program: &str, output: &Path) -> Vec<String> {
    let asset = |relative: &str| assets_dir().join(relative).to_string_lossy().into_owned();
    vec![
        program.to_string(),
        "process".into(),
        "-s".into(),
        asset("images/obama.jpg"),
        "-t".into(),
        asset("images/biden.jpg"),
        "-o".into(),
        output.to_string_lossy().into_owned(),
        "--face-swapper-model".into(),
        "inswapper_128".into(),
    ]
}

fn with_models(command: &mut Command) -> &mut Command {
    command
        .env("FF_MODELS_DIR", assets_dir().join("standins/light"))
        .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
        .env_remove("FF_EXECUTION_THREAD_COUNT")
        .env("RUST_BACKTRACE", "0")
}

fn succeeded(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn sessions_start_without_the_cpu_topology_in_sysfs() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside.png");
    let inside = dir.path().join("inside.png");
    let ff = env!("CARGO_BIN_EXE_ff");

    let plain = swap_command(ff, &outside);
    let result = with_models(&mut Command::new(&plain[0])).args(&plain[1..]).output().expect("run ff");
    succeeded("ff process outside the sandbox", &result);

    // The shell proves the directory is gone before ff starts, so a mount that silently failed
    // cannot pass the test.
    let masked = swap_command(ff, &inside);
    let script = format!(
        "mount -t tmpfs none {CPU_SYSFS} && test ! -e {CPU_SYSFS}/possible && test ! -e {CPU_SYSFS}/online \
         && exec \"$@\""
    );
    let result = with_models(Command::new("unshare").args([
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
        "sh",
    ]))
    .args(&masked)
    .output()
    .expect("run unshare (util-linux)");
    succeeded(&format!("ff process with {CPU_SYSFS} masked"), &result);

    let target = read_bgr(&assets_dir().join("images/biden.jpg"));
    let (outside, inside) = (read_bgr(&outside), read_bgr(&inside));
    assert!(psnr(&outside, &target, None) < 60.0, "the swap changed nothing");
    let agreement = psnr(&inside, &outside, None);
    assert!(agreement >= 50.0, "the sandboxed swap differs from the plain one: {agreement:.1} dB");
}
