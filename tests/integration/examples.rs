//! The deployment examples work as written: the Kubernetes Deployment's settings log in to a real
//! OpenBao with Vault's kubernetes auth and resolve its ConfigMap's manifest; the ECS task
//! definition's environment resolves against moto; the Dockerfile's entrypoint is the form envoke
//! runs, and its build step's `--locked` holds.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::auth::{client_certificate, rsa_key, signed_jwt, token_reviewer};
use crate::support::{Bao, Envoke, Moto};

/// A Kubernetes `env` or an ECS `environment` list as (name, value) pairs.
fn name_values(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path)
}

/// Every document of a YAML file, as JSON (parsed by PyYAML from the test virtualenv).
fn yaml_documents(path: &PathBuf) -> Vec<Value> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let output = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .expect("the test virtualenv's python (scripts/setup)");
    assert!(
        output.status.success(),
        "{} does not parse: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_kubernetes_deployment_logs_in_with_its_service_account_and_resolves_its_manifest() {
    let documents = yaml_documents(&example("kubernetes/deployment.yaml"));
    let of_kind = |kind: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };
    let manifest = of_kind("ConfigMap")["data"]["envoke.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let deployment = of_kind("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let environment = name_values(&container["env"]);
    let setting = |name: &str| {
        environment
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let service_account = pod["serviceAccountName"].as_str().unwrap();
    let namespace = deployment["metadata"]["namespace"].as_str().unwrap();

    // OpenBao set up as docs/kubernetes.md says, the Kubernetes API played by a stand-in.
    let bao = Bao::start();
    bao.kv2_put(
        "secret",
        "billing/db",
        json!({"password": "db-pw-1", "username": "billing"}),
    );
    bao.kv2_put("secret", "billing/stripe", json!({"key": "sk_live_1"}));
    bao.kv2_put(
        "secret",
        "billing/tls",
        json!({"key": "-----BEGIN KEY-----"}),
    );
    bao.read_policy(
        "billing-api",
        &["secret/data/billing/*", "secret/metadata/billing/*"],
    );
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = rsa_key(dir.path(), "cluster");
    let (any_ca, _, _) = client_certificate(dir.path());
    bao.enable_auth("kubernetes", "kubernetes");
    bao.api(
        "POST",
        "auth/kubernetes/config",
        Some(json!({
            "kubernetes_host": token_reviewer(namespace, service_account, "uid-1"),
            "kubernetes_ca_cert": std::fs::read_to_string(any_ca).unwrap(),
            "disable_local_ca_jwt": true,
        })),
    );
    bao.api(
        "POST",
        &format!("auth/kubernetes/role/{}", setting("ENVOKE_VAULT_ROLE")),
        Some(json!({
            "bound_service_account_names": [service_account],
            "bound_service_account_namespaces": [namespace],
            "token_policies": ["billing-api"],
        })),
    );
    let jwt = signed_jwt(
        &key,
        &json!({
            "iss": "kubernetes/serviceaccount",
            "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/service-account.name": service_account,
            "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
        }),
    );

    // The pod's environment, but for what only exists in a cluster: the addresses, the mounted
    // files, and the token's path (the default one needs a pod).
    let mut envoke = Envoke::new()
        .manifest(&format!("{manifest}\n[vault]\njwt_file = \"sa-token\"\n"))
        .file("sa-token", &jwt);
    for (name, value) in &environment {
        envoke = match name.as_str() {
            "VAULT_ADDR" => envoke.env(name, &bao.addr),
            "VAULT_CACERT" | "ENVOKE_MANIFEST" => envoke,
            "XDG_RUNTIME_DIR" => envoke.env(name, "/dev/shm"),
            _ => envoke.env(name, value),
        };
    }
    let output = envoke.run([
        "run",
        "--",
        "sh",
        "-c",
        r#"test -s "$TLS_KEY" && printf '%s %s' "$DB_USER" "$LOG_LEVEL""#,
    ]);
    output
        .assert_code(0)
        .assert_stderr_lacks("error")
        .assert_never_shows("db-pw-1");
    assert_eq!(output.stdout, "billing info");
}

#[test]
fn the_ecs_task_definitions_environment_resolves() {
    let task: Value = serde_json::from_str(
        &std::fs::read_to_string(example("ecs/task-definition.json")).unwrap(),
    )
    .expect("the task definition is JSON");
    assert!(task["taskRoleArn"].is_string() && task["executionRoleArn"].is_string());
    let container = &task["containerDefinitions"][0];
    assert_eq!(container["linuxParameters"]["initProcessEnabled"], false);
    let environment = name_values(&container["environment"]);
    let region = &environment
        .iter()
        .find(|(n, _)| n == "AWS_REGION")
        .unwrap()
        .1;

    let moto = Moto::start();
    moto.create_in(
        region,
        "billing/db",
        r#"{"password":"db-pw-2","username":"billing"}"#,
    );
    moto.create_in(region, "billing/stripe", "sk_live_2");
    // The secret a new value in which makes every task recheck (ENVOKE_RECHECK_ON).
    moto.create_in(region, "billing/recheck", "0");
    let mut envoke = Envoke::new().aws(&moto);
    for (name, value) in &environment {
        envoke = envoke.env(name, value);
    }
    let output = envoke.run([
        "run",
        "--",
        "sh",
        "-c",
        r#"printf '%s %s' "$DB_USER" "${#STRIPE_KEY}""#,
    ]);
    output.assert_code(0).assert_never_shows("db-pw-2");
    assert_eq!(output.stdout, "billing 9");
}

#[test]
fn the_dockerfile_takes_envoke_from_the_release_image_and_runs_it_as_its_entrypoint() {
    let text = std::fs::read_to_string(example("Dockerfile")).unwrap();
    let last_stage = text.rsplit("\nFROM ").next().unwrap();
    let instruction = |name: &str| {
        last_stage
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in the runtime stage"))
            .to_owned()
    };
    let entrypoint: Vec<String> = serde_json::from_str(&instruction("ENTRYPOINT"))
        .expect("ENTRYPOINT in exec form (JSON), so that envoke is PID 1");
    assert_eq!(entrypoint, ["envoke", "run", "--"]);
    let command: Vec<String> = serde_json::from_str(&instruction("CMD")).unwrap();
    assert!(!command.is_empty());
    let user = instruction("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER");
    assert_ne!(uid, 0, "the runtime stage runs as a non-root user");
    // envoke comes built: no Rust toolchain in the application's build.
    assert!(text.contains("\nCOPY --from=envoke /envoke /usr/local/bin/envoke\n"));
    assert!(!text.contains("cargo "), "the example builds envoke itself");

    // scripts/release builds with `--locked`, which holds: Cargo.lock matches Cargo.toml.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let locked = Command::new(cargo)
        .args(["tree", "--locked", "--offline", "--depth", "0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        locked.status.success(),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );

    // The entrypoint as the image runs it, with a command in place of the server.
    let mut args: Vec<&str> = entrypoint[1..].iter().map(String::as_str).collect();
    args.extend(["sh", "-c", "exit 3"]);
    Envoke::new()
        .manifest("[env]\nGREETING = \"hello\"\n")
        .run(&args)
        .assert_code(3);
}

/// The environment of the Deployment's container, or of the task definition's.
fn deployment_environment() -> (String, Vec<(String, String)>) {
    let documents = yaml_documents(&example("kubernetes/deployment.yaml"));
    let manifest =
        documents.iter().find(|d| d["kind"] == "ConfigMap").unwrap()["data"]["envoke.toml"]
            .as_str()
            .unwrap()
            .to_owned();
    let deployment = documents
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let environment = name_values(&deployment["spec"]["template"]["spec"]["containers"][0]["env"]);
    (manifest, environment)
}

#[test]
fn the_example_policies_are_what_envoke_policy_prints_for_the_examples() {
    // Kubernetes: the ConfigMap's manifest with the Deployment's settings, but for the addresses
    // and paths that only exist in the cluster (the engines are assumed, and the policy says so).
    let (manifest, environment) = deployment_environment();
    let mut envoke = Envoke::new().manifest(&manifest);
    for (name, value) in &environment {
        if !matches!(
            name.as_str(),
            "VAULT_ADDR" | "VAULT_CACERT" | "ENVOKE_MANIFEST" | "XDG_RUNTIME_DIR"
        ) {
            envoke = envoke.env(name, value);
        }
    }
    let output = envoke.run(["policy", "--vault"]);
    output.assert_code(0);
    assert_eq!(
        output.stdout,
        std::fs::read_to_string(example("kubernetes/vault-policy.hcl")).unwrap(),
        "examples/kubernetes/vault-policy.hcl is not what envoke policy prints"
    );

    // ECS: the task definition's environment.
    let task: Value = serde_json::from_str(
        &std::fs::read_to_string(example("ecs/task-definition.json")).unwrap(),
    )
    .unwrap();
    let mut envoke = Envoke::new();
    for e in task["containerDefinitions"][0]["environment"]
        .as_array()
        .unwrap()
    {
        envoke = envoke.env(e["name"].as_str().unwrap(), e["value"].as_str().unwrap());
    }
    let output = envoke.run(["policy", "--aws"]);
    output.assert_code(0);
    assert_eq!(
        output.stdout,
        std::fs::read_to_string(example("ecs/iam-policy.json")).unwrap(),
        "examples/ecs/iam-policy.json is not what envoke policy prints"
    );
}

#[test]
fn the_kubernetes_docs_policy_command_prints_the_example_policy() {
    // The command of docs/kubernetes.md, as written there (before the pipe), run on the
    // example's manifest: it must print examples/kubernetes/vault-policy.hcl.
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/kubernetes.md"),
    )
    .unwrap();
    let line = doc
        .lines()
        .find(|line| line.contains("envoke policy --vault"))
        .expect("docs/kubernetes.md shows the policy command");
    let command = line.trim_start_matches("$ ").split(" | ").next().unwrap();
    let mut words = command.split(' ');
    let (manifest, _) = deployment_environment();
    let mut envoke = Envoke::new().file("envoke.toml", &manifest);
    let mut args = Vec::new();
    for word in words.by_ref() {
        match word.split_once('=') {
            Some((name, value)) if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') => {
                envoke = envoke.env(name, value);
            }
            _ if word == "envoke" => break,
            _ => panic!("unexpected {word:?} in {command:?}"),
        }
    }
    args.extend(words);
    let output = envoke.run(&args);
    output.assert_code(0);
    assert_eq!(
        output.stdout,
        std::fs::read_to_string(example("kubernetes/vault-policy.hcl")).unwrap(),
        "docs/kubernetes.md's command does not print examples/kubernetes/vault-policy.hcl"
    );
}
