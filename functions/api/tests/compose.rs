//! compose.yaml without a container engine: its variables are substituted as compose does, and
//! the environment it gives the ff service must pass ff's own start-up validation
//! (`ServiceConfig::from_lookup`), so `docker compose up` cannot start an ff that refuses its
//! settings. It must also refuse to start without its secrets, and publish ports on 127.0.0.1
//! unless told otherwise.

use std::collections::BTreeMap;
use std::path::Path;

use ff_service::ServiceConfig;
use serde_yaml::Value;

const MINIO_PASSWORD: &str = "minio-test-password";
const EVENTS_SECRET: &str = "events-test-secret-0123456789";

fn compose_file() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compose.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).expect("compose.yaml is YAML")
}

/// Compose's variable substitution: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:?message}` and `${VAR?message}` (the `:` forms also treat an empty value as unset).
fn interpolate(text: &str, vars: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            out.push_str(&expand(&braced[..end], vars)?);
            rest = &braced[end + 1..];
        } else {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            out.push_str(vars.get(&rest[..end]).copied().unwrap_or_default());
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One `${...}` expression.
fn expand(expression: &str, vars: &BTreeMap<&str, &str>) -> Result<String, String> {
    let name_end = expression.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(expression.len());
    let (name, modifier) = expression.split_at(name_end);
    let value = vars.get(name).copied();
    let (empty_is_unset, operator, argument) = match modifier.strip_prefix(':') {
        Some(rest) => (true, rest.chars().next(), rest.get(1..).unwrap_or_default()),
        None => (false, modifier.chars().next(), modifier.get(1..).unwrap_or_default()),
    };
    let set = value.filter(|v| !(empty_is_unset && v.is_empty()));
    match (operator, set) {
        (None, _) => Ok(value.unwrap_or_default().to_string()),
        (Some('-'), Some(value)) | (Some('?'), Some(value)) => Ok(value.to_string()),
        (Some('-'), None) => Ok(argument.to_string()),
        (Some('?'), None) => Err(format!("{name}: {argument}")),
        _ => Err(format!("unsupported substitution ${{{expression}}}")),
    }
}

/// Substitutes every string of the file, as `docker compose config` would; the first refusal wins.
fn resolve(value: &Value, vars: &BTreeMap<&str, &str>) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => Value::String(interpolate(text, vars)?),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().map(|item| resolve(item, vars)).collect::<Result<_, _>>()?)
        }
        Value::Mapping(map) => Value::Mapping(
            map.iter().map(|(key, item)| Ok((key.clone(), resolve(item, vars)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// The variables a user sets before `docker compose up`, as the file's header says.
fn required_vars() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([("MINIO_ROOT_PASSWORD", MINIO_PASSWORD), ("FF_EVENTS_SECRET", EVENTS_SECRET)])
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    let scalar = |value: &Value| match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => panic!("environment values are scalars, not {other:?}"),
    };
    let map = service["environment"].as_mapping().expect("an environment mapping");
    map.iter().map(|(key, value)| (scalar(key), scalar(value))).collect()
}

fn ports(service: &Value) -> Vec<String> {
    let list = service["ports"].as_sequence().map(Vec::as_slice).unwrap_or_default();
    list.iter().map(|port| port.as_str().expect("ports in the short string form").to_string()).collect()
}

#[test]
fn ff_accepts_the_environment_compose_gives_it() {
    let file = resolve(&compose_file(), &required_vars()).expect("compose.yaml resolves with its secrets set");
    let ff = &file["services"]["ff"];
    let env = environment(ff);
    let config = ServiceConfig::from_lookup(|name| env.get(name).cloned()).unwrap_or_else(|e| panic!("{e}"));

    let bucket = config.s3_bucket.clone().expect("compose keeps jobs in MinIO");
    assert_eq!(config.s3_endpoint.as_deref(), Some("http://minio:9000"));
    assert_eq!(config.events_secret.as_deref(), Some(EVENTS_SECRET));
    assert!(config.batch_options.is_some());
    // MinIO's credentials are ff's, and the webhook presents ff's secret.
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], MINIO_PASSWORD);
    let minio = environment(&file["services"]["minio"]);
    assert_eq!(env["AWS_ACCESS_KEY_ID"], minio["MINIO_ROOT_USER"]);
    assert_eq!(minio["MINIO_ROOT_PASSWORD"], MINIO_PASSWORD);
    assert_eq!(minio["MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FF"], format!("Bearer {EVENTS_SECRET}"));
    // The bucket ff uses is the one create-bucket makes and wires the inbox/ events on.
    let entrypoint = file["services"]["create-bucket"]["entrypoint"].as_sequence().expect("an entrypoint list");
    let create = entrypoint.iter().map(|part| part.as_str().expect("strings")).collect::<Vec<_>>().join(" ");
    assert!(create.contains(&format!("mc mb --ignore-existing local/{bucket}")), "{create}");
    assert!(create.contains(&format!("mc event add local/{bucket} ")), "{create}");
}

#[test]
fn compose_refuses_to_start_without_its_secrets() {
    for missing in ["MINIO_ROOT_PASSWORD", "FF_EVENTS_SECRET"] {
        let mut vars = required_vars();
        vars.remove(missing);
        let error = resolve(&compose_file(), &vars).expect_err(missing);
        assert!(error.starts_with(missing), "{missing}: {error}");
        vars.insert(missing, "");
        assert!(resolve(&compose_file(), &vars).is_err(), "{missing} set but empty");
    }
}

#[test]
fn ports_are_published_on_loopback_unless_the_user_says_otherwise() {
    let file = resolve(&compose_file(), &required_vars()).unwrap();
    let published: Vec<String> =
        ["ff", "minio"].iter().flat_map(|service| ports(&file["services"][*service])).collect();
    assert_eq!(published, ["127.0.0.1:8000:8000", "127.0.0.1:9000:9000", "127.0.0.1:9001:9001"]);

    let mut vars = required_vars();
    vars.insert("BIND_ADDRESS", "0.0.0.0");
    let file = resolve(&compose_file(), &vars).unwrap();
    assert_eq!(ports(&file["services"]["ff"]), ["0.0.0.0:8000:8000"]);
    assert_eq!(ports(&file["services"]["minio"])[0], "127.0.0.1:9000:9000");
}

#[test]
fn substitution_follows_compose() {
    let vars = BTreeMap::from([("SET", "v"), ("EMPTY", "")]);
    for (text, expected) in [
        ("a $$SET b", "a $SET b"),
        ("$SET/${SET}", "v/v"),
        ("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${SET:-d}", "d d  v"),
        ("${SET:?m} ${EMPTY?m}", "v "),
    ] {
        assert_eq!(interpolate(text, &vars).as_deref(), Ok(expected), "{text}");
    }
    assert_eq!(interpolate("${UNSET:?say so}", &vars), Err("UNSET: say so".to_string()));
    assert!(interpolate("${EMPTY:?m}", &vars).is_err());
    assert!(interpolate("${UNCLOSED", &vars).is_err());
}
