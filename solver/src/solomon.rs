//! Reader for the Solomon VRPTW text format (also used by Gehring & Homberger).
//!
//! Distances follow the DIMACS 2021 convention: `d = floor(10 * euclid) / 10`, and
//! travel time equals distance. Everything is kept exactly in integer tenths, so
//! all times in the file are multiplied by [`SCALE`].

use crate::model::{Job, Matrix, Problem, TimeWindow, VehicleType};
use crate::units::{Distance, Duration, Load};

/// Internal units per file unit (tenths).
pub const SCALE: i64 = 10;

/// A Solomon instance: the problem plus what the file calls things.
#[derive(Clone, Debug)]
pub struct SolomonInstance {
    pub name: String,
    pub problem: Problem,
    /// The file's CUST NO. of each job, by job index.
    pub customer_numbers: Vec<u32>,
    /// The fleet size the file states (not a constraint under the DIMACS convention).
    pub vehicles_in_file: usize,
}

/// A malformed file. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SolomonError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> SolomonError {
    SolomonError {
        line,
        message: message.into(),
    }
}

/// Parses the text of a Solomon file.
pub fn parse_solomon(text: &str) -> Result<SolomonInstance, SolomonError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let Some(&(_, name)) = lines.first() else {
        return Err(err(1, "empty file: expected an instance name"));
    };
    let find = |word: &str| lines.iter().position(|(_, l)| l.eq_ignore_ascii_case(word));
    let vehicle_at = find("VEHICLE").ok_or_else(|| err(lines.len(), "no VEHICLE section"))?;
    let customer_at = find("CUSTOMER").ok_or_else(|| err(lines.len(), "no CUSTOMER section"))?;

    // VEHICLE: a header line (NUMBER CAPACITY), then the two numbers.
    let (fleet_line, fleet_text) = *lines
        .get(vehicle_at + 2)
        .ok_or_else(|| err(lines[vehicle_at].0, "VEHICLE section ends early"))?;
    let fleet = parse_ints(fleet_line, fleet_text, 2)?;
    let (vehicles_in_file, capacity) = (fleet[0], fleet[1]);
    if vehicles_in_file < 0 || capacity < 0 {
        return Err(err(
            fleet_line,
            "vehicle number and capacity must not be negative",
        ));
    }

    // CUSTOMER: a header line, then one row per customer; row 0 is the depot.
    let mut rows = Vec::new();
    for &(line, text) in lines.iter().skip(customer_at + 1) {
        if text.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            continue; // column header
        }
        let v = parse_ints(line, text, 7)?;
        rows.push((line, v));
    }
    if rows.is_empty() {
        return Err(err(lines[customer_at].0, "no customer rows"));
    }
    if rows[0].1[0] != 0 {
        return Err(err(
            rows[0].0,
            "the first customer row must be the depot (CUST NO. 0)",
        ));
    }
    let n = rows.len();
    let mut seen = std::collections::HashSet::new();
    for (line, v) in &rows {
        if !seen.insert(v[0]) {
            return Err(err(*line, format!("duplicate CUST NO. {}", v[0])));
        }
        if v[0] < 0 || v[3] < 0 || v[6] < 0 {
            return Err(err(
                *line,
                "CUST NO., DEMAND and SERVICE TIME must not be negative",
            ));
        }
        if v[5] < v[4] {
            return Err(err(
                *line,
                format!("DUE DATE {} is before READY TIME {}", v[5], v[4]),
            ));
        }
    }

    let xy: Vec<(i64, i64)> = rows.iter().map(|(_, v)| (v[1], v[2])).collect();
    let tenths = Matrix::from_fn(n, |i, j| {
        let (dx, dy) = (xy[i].0 - xy[j].0, xy[i].1 - xy[j].1);
        isqrt((100 * (dx * dx + dy * dy)) as u64) as i64
    });
    let distances = Matrix::from_fn(n, |i, j| Distance(tenths.get(i, j)));
    let durations = Matrix::from_fn(n, |i, j| Duration(tenths.get(i, j)));
    let depot = &rows[0].1;
    let shift = TimeWindow::new(Duration(depot[4] * SCALE), Duration(depot[5] * SCALE));
    let vehicle = VehicleType::distance_only(0, shift, Load(capacity));
    let jobs = rows[1..]
        .iter()
        .enumerate()
        .map(|(k, (_, v))| Job {
            location: k + 1,
            service: Duration(v[6] * SCALE),
            demand: Load(v[3]),
            windows: vec![TimeWindow::new(
                Duration(v[4] * SCALE),
                Duration(v[5] * SCALE),
            )],
        })
        .collect();
    let problem = Problem::new(distances, durations, vec![vehicle], jobs)
        .map_err(|e| err(rows[0].0, e.to_string()))?;
    Ok(SolomonInstance {
        name: name.to_string(),
        problem,
        customer_numbers: rows[1..].iter().map(|(_, v)| v[0] as u32).collect(),
        vehicles_in_file: vehicles_in_file as usize,
    })
}

/// Reads and parses a Solomon file.
pub fn read_solomon(path: &std::path::Path) -> Result<SolomonInstance, SolomonError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(0, format!("cannot read {}: {e}", path.display())))?;
    parse_solomon(&text)
}

fn parse_ints(line: usize, text: &str, count: usize) -> Result<Vec<i64>, SolomonError> {
    let v: Vec<i64> = text
        .split_whitespace()
        .map(|w| {
            w.parse::<i64>()
                .map_err(|_| err(line, format!("expected an integer, found {w:?}")))
        })
        .collect::<Result<_, _>>()?;
    if v.len() != count {
        return Err(err(
            line,
            format!("expected {count} numbers, found {}", v.len()),
        ));
    }
    if v.iter().any(|x| x.abs() > 1_000_000_000) {
        return Err(err(line, "number out of range (more than 10^9)"));
    }
    Ok(v)
}

/// Integer square root, exact for all u64.
fn isqrt(v: u64) -> u64 {
    let mut r = (v as f64).sqrt() as u64;
    while r * r > v {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= v {
        r += 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "T1\n\nVEHICLE\nNUMBER CAPACITY\n 2 10\n\nCUSTOMER\nCUST NO. XCOORD. YCOORD. DEMAND READY TIME DUE DATE SERVICE TIME\n\n 0 0 0 0 0 100 0\n 1 3 4 1 0 50 1\n";

    #[test]
    fn reads_a_tiny_file_in_tenths() {
        let inst = parse_solomon(TINY).unwrap();
        assert_eq!(inst.name, "T1");
        assert_eq!(inst.customer_numbers, vec![1]);
        assert_eq!(inst.problem.distance(0, 1), Distance(50));
        assert_eq!(inst.problem.jobs()[0].windows[0].end, Duration(500));
    }

    #[test]
    fn truncates_distances_like_dimacs() {
        // sqrt(2) = 1.414.. -> 1.4 -> 14 tenths.
        let text = TINY.replace(" 1 3 4 1", " 1 1 1 1");
        let inst = parse_solomon(&text).unwrap();
        assert_eq!(inst.problem.distance(0, 1), Distance(14));
    }

    #[test]
    fn names_the_line_of_a_bad_number() {
        let text = TINY.replace(" 1 3 4 1 0 50 1", " 1 3 x 1 0 50 1");
        let e = parse_solomon(&text).unwrap_err();
        assert_eq!(e.line, 11);
        assert!(e.message.contains("\"x\""), "{e}");
    }

    #[test]
    fn rejects_short_rows_and_missing_sections() {
        let e = parse_solomon(&TINY.replace(" 1 3 4 1 0 50 1", " 1 3 4")).unwrap_err();
        assert!(e.message.contains("expected 7 numbers"), "{e}");
        assert!(parse_solomon("X\n")
            .unwrap_err()
            .message
            .contains("VEHICLE"));
        assert_eq!(parse_solomon("").unwrap_err().line, 1);
    }

    #[test]
    fn rejects_due_date_before_ready_time() {
        let e = parse_solomon(&TINY.replace(" 1 3 4 1 0 50 1", " 1 3 4 1 60 50 1")).unwrap_err();
        assert_eq!(e.line, 11);
        assert!(e.message.contains("DUE DATE"));
    }

    #[test]
    fn parses_the_fixture_instances() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/solomon");
        let mut count = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let inst = read_solomon(&e.unwrap().path()).unwrap();
            assert_eq!(inst.problem.jobs().len(), 100);
            assert_eq!(inst.customer_numbers, (1..=100).collect::<Vec<u32>>());
            count += 1;
        }
        assert!(count >= 6);
    }
}
