//! No Docker engine runs here, so the compose file is checked against the code:
//! commands are real subcommands, variables are ones the config reads, host ports
//! do not collide, healthchecks target real endpoints, the Dockerfile builds the
//! binary the services run.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use clap::{CommandFactory as _, Parser as _};
use serde_yaml_ng::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn compose() -> Value {
    let text =
        std::fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml");
    let mut v: Value = serde_yaml_ng::from_str(&text).expect("compose file is valid YAML");
    v.apply_merge().expect("YAML merge keys resolve");
    v
}

fn services(v: &Value) -> BTreeMap<String, Value> {
    v.get("services")
        .and_then(Value::as_mapping)
        .expect("services")
        .iter()
        .map(|(k, v)| (k.as_str().expect("service name").to_owned(), v.clone()))
        .collect()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn is_centralino(svc: &Value) -> bool {
    svc.get("image").and_then(Value::as_str) == Some("centralino:dev")
}

/// What compose makes of a value: `${VAR:-default}` becomes its default;
/// `${VAR:?msg}` and `${VAR}` are filled in at run time, so a valid stand-in.
fn interpolate(v: &str) -> String {
    let mut out = String::new();
    let mut rest = v;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .unwrap_or_else(|| panic!("unclosed ${{ in {v:?}"));
        let inner = &rest[start + 2..end];
        match inner.split_once(":-").or_else(|| inner.split_once('-')) {
            Some((_, default)) => out.push_str(default),
            None => out.push_str(&"s".repeat(40)),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A service's environment as the process sees it.
fn environment(name: &str, svc: &Value) -> Vec<(String, String)> {
    svc.get("environment")
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{name} has an environment map"))
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("env name").to_owned(),
                interpolate(v.as_str().unwrap_or_default()),
            )
        })
        .collect()
}

/// `(host path, container path, read-only)` of each bind mount.
fn mounts(svc: &Value) -> Vec<(String, String, bool)> {
    strings(svc.get("volumes"))
        .into_iter()
        .filter_map(|v| {
            let mut parts = v.split(':');
            let host = parts.next()?.to_owned();
            let target = parts.next()?.to_owned();
            let ro = parts.next() == Some("ro");
            host.starts_with("./").then_some((host, target, ro))
        })
        .collect()
}

/// The configuration a centralino service runs with: its `--config` file
/// (through its bind mount) overlaid with its environment.
fn service_config(name: &str, svc: &Value) -> centralino::Config {
    let command = strings(svc.get("command"));
    let file = command
        .iter()
        .skip_while(|a| *a != "--config")
        .nth(1)
        .map(|target| {
            let (host, _, ro) = mounts(svc)
                .into_iter()
                .find(|(_, t, _)| t == target)
                .unwrap_or_else(|| panic!("{name}: --config {target} is not mounted"));
            assert!(ro, "{name}: {target} is mounted read-only");
            root().join(host)
        });
    centralino::Config::load(file.as_deref(), environment(name, svc))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn compose_commands_are_real_subcommands() {
    let cli = centralino::cli::Cli::command();
    let subcommands: HashSet<String> = cli
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    let all = services(&compose());
    let ours: Vec<_> = all.iter().filter(|(_, s)| is_centralino(s)).collect();
    assert!(
        ours.len() >= 2,
        "migrate and at least one service run the centralino image"
    );
    for (name, svc) in ours {
        let command = strings(svc.get("command"));
        let sub = command
            .first()
            .unwrap_or_else(|| panic!("{name} has no command"));
        assert!(
            subcommands.contains(sub),
            "{name} runs `centralino {sub}`, which does not exist"
        );
        centralino::cli::Cli::try_parse_from(
            std::iter::once("centralino".to_owned()).chain(command.clone()),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{name}: `centralino {}` does not parse: {e}",
                command.join(" ")
            )
        });
    }
}

#[test]
fn compose_environment_is_what_the_config_reads_and_is_valid() {
    let known: HashSet<String> = centralino::Config::env_names().into_iter().collect();
    for (name, svc) in services(&compose()) {
        if !is_centralino(&svc) {
            continue;
        }
        let pairs = environment(&name, &svc);
        for (k, _) in &pairs {
            assert!(
                known.contains(k),
                "{name}: {k} is not read by the config (known: {known:?})"
            );
        }
        centralino::Config::load(None, pairs).unwrap_or_else(|e| panic!("{name}: {e}"));
        // With the file it is given, too.
        service_config(&name, &svc);
    }
}

#[test]
fn compose_host_ports_do_not_collide() {
    let mut seen = HashSet::new();
    for (name, svc) in services(&compose()) {
        for p in strings(svc.get("ports")) {
            let host = p.split(':').next().expect("port mapping").to_owned();
            assert!(
                seen.insert(host.clone()),
                "{name}: host port {host} is published twice"
            );
        }
    }
}

#[test]
fn compose_healthchecks_target_real_endpoints() {
    let all = services(&compose());
    for (name, svc) in &all {
        let Some(hc) = svc.get("healthcheck") else {
            continue;
        };
        let test = strings(hc.get("test"));
        assert_eq!(
            test.first().map(String::as_str),
            Some("CMD"),
            "{name}: exec-form healthcheck"
        );
        match test.get(1).map(String::as_str) {
            Some("centralino") => {
                assert_eq!(test.get(2).map(String::as_str), Some("health"), "{name}");
                let addr = test
                    .iter()
                    .skip_while(|a| *a != "--addr")
                    .nth(1)
                    .expect("--addr");
                let port = addr.rsplit(':').next().expect("port");
                let env = svc
                    .get("environment")
                    .and_then(Value::as_mapping)
                    .expect("env");
                let listen = env
                    .get("CENTRALINO_GRPC__LISTEN")
                    .and_then(Value::as_str)
                    .unwrap_or("127.0.0.1:50051");
                assert!(
                    listen.ends_with(&format!(":{port}")),
                    "{name}: healthcheck port {port} but listens on {listen}"
                );
                assert!(
                    listen.starts_with("0.0.0.0:") || listen.starts_with("127.0.0.1:"),
                    "{name}: the healthcheck runs inside the container"
                );
            }
            Some("rabbitmq-diagnostics") | Some("pg_isready") => {}
            other => panic!("{name}: unknown healthcheck command {other:?}"),
        }
    }
    for (name, svc) in &all {
        if let Some(deps) = svc.get("depends_on").and_then(Value::as_mapping) {
            for (dep, cond) in deps {
                let dep = dep.as_str().expect("dep name");
                let target = all
                    .get(dep)
                    .unwrap_or_else(|| panic!("{name} depends on unknown {dep}"));
                if cond.get("condition").and_then(Value::as_str) == Some("service_healthy") {
                    assert!(
                        target.get("healthcheck").is_some(),
                        "{name} waits for {dep} to be healthy but it has no healthcheck"
                    );
                }
            }
        }
    }
}

#[test]
fn dockerfile_builds_and_runs_the_binary() {
    let text =
        std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    assert!(text.contains("cargo build --release --locked -p centralino"));
    assert!(text.contains("ENTRYPOINT [\"centralino\"]"));
    let from_count = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert!(from_count >= 2, "multi-stage build");
    for (name, svc) in services(&compose()) {
        if let Some(build) = svc.get("build") {
            let file = build
                .get("dockerfile")
                .and_then(Value::as_str)
                .expect("dockerfile");
            assert!(root().join(file).exists(), "{name}: {file} exists");
        }
    }
    assert!(root().join("deploy/otel-collector.yaml").exists());
}

#[test]
fn the_shipped_email_config_loads_and_bad_email_settings_are_named() {
    let config = centralino::Config::load(Some(&root().join("deploy/email.toml")), [])
        .unwrap_or_else(|e| panic!("deploy/email.toml: {e}"));
    let email = config.email.email_config().expect("valid email settings");
    assert_eq!(email.mailboxes.len(), 2);
    assert_eq!(
        email.mailboxes[1].after_import,
        centralino_email::AfterImport::Move("Imported".into())
    );
    assert!(email.ack.is_some() && email.smtp.is_some());

    let dir = std::env::temp_dir().join(centralino_test_support::unique("cfg"));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[email.mailboxes]]\nname = \"a\"\naddress = \"not-an-address\"\nqueue = \"q\"\n\
         host = \"h\"\nuser = \"u\"\npassword = \"p\"\nsecurity = \"ssl\"\nafter_import = \"delete\"\n",
    )
    .expect("write");
    let err = centralino::Config::load(Some(&bad), [])
        .expect_err("refused")
        .to_string();
    for field in [
        "email.mailboxes[0].security",
        "email.mailboxes[0].after_import",
        "email.mailboxes[0].address",
    ] {
        assert!(err.contains(field), "{field} is named in: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_shipped_sms_config_loads_and_bad_sms_settings_are_named() {
    let config = centralino::Config::load(Some(&root().join("deploy/sms.toml")), [])
        .unwrap_or_else(|e| panic!("deploy/sms.toml: {e}"));
    let sms = config
        .sms
        .sms_config(&config.identity)
        .expect("valid sms settings")
        .expect("the adapter is configured");
    assert_eq!(sms.numbers.len(), 2);
    assert_eq!(sms.numbers[1].queue, "sms-sales");
    assert!(sms.smpp.is_some() && sms.webhook.is_some() && sms.rest.is_some());
    assert_eq!(
        sms.rest.and_then(|r| r.status_callback).as_deref(),
        Some("https://sms.example.com/sms/twilio/status"),
        "the status callback defaults to the webhook"
    );
    // Secrets from the environment, as compose passes them.
    let config = centralino::Config::load(
        Some(&root().join("deploy/sms.toml")),
        [(
            "CENTRALINO_SMS__SMPP__PASSWORD".to_owned(),
            "s3cret".to_owned(),
        )],
    )
    .expect("loads with the override");
    assert_eq!(
        config.sms.smpp.map(|s| s.password).as_deref(),
        Some("s3cret")
    );

    let dir = std::env::temp_dir().join(centralino_test_support::unique("cfg"));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[sms.smpp]\nhost = \"h\"\nsystem_id = \"s\"\npassword = \"p\"\nwindow = 0\n\
         [sms.webhook]\nlisten = \"everywhere\"\npublic_base_url = \"https://x\"\nauth_token = \"t\"\n",
    )
    .expect("write");
    let err = centralino::Config::load(Some(&bad), [])
        .expect_err("refused")
        .to_string();
    for field in ["sms.smpp.window", "sms.webhook.listen", "sms.numbers"] {
        assert!(err.contains(field), "{field} is named in: {err}");
    }
    // Webhooks alone can receive but not answer; a status callback the
    // webhook would refuse is named too.
    std::fs::write(
        &bad,
        "[sms]\nnumbers = [{ number = \"4321\", queue = \"sms\" }]\n\
         [sms.webhook]\npublic_base_url = \"https://x.test\"\nauth_token = \"t\"\n",
    )
    .expect("write");
    let err = centralino::Config::load(Some(&bad), [])
        .expect_err("refused")
        .to_string();
    assert!(err.contains("sms.rest"), "{err}");
    std::fs::write(
        &bad,
        "[sms]\nnumbers = [{ number = \"4321\", queue = \"sms\" }]\n\
         [sms.webhook]\npublic_base_url = \"https://x.test\"\nauth_token = \"t\"\n\
         [sms.rest]\nbase_url = \"https://api.x.test\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\n\
         status_callback = \"https://x.test/elsewhere\"\n",
    )
    .expect("write");
    let err = centralino::Config::load(Some(&bad), [])
        .expect_err("refused")
        .to_string();
    assert!(err.contains("sms.rest.status_callback"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The voice adapter's RTP ports are ephemeral, so it runs on the host's
/// network: it publishes nothing, reaches the others through their published
/// ports, listens where no published port is, and has its prompts.
#[test]
fn compose_runs_voice_on_the_host_network_with_its_prompts() {
    let all = services(&compose());
    let published: HashSet<u16> = all
        .values()
        .flat_map(|s| strings(s.get("ports")))
        .filter_map(|p| p.split(':').next()?.parse().ok())
        .collect();
    for name in ["voice", "voice-standby"] {
        let svc = all
            .get(name)
            .unwrap_or_else(|| panic!("docker-compose.yml has a {name} service"));
        assert_eq!(
            strings(svc.get("command")),
            ["voice", "--config", "/etc/centralino/voice.toml"],
            "{name}"
        );
        assert_eq!(
            svc.get("network_mode").and_then(Value::as_str),
            Some("host"),
            "{name}: RTP ports are ephemeral"
        );
        assert!(
            svc.get("ports").is_none(),
            "{name}: nothing is published on the host's network"
        );
        // The compose network's names do not resolve on the host's network.
        for (key, value) in environment(name, svc) {
            for other in all.keys() {
                assert!(
                    !value.contains(&format!("@{other}:"))
                        && !value.contains(&format!("//{other}:")),
                    "{name}: {key} names the service {other}, unreachable from the host's network"
                );
            }
        }
        let config = service_config(name, svc);
        let voice = config
            .voice
            .voice_config(&config.identity)
            .expect("valid voice settings")
            .expect("the adapter is configured");
        for port in [
            voice.listen.port(),
            config.listen_addr().expect("grpc listen").port(),
        ] {
            assert!(
                !published.contains(&port),
                "{name}: listens on the host's port {port}, which another service publishes"
            );
        }
        assert_eq!(voice.listen.port(), 5060, "{name}: SIP on 5060");
        let (host, _, ro) = mounts(svc)
            .into_iter()
            .find(|(_, target, _)| voice.prompts_dir == Path::new(target))
            .unwrap_or_else(|| {
                panic!(
                    "{name}: prompts_dir {} is not mounted",
                    voice.prompts_dir.display()
                )
            });
        assert!(ro, "{name}: the prompts are mounted read-only");
        assert!(
            root().join(&host).join("moh/default.wav").is_file(),
            "{name}: {host} holds the prompts"
        );
    }
    let deps = |name: &str| -> Vec<String> {
        let mut d: Vec<String> = all[name]
            .get("depends_on")
            .and_then(Value::as_mapping)
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        d.sort();
        d
    };
    assert_eq!(
        deps("voice"),
        deps("sms"),
        "voice waits for what sms waits for"
    );
    assert_eq!(deps("voice-standby"), ["voice"]);
}

#[test]
fn the_shipped_desk_config_loads_and_compose_runs_it_and_bad_desk_settings_are_named() {
    let config = centralino::Config::load(Some(&root().join("deploy/desk.toml")), [])
        .unwrap_or_else(|e| panic!("deploy/desk.toml: {e}"));
    let desk = config
        .desk
        .desk_config(&config.identity)
        .expect("valid desk settings")
        .expect("the desk is configured");
    assert_eq!(desk.sites.len(), 2);
    assert_eq!(desk.sites[0].tz, chrono_tz::Europe::Rome);
    assert_eq!(desk.counters["milano-duomo"], ["1", "2"]);
    assert_eq!(
        desk.services[0].prefix, "A",
        "the prefix defaults to the code"
    );
    assert_eq!(
        desk.services[0].queue_for("roma-centro"),
        "desk-payments-roma-centro"
    );
    assert_eq!(desk.tickets.no_show_after_ms, 300_000);
    assert_eq!(desk.notify.as_ref().map(|n| n.at_position), Some(3));
    assert_eq!(
        desk.printers["roma-centro"],
        "10.0.10.20:9100".parse().expect("addr")
    );
    assert!(!desk.printers.contains_key("milano-duomo"));
    assert!(config.desk.kiosk_auth, "kiosks need a token");

    let all = services(&compose());
    for name in ["desk", "desk-standby"] {
        let svc = all
            .get(name)
            .unwrap_or_else(|| panic!("compose has {name}"));
        assert_eq!(
            strings(svc.get("command")),
            ["desk", "--config", "/etc/centralino/desk.toml"]
        );
        let config = service_config(name, svc);
        let desk = config
            .desk
            .desk_config(&config.identity)
            .expect("valid")
            .expect("configured");
        assert_eq!(desk.listen.port(), 8090);
    }
    assert!(
        strings(all["desk"].get("ports")).contains(&"8090:8090".to_owned()),
        "kiosks and boards reach the desk on 8090"
    );

    let dir = std::env::temp_dir().join(centralino_test_support::unique("cfg"));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[desk]\nlisten = \"kiosk\"\n\
         [[desk.sites]]\nid = \"a\"\ntimezone = \"Europe/Roma\"\nopens = \"8.30\"\ncloses = \"17:00\"\nprinter = \"paper\"\n\
         [[desk.services]]\ncode = \"A\"\nname = \"x\"\nqueue = \"q\"\n",
    )
    .expect("write");
    let err = centralino::Config::load(Some(&bad), [])
        .expect_err("refused")
        .to_string();
    for field in [
        "desk.listen",
        "desk.sites[0].timezone",
        "desk.sites[0].opens",
        "desk.sites[0].printer",
    ] {
        assert!(err.contains(field), "{field} is named in: {err}");
    }
    std::fs::write(
        &bad,
        "[[desk.sites]]\nid = \"a\"\ntimezone = \"UTC\"\nopens = \"08:00\"\ncloses = \"17:00\"\n\
         [[desk.sites]]\nid = \"b\"\ntimezone = \"UTC\"\nopens = \"08:00\"\ncloses = \"17:00\"\n\
         [[desk.services]]\ncode = \"A\"\nname = \"x\"\nqueue = \"payments\"\n",
    )
    .expect("write");
    let err = centralino::Config::load(Some(&bad), [])
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("desk.services[0].queue must contain `{site}`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every queue the shipped adapter files send work to is one the shipped
/// routing file defines, in docker-compose as in the built-in demo: nothing
/// a customer sends waits unrouted for a queue nobody defined.
#[test]
fn the_shipped_routing_defines_every_queue_the_shipped_adapters_use() {
    let v = compose();
    let configs: BTreeMap<String, centralino::Config> = services(&v)
        .into_iter()
        .filter(|(_, svc)| is_centralino(svc))
        .map(|(name, svc)| {
            let config = service_config(&name, &svc);
            (name, config)
        })
        .collect();
    let routing = &configs.get("routing").expect("a routing service").routing;
    assert_eq!(
        configs.get("routing-standby").map(|c| &c.routing),
        Some(routing),
        "the standby runs with the same definitions"
    );
    let defined: std::collections::BTreeSet<&str> =
        routing.queues.iter().map(|q| q.name.as_str()).collect();
    let mut used = 0;
    for (name, config) in &configs {
        for (queue, users) in centralino::adapter_queues(config) {
            used += 1;
            assert!(
                defined.contains(queue.as_str()),
                "{name} sends work to {queue} ({users:?}), which deploy/routing.toml does not define"
            );
        }
    }
    assert!(used >= 10, "the adapters' queues were found ({used})");
    let demo = centralino::Config::load_demo([]).expect("the demo loads");
    let demo_defined: std::collections::BTreeSet<&str> = demo
        .routing
        .queues
        .iter()
        .map(|q| q.name.as_str())
        .collect();
    let demo_used = centralino::adapter_queues(&demo);
    assert!(demo_used.len() >= 3, "{demo_used:?}");
    for (queue, users) in demo_used {
        assert!(
            demo_defined.contains(queue.as_str()),
            "the demo sends work to {queue} ({users:?}) but does not define it"
        );
    }
}
