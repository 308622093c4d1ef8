//! Best-known solutions (`bks.csv`: `instance,vehicles,distance,convention,source`).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;

/// The distance convention of the 12th DIMACS challenge (distances truncated to one
/// decimal, distance-only objective): the one to compare against.
pub const DIMACS2021: &str = "dimacs2021";

/// One best-known solution.
#[derive(Clone, Debug, PartialEq)]
pub struct BksEntry {
    pub vehicles: usize,
    pub distance: f64,
}

/// The best-known solutions of one convention, keyed by upper-case instance name.
#[derive(Clone, Debug, Default)]
pub struct BksTable {
    convention: String,
    entries: HashMap<String, BksEntry>,
}

impl BksTable {
    /// Parses the CSV text, keeping the rows of `convention`. Columns are found by
    /// their header names; the last column (`source`) may contain commas.
    pub fn parse(text: &str, convention: &str) -> Result<Self> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty());
        let Some((_, header)) = lines.next() else {
            bail!("the BKS table is empty (expected a header line)");
        };
        let columns: Vec<&str> = header.split(',').map(str::trim).collect();
        let column = |name: &str| {
            columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
                .with_context(|| format!("the BKS header {header:?} has no column {name:?}"))
        };
        let (i_instance, i_vehicles, i_distance, i_convention) = (
            column("instance")?,
            column("vehicles")?,
            column("distance")?,
            column("convention")?,
        );
        let needed = i_instance.max(i_vehicles).max(i_distance).max(i_convention) + 1;

        let mut entries: HashMap<String, BksEntry> = HashMap::new();
        for (line, text) in lines {
            let fields: Vec<&str> = text.split(',').map(str::trim).collect();
            if fields.len() < needed {
                bail!(
                    "BKS line {line}: expected at least {needed} fields, found {}",
                    fields.len()
                );
            }
            if fields[i_convention] != convention {
                continue;
            }
            let instance = fields[i_instance].to_ascii_uppercase();
            if instance.is_empty() {
                bail!("BKS line {line}: empty instance name");
            }
            let vehicles = fields[i_vehicles].parse::<usize>().with_context(|| {
                format!(
                    "BKS line {line}: bad vehicle count {:?}",
                    fields[i_vehicles]
                )
            })?;
            let distance = fields[i_distance]
                .parse::<f64>()
                .ok()
                .filter(|d| d.is_finite() && *d > 0.0)
                .with_context(|| {
                    format!("BKS line {line}: bad distance {:?}", fields[i_distance])
                })?;
            let entry = BksEntry { vehicles, distance };
            if let Some(previous) = entries.get(&instance) {
                if *previous != entry {
                    bail!(
                        "BKS line {line}: {instance} appears twice for convention {convention} \
                         with different values"
                    );
                }
            }
            entries.insert(instance, entry);
        }
        Ok(Self {
            convention: convention.to_string(),
            entries,
        })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path, convention: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the BKS table {}", path.display()))?;
        Self::parse(&text, convention).with_context(|| format!("in {}", path.display()))
    }

    /// The entry of `instance` (a file stem; case does not matter).
    pub fn get(&self, instance: &str) -> Option<&BksEntry> {
        self.entries.get(&instance.to_ascii_uppercase())
    }

    pub fn convention(&self) -> &str {
        &self.convention
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The gap of `distance` to `bks`, in percent: `100 * (distance - bks) / bks`.
pub fn gap_pct(distance: f64, bks: f64) -> f64 {
    100.0 * (distance - bks) / bks
}

/// A gap this small (in percent) counts as matching the best-known solution.
pub const AT_BKS_GAP_PCT: f64 = 0.005;

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "\
instance,vehicles,distance,convention,source
C101,10,827.3,dimacs2021,PyVRP/Instances (values from CVRPLIB)
C101,10,828.94,classic-hierarchical,VROOM, with a comma in the source
r1_2_1,20,4667.2,dimacs2021,somewhere

RC208,4,776.1,dimacs2021,x
";

    #[test]
    fn parses_rows_of_one_convention() {
        let bks = BksTable::parse(CSV, DIMACS2021).unwrap();
        assert_eq!(bks.len(), 3);
        assert_eq!(bks.convention(), "dimacs2021");
        assert_eq!(
            bks.get("C101"),
            Some(&BksEntry {
                vehicles: 10,
                distance: 827.3
            })
        );
        // Lookup by file stem, whatever its case; names are stored upper case.
        assert_eq!(bks.get("c101").unwrap().distance, 827.3);
        assert_eq!(bks.get("R1_2_1").unwrap().vehicles, 20);
        assert_eq!(bks.get("rc208").unwrap().distance, 776.1);
        assert!(bks.get("R101").is_none());

        let classic = BksTable::parse(CSV, "classic-hierarchical").unwrap();
        assert_eq!(classic.len(), 1);
        assert_eq!(classic.get("C101").unwrap().distance, 828.94);
    }

    #[test]
    fn columns_are_found_by_name() {
        let csv = "convention,distance,instance,vehicles\ndimacs2021,1.5,A1,3\n";
        let bks = BksTable::parse(csv, DIMACS2021).unwrap();
        assert_eq!(
            bks.get("a1"),
            Some(&BksEntry {
                vehicles: 3,
                distance: 1.5
            })
        );
    }

    #[test]
    fn rejects_malformed_tables() {
        assert!(BksTable::parse("", DIMACS2021).is_err());
        assert!(BksTable::parse("instance,vehicles,convention\n", DIMACS2021).is_err());
        let bad_distance = "instance,vehicles,distance,convention\nC101,10,abc,dimacs2021\n";
        assert!(BksTable::parse(bad_distance, DIMACS2021).is_err());
        let short = "instance,vehicles,distance,convention\nC101,10\n";
        assert!(BksTable::parse(short, DIMACS2021).is_err());
        let conflict = "instance,vehicles,distance,convention\n\
                        C101,10,827.3,dimacs2021\nC101,10,827.4,dimacs2021\n";
        assert!(BksTable::parse(conflict, DIMACS2021).is_err());
        // A bad row of another convention is skipped, not an error.
        let other = "instance,vehicles,distance,convention\nC101,x,y,classic\n";
        assert!(BksTable::parse(other, DIMACS2021).unwrap().is_empty());
    }

    #[test]
    fn gap_in_percent() {
        assert_eq!(gap_pct(827.3, 827.3), 0.0);
        assert!((gap_pct(110.0, 100.0) - 10.0).abs() < 1e-12);
        assert!((gap_pct(95.0, 100.0) + 5.0).abs() < 1e-12);
        assert!((gap_pct(830.0, 827.3) - 0.326_362_87).abs() < 1e-6);
        // Tenths converted to f64 are still within the at-BKS tolerance.
        assert!(gap_pct(8273.0 / 10.0, 827.3).abs() <= AT_BKS_GAP_PCT);
        assert!(gap_pct(827.4, 827.3) > AT_BKS_GAP_PCT);
    }
}
