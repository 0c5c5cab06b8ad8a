//! `deploy/`: every YAML file parses, the Helm chart renders with its default
//! values (see `helm.rs` for the template subset), and the ports, probe paths
//! and environment variables of the image, the compose file and the chart
//! agree with what the binary reads and serves.

mod helm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_server::config::Config;
use serde_norway::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(text: &str, what: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{what} is not YAML: {e}\n{text}"))
}

/// The chart's templates rendered with `values`, by file name; templates that
/// render to nothing (a disabled HPA) are left out.
fn render_chart(values: &Value) -> BTreeMap<String, Value> {
    let chart_dir = deploy_dir().join("helm/finmesh");
    let chart = yaml(&read(&chart_dir.join("Chart.yaml")), "Chart.yaml");
    let context = helm::Context {
        values,
        release: "demo",
        chart: &chart,
    };
    let mut rendered = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(chart_dir.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = helm::render(&read(&path), &context)
            .unwrap_or_else(|e| panic!("templates/{name}: {e}"));
        if text.trim().is_empty() {
            continue;
        }
        rendered.insert(
            name.clone(),
            yaml(&text, &format!("templates/{name} rendered")),
        );
    }
    rendered
}

fn default_values() -> Value {
    yaml(
        &read(&deploy_dir().join("helm/finmesh/values.yaml")),
        "values.yaml",
    )
}

/// A figment as the binary builds it from a file and `FINMESH_A__B` variables
/// (the same rule as `config::environment()`: lowercase, `__` between levels,
/// values parsed like figment's `Env`).
fn figment_with_env(toml: &str, env: &[(String, String)]) -> Figment {
    let mut figment = Figment::from(Toml::string(toml));
    for (name, value) in env {
        let Some(key) = name.strip_prefix("FINMESH_") else {
            panic!("{name}: not a finmesh variable")
        };
        if name == "FINMESH_SECRET_KEY" {
            // The one variable without `__`, read by `[secrets]` as key `env`.
            figment = figment.merge(("secrets.keys.env", value.as_str()));
            continue;
        }
        assert!(
            key.contains("__"),
            "{name}: the binary ignores variables without `__`"
        );
        let path = key.to_lowercase().replace("__", ".");
        let value: figment::value::Value = value.parse().unwrap();
        figment = figment.merge((path.as_str(), value));
    }
    figment
}

fn config_from(toml: &str, env: &[(String, String)]) -> Config {
    Config::from_figment(&figment_with_env(toml, env), &finmesh_server::factories())
        .unwrap_or_else(|e| panic!("the binary refuses this configuration: {e}"))
}

/// Values the chart's Secret (or the compose file's host) provides.
fn secret_sample(name: &str) -> String {
    match name {
        "FINMESH_SECRET_KEY" => finmesh_e2e::ENCRYPTION_KEY.to_string(),
        "FINMESH_STORE__URL" => "postgres://finmesh:finmesh@postgres:5432/finmesh".to_string(),
        "FINMESH_AUTH__HS256_SECRET" => finmesh_e2e::SIGNING_SECRET.to_string(),
        other => panic!("no sample value for secret variable {other}"),
    }
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut at = value;
    for key in path {
        at = match key.parse::<usize>() {
            Ok(index) => &at[index],
            Err(_) => &at[*key],
        };
    }
    at.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string: {at:?}"))
}

fn port_of(listen: std::net::SocketAddr) -> u64 {
    u64::from(listen.port())
}

#[test]
fn every_yaml_file_parses() {
    let mut found = 0;
    let mut stack = vec![deploy_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // Templates are YAML only once rendered; see the chart test.
                if path.file_name().unwrap() != "templates" {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                yaml(&read(&path), &path.display().to_string());
                found += 1;
            }
        }
    }
    assert!(
        found >= 3,
        "compose file, Chart.yaml and values.yaml at least"
    );
}

#[tokio::test]
async fn the_chart_renders_and_matches_the_binary() {
    let values = default_values();
    let rendered = render_chart(&values);
    for name in [
        "configmap.yaml",
        "deployment.yaml",
        "hpa.yaml",
        "pdb.yaml",
        "secret.yaml",
        "service.yaml",
    ] {
        assert!(rendered.contains_key(name), "{name} missing");
    }
    let deployment = &rendered["deployment.yaml"];
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];

    // The configuration file the pod mounts, and what the binary makes of it.
    let toml = str_at(&rendered["configmap.yaml"], &["data", "finmesh.toml"]);
    let mount = str_at(container, &["volumeMounts", "0", "mountPath"]);
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["serve", "--config", &format!("{mount}/finmesh.toml")]
    );

    // Environment: literal values as given, secrets with sample values.
    let mut env = Vec::new();
    let mut literal_env = Vec::new();
    let mut secret_keys = Vec::new();
    for var in container["env"].as_sequence().unwrap() {
        let name = var["name"].as_str().unwrap().to_string();
        let value = match var["value"].as_str() {
            Some(value) => {
                literal_env.push((name.clone(), value.to_string()));
                value.to_string()
            }
            None => {
                let reference = &var["valueFrom"]["secretKeyRef"];
                assert_eq!(
                    reference["name"].as_str(),
                    rendered["secret.yaml"]["metadata"]["name"].as_str()
                );
                secret_keys.push(reference["key"].as_str().unwrap().to_string());
                secret_sample(&name)
            }
        };
        env.push((name, value));
    }
    let config = config_from(toml, &env);
    assert!(config.store.is_some(), "the secret's store URL is read");

    // Ports: the container's, the listener's, the service's target.
    let container_port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(container_port, port_of(config.server.listen));
    assert_eq!(
        Some(container_port),
        pod["metadata"]["annotations"]["prometheus.io/port"]
            .as_str()
            .and_then(|p| p.parse().ok())
    );
    let port_name = str_at(container, &["ports", "0", "name"]);
    assert_eq!(
        str_at(
            &rendered["service.yaml"],
            &["spec", "ports", "0", "targetPort"]
        ),
        port_name
    );
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(str_at(container, &[probe, "httpGet", "port"]), port_name);
    }
    assert_eq!(
        str_at(container, &["livenessProbe", "httpGet", "path"]),
        "/healthz"
    );
    assert_eq!(
        str_at(container, &["readinessProbe", "httpGet", "path"]),
        "/readyz"
    );
    assert!(container["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(
        container["resources"]["requests"]["memory"]
            .as_str()
            .is_some()
    );

    // Selectors: the HPA scales this deployment, the PDB and service select its pods.
    let deployment_name = str_at(deployment, &["metadata", "name"]);
    assert_eq!(
        str_at(&rendered["hpa.yaml"], &["spec", "scaleTargetRef", "name"]),
        deployment_name
    );
    let labels = &pod["metadata"]["labels"];
    for (file, selector) in [
        (
            "pdb.yaml",
            &rendered["pdb.yaml"]["spec"]["selector"]["matchLabels"],
        ),
        (
            "service.yaml",
            &rendered["service.yaml"]["spec"]["selector"],
        ),
    ] {
        for (key, value) in selector.as_mapping().unwrap() {
            assert_eq!(
                &labels[key.as_str().unwrap()],
                value,
                "{file} selects other pods"
            );
        }
    }

    // With default values the secret is empty, so the optional references
    // leave their variables unset; with values set, every referenced key is there.
    assert!(
        rendered["secret.yaml"]["stringData"].is_null(),
        "{:?}",
        rendered["secret.yaml"]
    );
    let mut with_secrets = values.clone();
    for (key, value) in [
        ("secretKey", "k"),
        ("storeUrl", "postgres://x"),
        ("authHs256Secret", "s"),
    ] {
        with_secrets["secrets"][key] = Value::String(value.into());
    }
    let secret = &render_chart(&with_secrets)["secret.yaml"]["stringData"];
    for key in &secret_keys {
        assert!(
            secret[key.as_str()].as_str().is_some(),
            "secret key {key} missing"
        );
    }

    // The probe paths answer 200 on a gateway run from the chart's
    // configuration (without the store: default values configure none).
    let mut config = config_from(toml, &literal_env);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let gateway = finmesh_server::start(config).await.unwrap();
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let path = str_at(container, &[probe, "httpGet", "path"]);
        let response = reqwest::get(format!("{}{path}", gateway.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{probe} {path}");
    }
    gateway.shutdown().await.unwrap();
}

#[test]
fn the_compose_file_and_the_image_match_the_binary() {
    let compose = yaml(&read(&deploy_dir().join("docker-compose.yml")), "compose");
    let services = &compose["services"];
    for service in ["gateway", "postgres", "redis", "sandbox"] {
        assert!(!services[service].is_null(), "service {service} missing");
    }
    let gateway = &services["gateway"];
    assert_eq!(gateway["deploy"]["replicas"].as_u64(), Some(2));
    let env: Vec<(String, String)> = gateway["environment"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(name, value)| {
            let name = name.as_str().unwrap().to_string();
            let value = value.as_str().unwrap();
            // `${VAR:?...}` comes from the host's environment.
            let value = if value.starts_with("${") {
                secret_sample(&name)
            } else {
                value.to_string()
            };
            (name, value)
        })
        .collect();
    // The image's default configuration, overridden by the compose variables.
    let example = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("finmesh.example.toml"));
    let config = config_from(&example, &env);
    let listen_port = port_of(config.server.listen);
    let published = gateway["ports"][0].as_str().unwrap();
    assert!(
        published.ends_with(&format!(":{listen_port}")),
        "{published} does not reach the gateway's port {listen_port}"
    );
    let store = config
        .store
        .as_ref()
        .expect("the compose gateways share a store");
    assert!(store.url.contains("@postgres:"), "{}", store.url);

    // The sandbox listens where the gateways look for Zonky.
    let zonky = env
        .iter()
        .find(|(name, _)| name == "FINMESH_PROVIDERS__ZONKY__BASE_URL")
        .map(|(_, url)| url::Url::parse(url).unwrap())
        .unwrap();
    let command: Vec<&str> = services["sandbox"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let port_arg = command.iter().position(|a| *a == "--port").unwrap() + 1;
    assert_eq!(zonky.host_str(), Some("sandbox"));
    assert_eq!(
        zonky.port().map(|p| p.to_string()).as_deref(),
        Some(command[port_arg])
    );
    assert!(
        command.contains(&"0.0.0.0"),
        "other containers must reach the sandbox"
    );

    // The image: EXPOSE, the listener its ENV sets, the health check's path.
    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    let expose = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .unwrap()
        .trim();
    let listen = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENV FINMESH_SERVER__LISTEN="))
        .unwrap()
        .trim();
    let listen: std::net::SocketAddr = listen.parse().unwrap();
    assert_eq!(expose, listen.port().to_string());
    assert!(dockerfile.contains(&format!("http://127.0.0.1:{expose}/healthz")));
    assert!(
        dockerfile.contains("\nUSER "),
        "the image runs as a non-root user"
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
}
