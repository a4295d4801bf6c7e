//! The crate's modules form a ladder: no two import each other, and the
//! crate docs' `# Layout` lists them so that each imports only the ones
//! listed before it — read from the sources, so that the docs stay true.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Each module (a file of `src/` but `lib.rs`) and the other modules it
/// names as `crate::name`.
fn imports() -> BTreeMap<String, Vec<String>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            modules.insert(name, std::fs::read_to_string(&path).unwrap());
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
