//! The actor folders form a DAG that reads like the node diagram: a
//! module imports only modules on a lower layer (see `# Layers` in the
//! crate doc). This test reads the sources and fails on any `crate::x`
//! path that points up or sideways, so a cycle cannot creep back in.

use std::path::{Path, PathBuf};

/// Top to bottom; a module may import only from layers below its own.
const LAYERS: &[&[&str]] = &[
    &["resp"],
    &["client_api"],
    &["failure_detector"],
    &["repair"],
    &["replicator"],
    &["replicas"],
    &["bridge", "storage", "conflict_resolver"],
    &["membership"],
    &["tls", "metrics"],
    &["ring", "wire", "net", "clock", "persist"],
    &["node_id", "secret"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file of a module (its file, or every file under its folder).
fn files_of(src: &Path, module: &str) -> Vec<PathBuf> {
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a module folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// The non-test part of a source file: test modules (everything after the
/// first `#[cfg(test)]`) and test-only files may use anything.
fn production_code(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "tests.rs" || name.ends_with("_tests.rs") || name == "test_support.rs" {
        return String::new();
    }
    let text = std::fs::read_to_string(path).expect("a readable source file");
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// The modules `code` names as `crate::<module>`.
fn imports(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

#[test]
fn every_module_imports_only_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let modules: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(modules.len() > 10, "lib.rs lists its modules: {modules:?}");
    let mut wrong = Vec::new();
    for module in &modules {
        let Some(own) = layer_of(module) else {
            wrong.push(format!("{module} is on no layer: add it to LAYERS"));
            continue;
        };
        for file in files_of(&src, module) {
            for target in imports(&production_code(&file)) {
                if target == *module {
                    continue;
                }
                match layer_of(&target) {
                    Some(layer) if layer > own => {}
                    _ => wrong.push(format!(
                        "{} imports crate::{target}, which is not below {module}",
                        file.display()
                    )),
                }
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_imports() {
    assert_eq!(
        imports("use crate::ring::Ring; use crate::NodeId; crate::wire::x"),
        vec!["ring", "wire"]
    );
}
