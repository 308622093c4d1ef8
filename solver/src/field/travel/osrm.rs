//! Client of OSRM's `table` service, with an optional on-disk cache.
//!
//! `GET {url}/table/v1/{profile}/{lon,lat;...}?annotations=duration,distance`. More than
//! [`BLOCK`] distinct points are fetched block by block: each request lists one block of
//! sources and one of destinations (`sources=`/`destinations=`), so no request asks for
//! more than `BLOCK`×`BLOCK` cells, OSRM's default `--max-table-size`.

use super::{DistinctPoints, TravelError, MAX_TRAVEL_ENTRY};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sources (and destinations) per request.
const BLOCK: usize = 100;
/// Whole request, connection to last byte; a 100×100 table takes OSRM well under a second.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bump when the cache file's layout or the rounding of its values changes.
const CACHE_FORMAT: u32 = 1;

/// Seconds and metres between the distinct points, row-major `points.len()` square.
pub(super) fn table(
    url: &str,
    profile: &str,
    cache_dir: Option<&str>,
    points: &DistinctPoints,
) -> Result<(Vec<i64>, Vec<i64>), TravelError> {
    let m = points.len();
    if m <= 1 {
        return Ok((vec![0; m * m], vec![0; m * m]));
    }
    let base = url.trim_end_matches('/');
    let cache = cache_dir.map(|dir| Cache::new(Path::new(dir), base, profile, &points.keys));
    if let Some(hit) = cache.as_ref().and_then(Cache::load) {
        return Ok(hit);
    }

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        // OSRM explains refusals in a JSON body sent with status 400: read it.
        .http_status_as_error(false)
        .build()
        .into();
    let mut durations = vec![0; m * m];
    let mut distances = vec![0; m * m];
    let blocks: Vec<Range<usize>> = (0..m)
        .step_by(BLOCK)
        .map(|start| start..(start + BLOCK).min(m))
        .collect();
    for sources in &blocks {
        for destinations in &blocks {
            let request = block_url(base, profile, points, sources, destinations);
            let (status, body) = fetch(&agent, base, &request)?;
            let answer = parse(status, &body, sources.len(), destinations.len())?;
            for (r, a) in sources.clone().enumerate() {
                for (c, b) in destinations.clone().enumerate() {
                    if a == b {
                        continue;
                    }
                    let (Some(seconds), Some(metres)) =
                        (answer.durations[r][c], answer.distances[r][c])
                    else {
                        return Err(TravelError::Unroutable {
                            from: points.first_place[a],
                            to: points.first_place[b],
                        });
                    };
                    // Seconds rounded up as in the great-circle estimate; metres to nearest.
                    durations[a * m + b] = entry(seconds.ceil(), "duration")?;
                    distances[a * m + b] = entry(metres.round(), "distance")?;
                }
            }
        }
    }
    if let Some(cache) = &cache {
        cache.store(&durations, &distances)?;
    }
    Ok((durations, distances))
}

/// The request for one block of sources × one block of destinations.
fn block_url(
    base: &str,
    profile: &str,
    points: &DistinctPoints,
    sources: &Range<usize>,
    destinations: &Range<usize>,
) -> String {
    let mut url = format!("{base}/table/v1/{profile}/");
    let listed: Vec<usize> = if sources == destinations {
        sources.clone().collect()
    } else {
        sources.clone().chain(destinations.clone()).collect()
    };
    for (n, &point) in listed.iter().enumerate() {
        let (lat, lon) = points.keys[point];
        let separator = if n == 0 { "" } else { ";" };
        // OSRM wants lon,lat; printed from the integers so the request is exact.
        let _ = write!(url, "{separator}{},{}", decimal(lon), decimal(lat));
    }
    url.push_str("?annotations=duration,distance");
    // A diagonal block lists just its own points: all × all is what we want.
    if sources != destinations {
        let k = sources.len();
        let indices =
            |range: Range<usize>| range.map(|i| i.to_string()).collect::<Vec<_>>().join(";");
        let _ = write!(
            url,
            "&sources={}&destinations={}",
            indices(0..k),
            indices(k..k + destinations.len())
        );
    }
    url
}

/// Micro-degrees as a decimal string with six places, e.g. `-46633900` → `-46.633900`.
fn decimal(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let abs = micro.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

/// Status and body of one GET; any transport failure means the server is unreachable.
fn fetch(agent: &ureq::Agent, base: &str, request: &str) -> Result<(u16, String), TravelError> {
    let unreachable = |error: ureq::Error| TravelError::OsrmUnreachable {
        url: base.to_owned(),
        message: error.to_string(),
    };
    let mut response = agent.get(request).call().map_err(unreachable)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|error| match error {
            ureq::Error::BodyExceedsLimit(limit) => TravelError::OsrmBadResponse {
                message: format!("answer larger than {limit} bytes"),
            },
            other => unreachable(other),
        })?;
    Ok((status, body))
}

/// OSRM's answer; entries are `null` where no route exists.
#[derive(Deserialize)]
struct TableAnswer {
    code: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    durations: Option<Vec<Vec<Option<f64>>>>,
    #[serde(default)]
    distances: Option<Vec<Vec<Option<f64>>>>,
}

/// Both tables of a block, checked to be `rows`×`cols`.
struct BlockTables {
    durations: Vec<Vec<Option<f64>>>,
    distances: Vec<Vec<Option<f64>>>,
}

fn parse(status: u16, body: &str, rows: usize, cols: usize) -> Result<BlockTables, TravelError> {
    let bad = |message: String| TravelError::OsrmBadResponse { message };
    let answer: TableAnswer = serde_json::from_str(body).map_err(|error| {
        if (200..300).contains(&status) {
            bad(format!("not an OSRM table ({error})"))
        } else {
            let start: String = body.chars().take(200).collect();
            bad(format!("HTTP status {status}: {start}"))
        }
    })?;
    if answer.code != "Ok" {
        return Err(TravelError::OsrmRejected {
            osrm_code: answer.code,
            message: answer.message.unwrap_or_default(),
        });
    }
    let durations = answer
        .durations
        .ok_or_else(|| bad("the answer has no `durations`".to_owned()))?;
    let distances = answer.distances.ok_or_else(|| {
        bad(
            "the answer has no `distances` (does this OSRM support annotations=distance?)"
                .to_owned(),
        )
    })?;
    for (name, table) in [("durations", &durations), ("distances", &distances)] {
        if table.len() != rows || table.iter().any(|row| row.len() != cols) {
            return Err(bad(format!(
                "`{name}` is not the {rows}×{cols} table that was asked for"
            )));
        }
    }
    Ok(BlockTables {
        durations,
        distances,
    })
}

/// A rounded OSRM value as a matrix entry.
fn entry(value: f64, what: &str) -> Result<i64, TravelError> {
    if (0.0..=MAX_TRAVEL_ENTRY as f64).contains(&value) {
        Ok(value as i64)
    } else {
        Err(TravelError::OsrmBadResponse {
            message: format!("{what} {value} is out of range"),
        })
    }
}

/// One cached table: a JSON file named by a stable hash of what was asked.
///
/// The file repeats the question, so a hash collision or a stale file is a miss, never
/// a wrong answer; a file that cannot be read is a miss too and gets rewritten.
struct Cache<'a> {
    file: PathBuf,
    url: &'a str,
    profile: &'a str,
    points: &'a [(i64, i64)],
}

#[derive(Serialize)]
struct CacheFileOut<'a> {
    format: u32,
    url: &'a str,
    profile: &'a str,
    points: &'a [(i64, i64)],
    durations_s: &'a [i64],
    distances_m: &'a [i64],
}

#[derive(Deserialize)]
struct CacheFileIn {
    format: u32,
    url: String,
    profile: String,
    points: Vec<(i64, i64)>,
    durations_s: Vec<i64>,
    distances_m: Vec<i64>,
}

impl<'a> Cache<'a> {
    fn new(dir: &Path, url: &'a str, profile: &'a str, points: &'a [(i64, i64)]) -> Self {
        let mut hash = Fnv1a::new();
        hash.write(b"despacho osrm table\0");
        hash.write(&CACHE_FORMAT.to_le_bytes());
        hash.write(url.as_bytes());
        hash.write(b"\0");
        hash.write(profile.as_bytes());
        hash.write(b"\0");
        for (lat, lon) in points {
            hash.write(&lat.to_le_bytes());
            hash.write(&lon.to_le_bytes());
        }
        Self {
            file: dir.join(format!("osrm-table-{:016x}.json", hash.finish())),
            url,
            profile,
            points,
        }
    }

    fn load(&self) -> Option<(Vec<i64>, Vec<i64>)> {
        let text = std::fs::read_to_string(&self.file).ok()?;
        let cached: CacheFileIn = serde_json::from_str(&text).ok()?;
        let cells = self.points.len() * self.points.len();
        let valid = |values: &[i64]| {
            values.len() == cells && values.iter().all(|v| (0..=MAX_TRAVEL_ENTRY).contains(v))
        };
        let same_question = cached.format == CACHE_FORMAT
            && cached.url == self.url
            && cached.profile == self.profile
            && cached.points == self.points;
        (same_question && valid(&cached.durations_s) && valid(&cached.distances_m))
            .then_some((cached.durations_s, cached.distances_m))
    }

    fn store(&self, durations: &[i64], distances: &[i64]) -> Result<(), TravelError> {
        let failed = |error: std::io::Error| TravelError::Cache {
            file: self.file.display().to_string(),
            message: error.to_string(),
        };
        let json = serde_json::to_string(&CacheFileOut {
            format: CACHE_FORMAT,
            url: self.url,
            profile: self.profile,
            points: self.points,
            durations_s: durations,
            distances_m: distances,
        })
        .map_err(|error| failed(error.into()))?;
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        // Write aside, then rename: a concurrent reader sees the old file or the whole
        // new one, never half of it.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let temporary = self.file.with_extension(format!(
            "json.{}-{}.tmp",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&temporary, json).map_err(failed)?;
        std::fs::rename(&temporary, &self.file).map_err(|error| {
            let _ = std::fs::remove_file(&temporary);
            failed(error)
        })
    }
}

/// 64-bit FNV-1a: stable across runs and platforms, unlike std's seeded hasher.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
