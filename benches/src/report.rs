//! Result rows: the live table, the per-class summary and the CSV.

use crate::bks::{gap_pct, AT_BKS_GAP_PCT};
use crate::names::{natural_cmp, CLASSES};
use std::fmt::Write as _;
use std::io;

/// What the checker said about a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Feasible, every job served.
    Valid,
    /// The checker found violations (the count).
    Invalid { violations: usize },
    /// The solver panicked: there is no result.
    Panicked,
}

impl Status {
    pub fn is_valid(&self) -> bool {
        matches!(self, Status::Valid)
    }

    /// The word in the table's `valid` column.
    pub fn label(&self) -> &'static str {
        match self {
            Status::Valid => "yes",
            Status::Invalid { .. } => "INVALID",
            Status::Panicked => "PANIC",
        }
    }
}

/// One solved instance.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub instance: String,
    pub class: String,
    /// Routes used, as the checker counts them (`None` if there is no result).
    pub vehicles: Option<usize>,
    /// Total distance as the checker computes it (`None` if there is no result).
    pub distance: Option<f64>,
    pub bks: Option<f64>,
    /// Wall-clock seconds of the solve.
    pub seconds: f64,
    pub iterations: Option<u64>,
    pub status: Status,
    pub seed: u64,
}

impl RunRow {
    /// Gap to the best-known distance in percent, if both are known (also for an
    /// invalid result: it is shown, but not averaged).
    pub fn gap_pct(&self) -> Option<f64> {
        Some(gap_pct(self.distance?, self.bks?))
    }

    /// The gap if it counts for the means: a valid result with a BKS.
    pub fn counted_gap(&self) -> Option<f64> {
        self.gap_pct().filter(|_| self.status.is_valid())
    }

    pub fn at_bks(&self) -> bool {
        self.counted_gap().is_some_and(|g| g <= AT_BKS_GAP_PCT)
    }
}

fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> String) -> String {
    value.map(f).unwrap_or_else(|| "-".to_string())
}

/// The header of the live table.
pub fn table_header() -> String {
    format!(
        "{:<12} {:>4} {:>10} {:>10} {:>8} {:>8} {:>10}  {}",
        "instance", "veh", "distance", "bks", "gap%", "seconds", "iterations", "valid"
    )
}

/// One line of the live table.
pub fn table_row(row: &RunRow) -> String {
    format!(
        "{:<12} {:>4} {:>10} {:>10} {:>8} {:>8.2} {:>10}  {}",
        row.instance,
        opt(row.vehicles, |v| v.to_string()),
        opt(row.distance, |d| format!("{d:.1}")),
        opt(row.bks, |b| format!("{b:.1}")),
        opt(row.gap_pct(), |g| format!("{g:.2}")),
        row.seconds,
        opt(row.iterations, |i| i.to_string()),
        row.status.label()
    )
}

/// Aggregates of one class (or of all rows).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSummary {
    pub name: String,
    pub total: usize,
    pub valid: usize,
    /// Valid results with a BKS: the ones averaged.
    pub with_gap: usize,
    pub mean_gap: Option<f64>,
    pub at_bks: usize,
}

impl GroupSummary {
    fn of<'a>(name: &str, rows: impl Iterator<Item = &'a RunRow>) -> Self {
        let (mut total, mut valid, mut at_bks, mut gaps) = (0, 0, 0, Vec::new());
        for row in rows {
            total += 1;
            valid += usize::from(row.status.is_valid());
            at_bks += usize::from(row.at_bks());
            gaps.extend(row.counted_gap());
        }
        let mean_gap = (!gaps.is_empty()).then(|| gaps.iter().sum::<f64>() / gaps.len() as f64);
        Self {
            name: name.to_string(),
            total,
            valid,
            with_gap: gaps.len(),
            mean_gap,
            at_bks,
        }
    }
}

/// The summary of a run: one group per class present, then all rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub classes: Vec<GroupSummary>,
    pub overall: GroupSummary,
    /// Instances whose result is not valid (invalid or panicked), in natural order.
    pub not_valid: Vec<String>,
    /// Instances without a BKS entry.
    pub without_bks: Vec<String>,
}

/// Summarises `rows` (any order).
pub fn summarize(rows: &[RunRow]) -> Summary {
    let mut classes: Vec<String> = rows.iter().map(|r| r.class.clone()).collect();
    classes.sort_by(|a, b| {
        let rank = |c: &str| {
            CLASSES
                .iter()
                .position(|k| *k == c)
                .unwrap_or(CLASSES.len())
        };
        rank(a).cmp(&rank(b)).then_with(|| natural_cmp(a, b))
    });
    classes.dedup();
    let mut sorted: Vec<&RunRow> = rows.iter().collect();
    sorted.sort_by(|a, b| natural_cmp(&a.instance, &b.instance));
    Summary {
        classes: classes
            .iter()
            .map(|c| GroupSummary::of(c, rows.iter().filter(|r| &r.class == c)))
            .collect(),
        overall: GroupSummary::of("all", rows.iter()),
        not_valid: sorted
            .iter()
            .filter(|r| !r.status.is_valid())
            .map(|r| format!("{} ({})", r.instance, r.status.label()))
            .collect(),
        without_bks: sorted
            .iter()
            .filter(|r| r.bks.is_none())
            .map(|r| r.instance.clone())
            .collect(),
    }
}

/// The summary as a Markdown table (printed as is, and saved in the `.md` file),
/// followed by the lists of results that are not valid and instances without BKS.
pub fn summary_markdown(summary: &Summary) -> String {
    let mut s = String::new();
    s.push_str("| class | instances | valid | mean gap % | at BKS |\n");
    s.push_str("| --- | ---: | ---: | ---: | ---: |\n");
    for g in summary
        .classes
        .iter()
        .chain(std::iter::once(&summary.overall))
    {
        let name = if g.name == "all" {
            "**all**".to_string()
        } else {
            g.name.clone()
        };
        let gap = match g.mean_gap {
            Some(m) if g.with_gap < g.total => format!("{m:.2} (of {})", g.with_gap),
            Some(m) => format!("{m:.2}"),
            None => "-".to_string(),
        };
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {gap} | {} |",
            g.total, g.valid, g.at_bks
        );
    }
    let o = &summary.overall;
    let _ = writeln!(
        s,
        "\nvalid: {}/{}; at BKS (gap <= {AT_BKS_GAP_PCT} %): {}; mean gap: {}",
        o.valid,
        o.total,
        o.at_bks,
        opt(o.mean_gap, |g| format!("{g:.2} %"))
    );
    if !summary.not_valid.is_empty() {
        let _ = writeln!(
            s,
            "not valid (excluded from the means): {}",
            summary.not_valid.join(", ")
        );
    }
    if !summary.without_bks.is_empty() {
        let _ = writeln!(
            s,
            "no BKS (excluded from the means): {}",
            summary.without_bks.join(", ")
        );
    }
    s
}

/// The CSV header.
pub const CSV_HEADER: &str =
    "instance,class,vehicles,distance,bks,gap_pct,seconds,iterations,valid,seed";

/// Writes `rows` (in the given order) as CSV with [`CSV_HEADER`]; unknown values are empty.
pub fn write_csv(rows: &[RunRow], mut out: impl io::Write) -> io::Result<()> {
    let empty = String::new;
    writeln!(out, "{CSV_HEADER}")?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{},{},{},{:.3},{},{},{}",
            r.instance,
            r.class,
            r.vehicles.map(|v| v.to_string()).unwrap_or_else(empty),
            r.distance.map(|d| format!("{d:.1}")).unwrap_or_else(empty),
            r.bks.map(|b| format!("{b:.1}")).unwrap_or_else(empty),
            r.gap_pct().map(|g| format!("{g:.4}")).unwrap_or_else(empty),
            r.seconds,
            r.iterations.map(|i| i.to_string()).unwrap_or_else(empty),
            r.status.is_valid(),
            r.seed
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(instance: &str, class: &str, distance: f64, bks: Option<f64>, status: Status) -> RunRow {
        RunRow {
            instance: instance.to_string(),
            class: class.to_string(),
            vehicles: Some(10),
            distance: Some(distance),
            bks,
            seconds: 1.0,
            iterations: Some(5),
            status,
            seed: 1,
        }
    }

    #[test]
    fn summary_excludes_invalid_and_missing_bks() {
        let rows = vec![
            row("R102", "R1", 110.0, Some(100.0), Status::Valid),
            row("C101", "C1", 827.3, Some(827.3), Status::Valid),
            row("R101", "R1", 120.0, Some(100.0), Status::Valid),
            row(
                "R103",
                "R1",
                50.0,
                Some(100.0),
                Status::Invalid { violations: 3 },
            ),
            row("X1", "X1", 50.0, None, Status::Valid),
        ];
        let s = summarize(&rows);
        let names: Vec<&str> = s.classes.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["C1", "R1", "X1"]);
        let r1 = &s.classes[1];
        assert_eq!((r1.total, r1.valid, r1.with_gap, r1.at_bks), (3, 2, 2, 0));
        assert!((r1.mean_gap.unwrap() - 15.0).abs() < 1e-9);
        assert_eq!(s.classes[0].at_bks, 1);
        assert_eq!(s.classes[2].mean_gap, None);
        assert_eq!(
            (s.overall.total, s.overall.valid, s.overall.at_bks),
            (5, 4, 1)
        );
        assert!((s.overall.mean_gap.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(s.not_valid, ["R103 (INVALID)"]);
        assert_eq!(s.without_bks, ["X1"]);
        // The invalid row still shows its gap.
        assert!((rows[3].gap_pct().unwrap() + 50.0).abs() < 1e-9);
        let md = summary_markdown(&s);
        assert!(md.contains("| R1 | 3 | 2 | 15.00 (of 2) | 0 |"), "{md}");
        assert!(md.contains("valid: 4/5"), "{md}");
    }

    #[test]
    fn csv_and_table_lines() {
        let mut panicked = row("R101", "R1", 0.0, Some(1642.9), Status::Panicked);
        (panicked.vehicles, panicked.distance, panicked.iterations) = (None, None, None);
        let rows = vec![
            row("C101", "C1", 830.0, Some(827.3), Status::Valid),
            panicked,
        ];
        let mut out = Vec::new();
        write_csv(&rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[1], "C101,C1,10,830.0,827.3,0.3264,1.000,5,true,1");
        assert_eq!(lines[2], "R101,R1,,,1642.9,,1.000,,false,1");
        assert!(table_row(&rows[0]).ends_with("yes"));
        assert!(table_row(&rows[0]).contains(" 0.33 "));
        assert!(table_row(&rows[1]).ends_with("PANIC"));
        assert_eq!(
            table_header().len(),
            table_row(&rows[0]).len() - "yes".len() + "valid".len()
        );
    }
}
