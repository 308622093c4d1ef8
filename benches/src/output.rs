//! Where result files go and what they are called.

use std::path::{Path, PathBuf};

/// This machine's name for file names: `/etc/hostname`, else `$HOSTNAME`, else
/// `unknown`; anything but letters, digits, `-`, `_` and `.` becomes `_`.
pub fn hostname() -> String {
    let raw = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    sanitize(&raw)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A budget in seconds as it appears in file names: `1`, `0.5`, `60`.
pub fn seconds_label(seconds: f64) -> String {
    format!("{seconds}")
}

/// The first free pair of `{stem}.csv` / `{stem}.md` in `dir`: `stem`, then
/// `stem-{hhmm}`, then `stem-{hhmm}-2`, `-3`, …
pub fn free_result_paths(dir: &Path, stem: &str, hhmm: &str) -> (PathBuf, PathBuf) {
    let pair = |s: &str| (dir.join(format!("{s}.csv")), dir.join(format!("{s}.md")));
    let free = |(csv, md): &(PathBuf, PathBuf)| !csv.exists() && !md.exists();
    let first = pair(stem);
    if free(&first) {
        return first;
    }
    let timed = format!("{stem}-{hhmm}");
    let second = pair(&timed);
    if free(&second) {
        return second;
    }
    (2..)
        .map(|k| pair(&format!("{timed}-{k}")))
        .find(free)
        .unwrap_or(second)
}

/// Writes a run's Markdown and CSV to `dir` (created if missing) as
/// `{name}-{date}-{host}.{md,csv}` (a time suffix when taken); returns both paths.
pub fn write_results(
    dir: &Path,
    name: &str,
    markdown: &str,
    csv: &str,
) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let now = chrono::Local::now();
    let stem = format!("{name}-{}-{}", now.format("%Y-%m-%d"), hostname());
    let (csv_path, md_path) = free_result_paths(dir, &stem, &now.format("%H%M").to_string());
    std::fs::write(&md_path, markdown)?;
    std::fs::write(&csv_path, csv)?;
    Ok((md_path, csv_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_names() {
        assert_eq!(seconds_label(1.0), "1");
        assert_eq!(seconds_label(60.0), "60");
        assert_eq!(seconds_label(0.5), "0.5");
        assert_eq!(sanitize("my host/1"), "my_host_1");
        assert!(!hostname().is_empty());
    }

    #[test]
    fn free_paths_add_a_time_suffix() {
        let dir =
            std::env::temp_dir().join(format!("despacho-benches-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (csv, md) = free_result_paths(&dir, "run", "1234");
        assert_eq!(csv, dir.join("run.csv"));
        assert_eq!(md, dir.join("run.md"));
        std::fs::write(&csv, "x").unwrap();
        let (csv2, _) = free_result_paths(&dir, "run", "1234");
        assert_eq!(csv2, dir.join("run-1234.csv"));
        std::fs::write(&csv2, "x").unwrap();
        let (csv3, md3) = free_result_paths(&dir, "run", "1234");
        assert_eq!(
            (csv3, md3),
            (dir.join("run-1234-2.csv"), dir.join("run-1234-2.md"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
