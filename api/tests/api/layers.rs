//! The server's layers (issue 17, docs/architecture.md): each folder of
//! `api/src/server/` is a layer, and a module imports only from its own layer and those
//! below. This test reads the sources and fails on an import that points up, so a new
//! one cannot land unnoticed; the upward imports that are still there are listed in
//! [`KNOWN_UPWARD`] (each a piece of the redesign still to do), and the list may only
//! shrink: an entry that no longer occurs fails too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom first. `store` and `http` are one layer, the platform.
const LAYERS: [&[&str]; 6] = [
    &["store", "http"],
    &["catalog"],
    &["booking"],
    &["messages"],
    &["sync"],
    &["dispatch"],
];

/// `(file, layer folder it imports from)` still pointing up.
const KNOWN_UPWARD: [(&str, &str); 12] = [
    // a booking writes its confirmation into the outbox in the same transaction
    ("booking/bookings.rs", "messages"),
    // customers' languages and channels are the messages' vocabulary
    ("catalog/customers.rs", "messages"),
    // a dispatcher's edit or cancel of a job reaches the phones' scopes
    ("catalog/job_cancel.rs", "sync"),
    ("catalog/jobs.rs", "sync"),
    // settings re-check bookings and message templates when they change
    ("catalog/settings.rs", "booking"),
    ("catalog/settings.rs", "messages"),
    // a territory's outline is checked against the day plans' model
    ("catalog/territories.rs", "dispatch"),
    ("catalog/validation.rs", "messages"),
    // the shared state names the caches of four contexts
    ("http/state.rs", "catalog"),
    ("http/state.rs", "dispatch"),
    ("http/state.rs", "messages"),
    ("http/state.rs", "sync"),
];

fn layer_of(folder: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&folder))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments and its `mod tests`.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn server_imports_point_down_the_layer_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut upward = BTreeSet::new();
    let mut layered = 0;
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let Some((folder, _)) = rel.split_once('/') else {
            continue; // the composition root (mod.rs, openapi.rs, demo.rs) may import anything
        };
        let own =
            layer_of(folder).unwrap_or_else(|| panic!("{rel}: folder `{folder}` is in no layer"));
        layered += 1;
        let text = code(&std::fs::read_to_string(path).unwrap());
        for (i, _) in text.match_indices("crate::server::") {
            let rest = &text[i + "crate::server::".len()..];
            let target: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            match layer_of(&target) {
                Some(layer) if layer > own => {
                    upward.insert((rel.clone(), target));
                }
                Some(_) => {}
                // a root item (`AppState`, `ApiError` re-exported there) or the root's
                // own modules: the openapi document and the demo are above every layer
                None => assert!(
                    !matches!(target.as_str(), "openapi" | "demo"),
                    "{rel} imports the composition root (`crate::server::{target}`)"
                ),
            }
        }
        assert!(
            !text.contains("super::super::") || rel.contains("/notify/"),
            "{rel}: reach other layers by `crate::server::…`, not `super::super::`"
        );
    }
    assert!(
        layered > 40,
        "only {layered} layered files found under {}",
        root.display()
    );
    let known: BTreeSet<(String, String)> = KNOWN_UPWARD
        .iter()
        .map(|(f, l)| ((*f).to_owned(), (*l).to_owned()))
        .collect();
    let new: Vec<_> = upward.difference(&known).collect();
    assert!(
        new.is_empty(),
        "imports pointing up the layer table (docs/architecture.md): {new:?}"
    );
    let gone: Vec<_> = known.difference(&upward).collect();
    assert!(
        gone.is_empty(),
        "these upward imports are gone: remove them from KNOWN_UPWARD: {gone:?}"
    );
}
