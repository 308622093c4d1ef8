//! Instance names: class, natural order, and finding instance files in a folder.

use anyhow::{bail, Context, Result};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The six VRPTW classes, in report order.
pub const CLASSES: [&str; 6] = ["C1", "C2", "R1", "R2", "RC1", "RC2"];

/// The class of an instance: its name without the trailing instance number, upper
/// case — the leading letters and the class digit (`R101` → `R1`, `RC2_10_3` → `RC2`,
/// `c1_2_1` → `C1`). `None` if the name does not start with letters and a digit.
pub fn instance_class(name: &str) -> Option<String> {
    let letters = name.chars().take_while(char::is_ascii_alphabetic).count();
    let digit = name[letters..].chars().next()?;
    if letters == 0 || !digit.is_ascii_digit() {
        return None;
    }
    Some(name[..=letters].to_ascii_uppercase())
}

/// Natural order: case-insensitive, with runs of digits compared as numbers, so
/// `r1_10_2` < `r1_10_10` and `R109` < `R110`. Equal keys fall back to plain order.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) if p.is_ascii_digit() && q.is_ascii_digit() => {
                let (m, rest_x) = split_digits(x);
                let (n, rest_y) = split_digits(y);
                let (m, n) = (trim_zeros(m), trim_zeros(n));
                let by_number = m.len().cmp(&n.len()).then_with(|| m.cmp(n));
                if by_number != Ordering::Equal {
                    return by_number;
                }
                (x, y) = (rest_x, rest_y);
            }
            (Some(p), Some(q)) => {
                let by_char = p.to_ascii_lowercase().cmp(&q.to_ascii_lowercase());
                if by_char != Ordering::Equal {
                    return by_char;
                }
                (x, y) = (&x[1..], &y[1..]);
            }
        }
    }
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    s.split_at(end)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
    &s[start..]
}

/// An instance file: its name (the file stem, as on disk) and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceFile {
    pub name: String,
    pub path: PathBuf,
}

impl InstanceFile {
    /// The class of the instance, or `"?"` for a name without one.
    pub fn class(&self) -> String {
        instance_class(&self.name).unwrap_or_else(|| "?".to_string())
    }
}

/// The `*.txt` files of `dir`, in natural order of their names.
pub fn list_instances(dir: &Path) -> Result<Vec<InstanceFile>> {
    if !dir.is_dir() {
        bail!("instance folder {} does not exist", dir.display());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        let is_txt = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("txt"));
        if !is_txt || !path.is_file() {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        files.push(InstanceFile {
            name: name.to_string(),
            path,
        });
    }
    files.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(files)
}

/// The instances named in `wanted` (case-insensitive, any order; the result keeps the
/// order of `files`). Unknown names are an error listing all of them.
pub fn select_by_name(files: &[InstanceFile], wanted: &[String]) -> Result<Vec<InstanceFile>> {
    let unknown: Vec<&str> = wanted
        .iter()
        .filter(|w| !files.iter().any(|f| f.name.eq_ignore_ascii_case(w)))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let examples: Vec<&str> = files.iter().take(5).map(|f| f.name.as_str()).collect();
        bail!(
            "unknown instance name(s): {} (this set has {} instances, e.g. {})",
            unknown.join(", "),
            files.len(),
            examples.join(", ")
        );
    }
    Ok(files
        .iter()
        .filter(|f| wanted.iter().any(|w| f.name.eq_ignore_ascii_case(w)))
        .cloned()
        .collect())
}

/// The first instance (in natural order) of each class, in natural order.
pub fn first_per_class(files: &[InstanceFile]) -> Vec<InstanceFile> {
    let mut first: BTreeMap<String, &InstanceFile> = BTreeMap::new();
    for f in files {
        first
            .entry(f.class())
            .and_modify(|current| {
                if natural_cmp(&f.name, &current.name) == Ordering::Less {
                    *current = f;
                }
            })
            .or_insert(f);
    }
    let mut picked: Vec<InstanceFile> = first.into_values().cloned().collect();
    picked.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_of_solomon_and_homberger_names() {
        let class = |n: &str| instance_class(n);
        assert_eq!(class("R101").as_deref(), Some("R1"));
        assert_eq!(class("C208").as_deref(), Some("C2"));
        assert_eq!(class("RC105").as_deref(), Some("RC1"));
        assert_eq!(class("RC2_10_3").as_deref(), Some("RC2"));
        assert_eq!(class("c1_2_1").as_deref(), Some("C1"));
        assert_eq!(class("rc2_10_10").as_deref(), Some("RC2"));
        assert_eq!(class("r2_2_4").as_deref(), Some("R2"));
        assert_eq!(class("101"), None);
        assert_eq!(class("RC"), None);
        assert_eq!(class(""), None);
        assert_eq!(class("R_1"), None);
    }

    #[test]
    fn natural_order() {
        use Ordering::*;
        assert_eq!(natural_cmp("r1_10_2", "r1_10_10"), Less);
        assert_eq!(natural_cmp("r1_10_10", "r1_10_2"), Greater);
        assert_eq!(natural_cmp("R109", "R110"), Less);
        assert_eq!(natural_cmp("c1_2_1", "C1_2_1"), "c1_2_1".cmp("C1_2_1"));
        assert_eq!(natural_cmp("R1_2_1", "r1_2_2"), Less);
        assert_eq!(natural_cmp("R2", "R10"), Less);
        assert_eq!(natural_cmp("R02", "R2"), "R02".cmp("R2"));
        assert_eq!(natural_cmp("R1", "R1_2"), Less);
        assert_eq!(natural_cmp("C201", "R101"), Less);

        let mut names = vec!["r1_10_10", "r1_10_2", "r1_10_1", "c2_10_1", "r1_10_9"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["c2_10_1", "r1_10_1", "r1_10_2", "r1_10_9", "r1_10_10"]
        );
    }

    fn files(names: &[&str]) -> Vec<InstanceFile> {
        let mut v: Vec<InstanceFile> = names
            .iter()
            .map(|n| InstanceFile {
                name: n.to_string(),
                path: PathBuf::from(format!("{n}.txt")),
            })
            .collect();
        v.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        v
    }

    #[test]
    fn first_of_each_class() {
        let all = files(&[
            "r1_10_10", "r1_10_2", "r1_10_1", "c1_10_3", "c1_10_10", "rc2_10_5",
        ]);
        let names: Vec<String> = first_per_class(&all).into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["c1_10_3", "r1_10_1", "rc2_10_5"]);
    }

    #[test]
    fn selection_by_name() {
        let all = files(&["C101", "R101", "RC101"]);
        let wanted = vec!["r101".to_string(), "C101".to_string()];
        let names: Vec<String> = select_by_name(&all, &wanted)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["C101", "R101"]);
        let err = select_by_name(&all, &["X1".to_string(), "R101".to_string()]).unwrap_err();
        assert!(err.to_string().contains("X1"), "{err}");
    }
}
