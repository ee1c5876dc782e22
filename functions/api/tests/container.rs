//! The container's own command, without a container engine: the Dockerfile's ENTRYPOINT and CMD
//! run with the environment its runtime stage sets, and its HEALTHCHECK command must pass against
//! it. Only paths that exist inside the image are pointed at their local equivalents.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ff_pipeline::testing::assets_dir;

/// What the final stage of the Dockerfile says about the process it runs.
#[derive(Debug, Default)]
struct RuntimeStage {
    env: BTreeMap<String, String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    user: String,
}

/// Reads instructions of the last stage, joining `\` continuations. Only the exec (JSON) forms
/// are accepted for ENTRYPOINT, CMD and HEALTHCHECK CMD: the shell form would mean a different
/// process tree, and hadolint asks for the exec form anyway.
fn runtime_stage(dockerfile: &str) -> RuntimeStage {
    let joined = dockerfile.replace("\\\n", " ");
    let mut stage = RuntimeStage::default();
    for line in joined.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match instruction.to_ascii_uppercase().as_str() {
            "FROM" => stage = RuntimeStage::default(),
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (key, value) = pair.split_once('=').expect("ENV key=value pairs");
                    stage.env.insert(key.to_string(), value.to_string());
                }
            }
            "ENTRYPOINT" => stage.entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in exec form"),
            "CMD" => stage.cmd = serde_json::from_str(rest).expect("CMD in exec form"),
            "HEALTHCHECK" => {
                let command = &rest[rest.find("CMD").expect("HEALTHCHECK ... CMD") + 3..];
                stage.healthcheck = serde_json::from_str(command.trim()).expect("HEALTHCHECK CMD in exec form");
            }
            "USER" => stage.user = rest.to_string(),
            _ => {}
        }
    }
    stage
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("an ephemeral port").local_addr().expect("its address").port()
}

#[test]
fn the_container_command_serves_and_passes_its_healthcheck() {
    let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile"))
        .expect("the Dockerfile at the repository root");
    let stage = runtime_stage(&dockerfile);
    assert_eq!(stage.entrypoint, ["/usr/local/bin/ff"]);
    assert_eq!(stage.cmd, ["serve"]);
    assert!(!stage.user.is_empty() && !stage.user.starts_with("0") && stage.user != "root", "runs as {}", stage.user);
    assert_eq!(stage.env.get("FF_MODELS_DIR").map(String::as_str), Some("/models"));

    // The image's paths, mapped to this machine: the library scripts/setup installed, the stand-in
    // models, a scratch data directory, and a free port instead of 8000.
    let data = tempfile::tempdir().expect("a data directory");
    let mut env = stage.env.clone();
    env.insert("ORT_DYLIB_PATH".into(), ff_pipeline::runtime::default_library_path().display().to_string());
    env.insert("FF_MODELS_DIR".into(), assets_dir().join("standins/light").display().to_string());
    env.insert("FF_DATA_DIR".into(), data.path().display().to_string());
    env.insert("FF_PORT".into(), free_port().to_string());
    env.insert("FF_ALLOW_MODEL_DOWNLOAD".into(), "false".into());

    let healthcheck = || {
        Command::new(&stage.healthcheck[0])
            .args(&stage.healthcheck[1..])
            .envs(&env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the healthcheck command runs")
    };
    assert!(!healthcheck().success(), "the HEALTHCHECK passes with nothing listening");

    let _server = Running(
        Command::new(env!("CARGO_BIN_EXE_ff"))
            .args(&stage.cmd)
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .env_remove("FF_S3_BUCKET")
            .envs(&env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ff serve starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let check = healthcheck();
        if check.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the HEALTHCHECK command kept failing: {check}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn stage_parsing_follows_continuations_and_stages() {
    let stage = runtime_stage(
        "FROM a AS b\nENV X=1\nCMD [\"old\"]\nFROM c\nENV A=1 \\\n    B=two\nUSER 10:10\n\
         HEALTHCHECK --interval=5s \\\n  CMD [\"/bin/sh\", \"-c\", \"true\"]\nCMD [\"serve\"]\n",
    );
    assert_eq!(stage.env.into_iter().collect::<Vec<_>>(), [("A".into(), "1".into()), ("B".into(), "two".into())]);
    assert_eq!(stage.cmd, ["serve"]);
    assert_eq!(stage.healthcheck, ["/bin/sh", "-c", "true"]);
    assert_eq!(stage.user, "10:10");
}
