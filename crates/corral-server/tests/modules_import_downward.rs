//! The crate's modules form a ladder: no two import each other, and the
//! crate docs' `# Layout` lists them so that each imports only the ones
//! listed before it — read from the sources, so that the docs stay true. A
//! module that is a folder (`types/`) counts as one, all its files
//! together; within it, no dialect's file imports another dialect's: what
//! they share lives in its `mod.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The text of every `.rs` file in `dir`, by file stem.
fn files_in(dir: &std::path::Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.extension().is_some_and(|e| e == "rs") {
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    files
}

/// Each module (a file of `src/` but `lib.rs`, or a folder of `src/`) and
/// the other modules it names as `crate::name`.
fn imports() -> BTreeMap<String, Vec<String>> {
    let mut modules = files_in(&src());
    modules.remove("lib");
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let text: String = files_in(&path).into_values().collect();
            assert!(!text.is_empty(), "src/{name}/ holds no module");
            modules.insert(name, text);
        }
    }
    let names: Vec<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(name, text)| {
            let used = names
                .iter()
                .filter(|other| **other != name)
                .filter(|other| {
                    text.match_indices(&format!("crate::{other}"))
                        .any(|(i, m)| {
                            // `crate::model` but not `crate::models_x`.
                            !text[i + m.len()..]
                                .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                        })
                })
                .cloned()
                .collect();
            (name, used)
        })
        .collect()
}

/// The modules the crate docs' `# Layout` lists, in order.
fn layout() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let section = lib
        .split("//! # Layout")
        .nth(1)
        .expect("lib.rs has a `# Layout` section");
    section
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("//!"))
        .filter_map(|l| l.strip_prefix("//! - "))
        .map(|item| {
            let name = item.trim_start_matches('[').trim_start_matches('`');
            name[..name.find('`').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn each_module_imports_only_those_the_layout_lists_before_it() {
    let imports = imports();
    let order = layout();
    let mut listed: Vec<&String> = order.iter().collect();
    listed.sort();
    assert_eq!(
        listed,
        imports.keys().collect::<Vec<_>>(),
        "the layout lists every module once"
    );
    for (i, module) in order.iter().enumerate() {
        for used in &imports[module] {
            assert!(
                order[..i].contains(used),
                "`{module}` imports `{used}`, which the layout does not list before it \
                 (imports: {imports:?})"
            );
        }
    }
}

/// Whether `text` names `module` as a path segment after `prefix`
/// (`super::tei` but not `super::teil`).
fn names(text: &str, prefix: &str, module: &str) -> bool {
    let needle = format!("{prefix}{module}");
    text.match_indices(&needle)
        .any(|(i, m)| !text[i + m.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

#[test]
fn no_dialect_imports_another() {
    let files = files_in(&src().join("types"));
    assert!(files.contains_key("mod"), "src/types/mod.rs");
    let dialects: Vec<&String> = files.keys().filter(|k| *k != "mod").collect();
    assert!(dialects.len() >= 4, "{dialects:?}");
    for (name, text) in &files {
        for other in &dialects {
            if *other == name || name == "mod" {
                continue;
            }
            assert!(
                !names(text, "super::", other) && !names(text, "crate::types::", other),
                "types/{name}.rs imports the dialect `{other}`"
            );
        }
    }
}
