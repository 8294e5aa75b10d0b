//! Tidy: rules about the tree itself, checked on every test run (in the
//! spirit of rust-analyzer's tidy test). Each failure says which file breaks
//! which rule and what to do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every crate under `crates/`: name → directory.
fn crates() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crates")).expect("crates/") {
        let dir = entry.expect("entry").path();
        if dir.join("Cargo.toml").is_file() {
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .expect("a UTF-8 name")
                .to_owned();
            out.insert(name, dir);
        }
    }
    out
}

/// The names in a manifest's `[dependencies]` table (not dev- or build-).
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside
            && let Some((name, _)) = line.split_once(['=', '.'])
            && !name.trim().is_empty()
            && !line.starts_with('#')
        {
            out.insert(name.trim().to_owned());
        }
    }
    out
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The crates whose logic is pure: no IO, no clock, no runtime.
const PURE: &[&str] = &[
    "centralino-domain",
    "centralino-routing",
    "centralino-mime",
    "centralino-gsm",
    "centralino-telephony",
    "centralino-ticketing",
];

/// What a pure crate may not depend on, directly or through another of ours.
const IO: &[&str] = &[
    "tokio",
    "sqlx",
    "sea-orm",
    "tonic",
    "lapin",
    "axum",
    "hyper",
    "reqwest",
    "lettre",
    "async-imap",
    "rsipstack",
    "rusmppc",
    "tracing-subscriber",
];

#[test]
fn pure_crates_depend_on_no_io_crate() {
    let all = crates();
    let mut broken = Vec::new();
    for pure in PURE {
        let mut seen = BTreeSet::new();
        let mut todo = vec![(*pure).to_owned()];
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(dir) = all.get(&name) else { continue };
            for dep in dependencies(&read(&dir.join("Cargo.toml"))) {
                if IO.contains(&dep.as_str()) {
                    broken.push(format!("{pure} reaches {dep} (through {name})"));
                }
                if all.contains_key(&dep) {
                    todo.push(dep);
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "pure crates must stay free of IO; move the IO to an adapter crate: {broken:#?}"
    );
}

#[test]
fn only_the_binarys_main_reads_the_environment() {
    let main = root().join("crates/centralino/src/main.rs");
    let mut broken = Vec::new();
    for (name, dir) in crates() {
        if name == "centralino-test-support" {
            continue;
        }
        for file in rust_files(&dir.join("src")) {
            if file == main {
                continue;
            }
            let text = read(&file);
            for needle in [
                "env::var(",
                "env::var_os(",
                "env::vars(",
                "env::vars_os(",
                "env::args(",
                "env::args_os(",
            ] {
                if text.contains(needle) {
                    broken.push(format!("{}: {needle}", file.display()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "read the environment in crates/centralino/src/main.rs and pass typed config: {broken:#?}"
    );
}

#[test]
fn every_crate_is_in_the_codemap_and_starts_with_a_doc() {
    let architecture = read(&root().join("ARCHITECTURE.md"));
    let mut broken = Vec::new();
    for (name, dir) in crates() {
        if !architecture.contains(&format!("| `{name}` |")) {
            broken.push(format!("{name} has no row in ARCHITECTURE.md's codemap"));
        }
        let lib = dir.join("src/lib.rs");
        let first = if lib.is_file() {
            lib
        } else {
            dir.join("src/main.rs")
        };
        if !read(&first).trim_start().starts_with("//!") {
            broken.push(format!("{} does not start with a //! doc", first.display()));
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

/// Leaders write through their fence (`Fence::begin`), so a deposed
/// instance's writes fail; only the store itself opens a plain write
/// transaction.
#[test]
fn services_write_through_their_leadership_fence() {
    let mut broken = Vec::new();
    for (name, dir) in crates() {
        if matches!(
            name.as_str(),
            "centralino-store" | "centralino-test-support" | "centralino"
        ) {
            continue;
        }
        for file in rust_files(&dir.join("src")) {
            if read(&file).contains("centralino_store::begin(") {
                broken.push(file.display().to_string());
            }
        }
    }
    assert!(
        broken.is_empty(),
        "begin write transactions with the leadership's fence (leadership.fence().begin(&db)): {broken:#?}"
    );
}

/// sqlx 0.9.0 leaves Nagle's algorithm on, which is why every bulk
/// statement is cut below 12 KiB (`centralino_store::chunks`). When sqlx
/// moves, measure again and remove the cut if it is no longer needed.
#[test]
fn the_statement_cut_is_revisited_when_sqlx_leaves_0_9_0() {
    let lock = read(&root().join("Cargo.lock"));
    let versions: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.contains("\nname = \"sqlx\"\n"))
        .filter_map(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .collect();
    assert_eq!(
        versions,
        ["\"0.9.0\""],
        "sqlx is no longer 0.9.0: run `history_bench probe` (docs/benchmarks.md) and remove \
         centralino_store::chunks if statements over 16 KiB no longer wait ~40 ms, then update this test"
    );
}

/// Routing keys come from `centralino_bus::keys`, so a publisher and a
/// consumer cannot spell one differently.
#[test]
fn no_literal_routing_key_outside_the_keys_module() {
    const CHANNELS: &[&str] = &["voice", "email", "sms", "desk", "chat", "task", "*", "#"];
    let mut shapes: Vec<String> = Vec::new();
    for c in CHANNELS {
        shapes.push(format!("\"interaction.{c}."));
        shapes.push(format!("\"routing.{c}."));
        shapes.push(format!("\"consent.{c}."));
    }
    for k in [
        // How keys were spelled before the keys module: formatted.
        "\"interaction.{",
        "\"routing.{",
        "\"consent.{",
        "\"customer.{",
        "\"interaction.#\"",
        "\"routing.#\"",
        "\"customer.merged\"",
        "\"customer.unmerged\"",
        "\"customer.erased\"",
        "\"command.refused\"",
        "\"email.send\"",
        "\"sms.send\"",
        "\"history.record_consent\"",
        "\"routing.agent_not_reached\"",
    ] {
        shapes.push(k.to_owned());
    }
    let allowed = [
        "crates/centralino-bus/src/keys.rs",
        // Its unit tests match patterns against sample keys.
        "crates/centralino-bus/src/topology.rs",
        // `COMMAND_REFUSED`, which `keys::command_refused` names.
        "crates/centralino-bus/src/envelope.rs",
    ];
    let mut broken = Vec::new();
    for (name, dir) in crates() {
        if matches!(
            name.as_str(),
            "centralino-test-support" | "centralino-proto"
        ) {
            continue;
        }
        for file in rust_files(&dir.join("src")) {
            let relative = file
                .strip_prefix(root())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            if allowed.contains(&relative.as_str()) {
                continue;
            }
            let text = read(&file);
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if let Some(shape) = shapes.iter().find(|s| code.contains(s.as_str())) {
                    broken.push(format!("{relative}:{}: {shape}", n + 1));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "name routing keys through centralino_bus::keys: {broken:#?}"
    );
}

/// A crate's modules: `x.rs`, or the folder `x/` when it has a `mod.rs` or
/// sits beside `x.rs`, name → its files. `lib.rs` and `main.rs` are the root,
/// which declares every module, and no module of its own.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(src) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_stem().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            if path.join("mod.rs").is_file() || src.join(format!("{name}.rs")).is_file() {
                out.entry(name.to_owned())
                    .or_default()
                    .extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|e| e == "rs") && !matches!(name, "lib" | "main") {
            out.entry(name.to_owned()).or_default().push(path);
        }
    }
    out
}

/// The first segment of every path that starts with `prefix` (`crate::`,
/// `super::`) in `code`; for a group (`crate::{a::X, b}`) the first segment
/// of each of its members.
fn first_segments(code: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let leading =
        |s: &str| -> String { s.trim_start().chars().take_while(|c| ident(*c)).collect() };
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices(prefix) {
        if code[..at].chars().next_back().is_some_and(ident) {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        let Some(group) = rest.trim_start().strip_prefix('{') else {
            out.insert(leading(rest));
            continue;
        };
        // The group's members, split at its own commas.
        let (mut depth, mut start) = (0usize, 0usize);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.insert(leading(&group[start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.insert(leading(&group[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    out
}

/// The sibling modules a file's code names (`crate::b`, and `super::b` in a
/// module's top file, where `super` is the root): comment lines and
/// everything from a `#[cfg(test)]` line on are left out.
fn modules_used(text: &str, top_file: bool) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = first_segments(&code, "crate::");
    if top_file {
        out.extend(first_segments(&code, "super::"));
    }
    out
}

/// Every cycle reachable in `graph`, each as the modules along it, the first
/// repeated at the end (depth-first; a cycle is reported once per back edge).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(at) = stack.iter().position(|n| n == next) {
                let mut cycle = stack[at..].to_vec();
                cycle.push(next.clone());
                found.push(cycle);
            } else if !done.contains(next) {
                visit(next, graph, stack, done, found);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for node in graph.keys() {
        if !done.contains(node) {
            visit(node, graph, &mut Vec::new(), &mut done, &mut found);
        }
    }
    found
}

/// No two modules of a crate use each other, directly or around a longer
/// circle: a reader can take a crate's files in an order where each one
/// only names the ones before it. A module uses another when its files name
/// `crate::other` (or `super::other` from its top file).
#[test]
fn no_module_cycles_inside_a_crate() {
    let mut broken = Vec::new();
    for (name, dir) in crates() {
        let src = dir.join("src");
        let modules = modules(&src);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (module, files) in &modules {
            for file in files {
                let top_file = file.parent() == Some(src.as_path())
                    || file.ends_with(format!("{module}/mod.rs"));
                for used in modules_used(&read(file), top_file) {
                    if &used != module && modules.contains_key(&used) {
                        graph.entry(module.clone()).or_default().insert(used);
                    }
                }
            }
        }
        for cycle in cycles(&graph) {
            broken.push(format!("{name}: {}", cycle.join(" → ")));
        }
    }
    assert!(
        broken.is_empty(),
        "modules of a crate use each other in a circle; move what both need into a module of its \
         own that both use: {broken:#?}"
    );
}

/// Test resources on RabbitMQ are named from one registered list of
/// prefixes (`centralino-test-support`'s `prefixes.rs`, which `cargo xtask
/// test` includes to delete what an interrupted run left behind): a test or
/// benchmark takes its bus prefix with `bus_prefix`, never `unique`.
#[test]
fn test_bus_prefixes_are_registered_in_one_place() {
    let registry = read(&root().join("crates/centralino-test-support/src/prefixes.rs"));
    let registered: Vec<String> = registry
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(registered.len() > 5, "prefixes.rs lists the prefixes");
    let mut broken = Vec::new();
    for dir in crates().values() {
        for sub in ["tests", "examples", "benches", "src"] {
            for file in rust_files(&dir.join(sub)) {
                let text = read(&file);
                for p in &registered {
                    if text.contains(&format!("unique(\"{p}\")")) {
                        broken.push(format!("{}: unique(\"{p}\")", file.display()));
                    }
                }
                // A bus prefix made with `unique` escapes the registry
                // (test-support's lib.rs defines both functions).
                if file.ends_with("centralino-test-support/src/lib.rs") {
                    continue;
                }
                for (n, line) in text.lines().enumerate() {
                    // A bus prefix: assigned to a `prefix` or given to a
                    // `Topology` (a temporary directory's name is not one).
                    if line.contains("unique(")
                        && (line.contains("prefix =") || line.contains("Topology"))
                        && !line.contains("temp_dir")
                        && !line.trim_start().starts_with("//")
                    {
                        broken.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "take bus prefixes with centralino_test_support::bus_prefix: {broken:#?}"
    );
    assert!(
        read(&root().join("xtask/src/main.rs"))
            .contains("include!(\"../../crates/centralino-test-support/src/prefixes.rs\")"),
        "xtask deletes stale test queues by the registered prefixes"
    );
}
