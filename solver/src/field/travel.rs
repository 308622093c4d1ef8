//! Travel between places: integer matrices of seconds and metres.
//!
//! Three sources, chosen by the problem's `travel` field ([`TravelOptions`]):
//!
//! - `great_circle`: haversine distance × a detour factor, time from a road speed. No
//!   network, always available; good enough to plan a day in one city.
//! - `matrix`: the user's own matrices over named locations (from a routing engine or a
//!   spreadsheet), used as given.
//! - `osrm`: an OSRM server's `table` service, in blocks of at most 100×100, with an
//!   optional on-disk cache.
//!
//! Places that share a coordinate (rounded to 1e-6°, about 0.1 m) or a location id share
//! a row: every distinct pair is computed or fetched once, then spread over the places.
//! The result is always `places.len()` square with a zero diagonal.

mod osrm;

use crate::{Distance, Duration};
use geo::{Distance as _, Haversine, Point};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The largest travel time (seconds) or distance (metres) accepted in a matrix.
///
/// About 31 years or a million kilometres: far beyond any real trip, and small enough
/// that sums along a route cannot overflow.
pub const MAX_TRAVEL_ENTRY: i64 = 1_000_000_000;

/// How many problems of one matrix [`validate_options`] lists before it stops: a matrix
/// that is wrong everywhere says so in a few lines, not in millions.
const MAX_REPORTED_PER_MATRIX: usize = 10;

/// A point on Earth, WGS84 degrees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Coord {
    /// Latitude in degrees, −90 to 90.
    pub lat: f64,
    /// Longitude in degrees, −180 to 180.
    pub lon: f64,
}

/// Road-speed profile for the great-circle estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum AreaProfile {
    /// Dense city traffic.
    #[default]
    Urban,
    /// Outskirts and towns.
    Suburban,
    /// Open roads.
    Rural,
}

/// Average door-to-door road speed of each [`AreaProfile`], km/h.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SpeedTable {
    /// km/h in the city; default 22.
    pub urban: f64,
    /// km/h in the outskirts; default 35.
    pub suburban: f64,
    /// km/h on open roads; default 55.
    pub rural: f64,
}

impl Default for SpeedTable {
    fn default() -> Self {
        Self {
            urban: 22.0,
            suburban: 35.0,
            rural: 55.0,
        }
    }
}

impl SpeedTable {
    /// The speed of `profile`, km/h.
    pub fn kmh(&self, profile: AreaProfile) -> f64 {
        match profile {
            AreaProfile::Urban => self.urban,
            AreaProfile::Suburban => self.suburban,
            AreaProfile::Rural => self.rural,
        }
    }
}

/// How travel between places is obtained (the problem's `travel` field).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum TravelOptions {
    /// Great-circle (haversine) distance × `detour_factor`; time = distance ÷ the speed
    /// of `profile`. Metres are rounded, seconds rounded up.
    GreatCircle {
        /// Road distance over straight distance, 1 to 10; default 1.35.
        #[serde(default = "default_detour_factor")]
        detour_factor: f64,
        /// Which speed of `speeds_kmh` applies; default `urban`.
        #[serde(default)]
        profile: AreaProfile,
        /// Speeds per profile, 1 to 500 km/h.
        #[serde(default)]
        speeds_kmh: SpeedTable,
    },
    /// The user's own matrices over named locations: `locations[i]` is a location id,
    /// `durations_s[i][j]` seconds and `distances_m[i][j]` metres from `i` to `j`.
    /// The diagonal is ignored (a place is zero from itself).
    Matrix {
        /// Location ids, each once; places refer to them by id.
        locations: Vec<String>,
        /// Seconds, one row per location, each row as long as `locations`.
        durations_s: Vec<Vec<i64>>,
        /// Metres, same shape as `durations_s`.
        distances_m: Vec<Vec<i64>>,
    },
    /// An OSRM server's `table` service (plain `http://`), e.g. `http://localhost:5000`.
    Osrm {
        /// Base URL of the server, without `/table/...`.
        url: String,
        /// OSRM profile name in the URL; default `driving`.
        #[serde(default = "default_osrm_profile")]
        profile: String,
        /// A folder where answers are kept as JSON files and reused for the same server,
        /// profile and coordinates.
        #[serde(default)]
        cache_dir: Option<String>,
    },
}

fn default_detour_factor() -> f64 {
    1.35
}

fn default_osrm_profile() -> String {
    "driving".to_owned()
}

impl Default for TravelOptions {
    fn default() -> Self {
        Self::GreatCircle {
            detour_factor: default_detour_factor(),
            profile: AreaProfile::default(),
            speeds_kmh: SpeedTable::default(),
        }
    }
}

/// One place to route between: its coordinates and, for `matrix` travel, its location id.
///
/// Errors about a place name it `places[i]`, `i` being its index in the slice given to
/// [`build_matrices`]; the caller maps that back to its own field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlaceRef<'a> {
    /// Where the place is; checked only by the modes that use it (not `matrix`).
    pub coord: Coord,
    /// Its id in `travel.locations`; needed by `matrix` travel only.
    pub location_id: Option<&'a str>,
}

/// Integer travel matrices between places: row-major `size`×`size`, diagonal zero.
#[derive(Clone, Debug, PartialEq)]
pub struct TravelMatrices {
    /// Number of places.
    pub size: usize,
    /// Seconds from row to column.
    pub durations_s: Vec<i64>,
    /// Metres from row to column.
    pub distances_m: Vec<i64>,
}

impl TravelMatrices {
    /// Travel time from place `from` to place `to`.
    pub fn duration(&self, from: usize, to: usize) -> Duration {
        Duration(self.durations_s[from * self.size + to])
    }

    /// Road distance from place `from` to place `to`.
    pub fn distance(&self, from: usize, to: usize) -> Distance {
        Distance(self.distances_m[from * self.size + to])
    }
}

/// Why travel could not be computed.
///
/// [`TravelError::path`] says where (`travel.durations_s[3][1]`, `places[4]`, ...),
/// [`TravelError::code`] what kind of problem, and `Display` describes it without the
/// path, so a caller can report the three separately after remapping the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TravelError {
    /// A number out of its range (detour factor, speed, too large a matrix entry).
    #[error("{message}")]
    InvalidNumber { path: String, message: String },
    /// A coordinate that is not a finite latitude/longitude in range.
    #[error("coordinate ({lat}, {lon}) is not a valid WGS84 latitude/longitude: {reason}")]
    InvalidCoordinate {
        path: String,
        lat: f64,
        lon: f64,
        reason: &'static str,
    },
    /// A malformed option other than a number (OSRM URL, profile, cache folder).
    #[error("{message}")]
    InvalidOption { path: String, message: String },
    /// `matrix` travel, but a place has no location id.
    #[error("this place has no location id; `matrix` travel needs one on every place")]
    MissingLocation { path: String },
    /// A place's location id is not in `travel.locations`.
    #[error("location `{id}` is not in travel.locations")]
    UnknownLocation { path: String, id: String },
    /// The same id appears twice in `travel.locations`.
    #[error("location `{id}` is listed twice (first at travel.locations[{first}])")]
    DuplicateLocation {
        path: String,
        id: String,
        first: usize,
    },
    /// A matrix or one of its rows has the wrong length.
    #[error("expected {expected} entries (one per location), found {found}")]
    MatrixShape {
        path: String,
        expected: usize,
        found: usize,
    },
    /// A negative travel time or distance.
    #[error("travel cannot be negative, found {value}")]
    NegativeTravel { path: String, value: i64 },
    /// The OSRM server could not be reached or did not answer in time.
    #[error("cannot reach the OSRM server at {url}: {message}")]
    OsrmUnreachable { url: String, message: String },
    /// The OSRM server answered with an error code of its own.
    #[error("the OSRM server refused the table request: {osrm_code}: {message}")]
    OsrmRejected { osrm_code: String, message: String },
    /// The OSRM server answered something that is not a usable table.
    #[error("unusable answer from the OSRM server: {message}")]
    OsrmBadResponse { message: String },
    /// OSRM found no road between two places (`null` in its table).
    #[error("OSRM found no road route from places[{from}] to places[{to}]")]
    Unroutable { from: usize, to: usize },
    /// The OSRM cache folder could not be written.
    #[error("cannot write the OSRM cache file {file}: {message}")]
    Cache { file: String, message: String },
}

impl TravelError {
    /// Where the problem is, as a JSON-path-like string: `travel.…` for the options,
    /// `places[i]` for a place given to [`build_matrices`].
    pub fn path(&self) -> String {
        match self {
            Self::InvalidNumber { path, .. }
            | Self::InvalidCoordinate { path, .. }
            | Self::InvalidOption { path, .. }
            | Self::MissingLocation { path }
            | Self::UnknownLocation { path, .. }
            | Self::DuplicateLocation { path, .. }
            | Self::MatrixShape { path, .. }
            | Self::NegativeTravel { path, .. } => path.clone(),
            Self::OsrmUnreachable { .. }
            | Self::OsrmRejected { .. }
            | Self::OsrmBadResponse { .. } => "travel.url".to_owned(),
            Self::Unroutable { from, .. } => format!("places[{from}]"),
            Self::Cache { .. } => "travel.cache_dir".to_owned(),
        }
    }

    /// A stable, machine-readable name of the kind of problem.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidNumber { .. } => "invalid_number",
            Self::InvalidCoordinate { .. } => "invalid_coordinate",
            Self::InvalidOption { .. } => "invalid_option",
            Self::MissingLocation { .. } => "missing_location",
            Self::UnknownLocation { .. } => "unknown_location",
            Self::DuplicateLocation { .. } => "duplicate_location",
            Self::MatrixShape { .. } => "matrix_shape",
            Self::NegativeTravel { .. } => "negative_travel",
            Self::OsrmUnreachable { .. } => "osrm_unreachable",
            // Refused and garbled answers both mean "OSRM gave no usable table".
            Self::OsrmRejected { .. } | Self::OsrmBadResponse { .. } => "osrm_bad_response",
            Self::Unroutable { .. } => "unroutable",
            Self::Cache { .. } => "cache_io",
        }
    }
}

/// Every problem of the options alone (ranges, matrix shapes, duplicate ids, OSRM
/// URL), at most a few per matrix. Empty when the options are usable.
pub fn validate_options(options: &TravelOptions) -> Vec<TravelError> {
    let mut errors = Vec::new();
    match options {
        TravelOptions::GreatCircle {
            detour_factor,
            speeds_kmh,
            ..
        } => {
            check_range(
                &mut errors,
                "travel.detour_factor",
                *detour_factor,
                1.0,
                10.0,
                "",
            );
            for (name, kmh) in [
                ("urban", speeds_kmh.urban),
                ("suburban", speeds_kmh.suburban),
                ("rural", speeds_kmh.rural),
            ] {
                let path = format!("travel.speeds_kmh.{name}");
                check_range(&mut errors, &path, kmh, 1.0, 500.0, " km/h");
            }
        }
        TravelOptions::Matrix {
            locations,
            durations_s,
            distances_m,
        } => {
            let mut first_at: HashMap<&str, usize> = HashMap::with_capacity(locations.len());
            for (i, id) in locations.iter().enumerate() {
                if let Some(&first) = first_at.get(id.as_str()) {
                    errors.push(TravelError::DuplicateLocation {
                        path: format!("travel.locations[{i}]"),
                        id: id.clone(),
                        first,
                    });
                } else {
                    first_at.insert(id, i);
                }
            }
            check_matrix(
                &mut errors,
                "travel.durations_s",
                durations_s,
                locations.len(),
            );
            check_matrix(
                &mut errors,
                "travel.distances_m",
                distances_m,
                locations.len(),
            );
        }
        TravelOptions::Osrm {
            url,
            profile,
            cache_dir,
        } => {
            // Built without a TLS stack (see the workspace's ureq line): say so up front
            // rather than fail at the first request.
            let host = url.strip_prefix("http://").unwrap_or("");
            if host.trim_end_matches('/').is_empty() {
                errors.push(TravelError::InvalidOption {
                    path: "travel.url".to_owned(),
                    message: format!(
                        "`{url}` is not a plain http:// URL of an OSRM server (https is not supported; \
                         use e.g. http://localhost:5000)"
                    ),
                });
            }
            // The profile goes into the URL path verbatim.
            let profile_ok = !profile.is_empty()
                && profile
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !profile_ok {
                errors.push(TravelError::InvalidOption {
                    path: "travel.profile".to_owned(),
                    message: format!(
                        "`{profile}` is not an OSRM profile name (letters, digits, `_` and `-`)"
                    ),
                });
            }
            if cache_dir.as_deref() == Some("") {
                errors.push(TravelError::InvalidOption {
                    path: "travel.cache_dir".to_owned(),
                    message: "the cache folder is empty; leave it out to disable the cache"
                        .to_owned(),
                });
            }
        }
    }
    errors
}

fn check_range(
    errors: &mut Vec<TravelError>,
    path: &str,
    value: f64,
    min: f64,
    max: f64,
    unit: &str,
) {
    // Written so that NaN fails too.
    if !(value >= min && value <= max) {
        errors.push(TravelError::InvalidNumber {
            path: path.to_owned(),
            message: format!("must be between {min} and {max}{unit}, found {value}"),
        });
    }
}

fn check_matrix(errors: &mut Vec<TravelError>, path: &str, rows: &[Vec<i64>], size: usize) {
    if rows.len() != size {
        errors.push(TravelError::MatrixShape {
            path: path.to_owned(),
            expected: size,
            found: rows.len(),
        });
        return;
    }
    let mut reported = 0;
    for (i, row) in rows.iter().enumerate() {
        if reported >= MAX_REPORTED_PER_MATRIX {
            return;
        }
        if row.len() != size {
            errors.push(TravelError::MatrixShape {
                path: format!("{path}[{i}]"),
                expected: size,
                found: row.len(),
            });
            reported += 1;
            continue;
        }
        for (j, &value) in row.iter().enumerate() {
            if reported >= MAX_REPORTED_PER_MATRIX {
                return;
            }
            let entry = format!("{path}[{i}][{j}]");
            if value < 0 {
                errors.push(TravelError::NegativeTravel { path: entry, value });
                reported += 1;
            } else if value > MAX_TRAVEL_ENTRY {
                errors.push(TravelError::InvalidNumber {
                    path: entry,
                    message: format!("must be at most {MAX_TRAVEL_ENTRY}, found {value}"),
                });
                reported += 1;
            }
        }
    }
}

/// Travel matrices between `places`, in their order.
///
/// Fails with the first problem found: options first (see [`validate_options`]), then
/// places (bad coordinates, unknown location ids), then the OSRM server.
pub fn build_matrices(
    options: &TravelOptions,
    places: &[PlaceRef],
) -> Result<TravelMatrices, TravelError> {
    if let Some(first) = validate_options(options).into_iter().next() {
        return Err(first);
    }
    let table = match options {
        TravelOptions::GreatCircle {
            detour_factor,
            profile,
            speeds_kmh,
        } => {
            let points = DistinctPoints::of(places)?;
            great_circle(&points, *detour_factor, speeds_kmh.kmh(*profile))
        }
        TravelOptions::Matrix {
            locations,
            durations_s,
            distances_m,
        } => user_matrix(places, locations, durations_s, distances_m)?,
        TravelOptions::Osrm {
            url,
            profile,
            cache_dir,
        } => {
            let points = DistinctPoints::of(places)?;
            let (durations, distances) = osrm::table(url, profile, cache_dir.as_deref(), &points)?;
            Table {
                row_of_place: points.point_of_place,
                size: points.keys.len(),
                durations,
                distances,
            }
        }
    };
    Ok(table.spread())
}

/// Travel between distinct points (coordinates or locations), `size`×`size`, and which
/// point each place is at.
struct Table {
    row_of_place: Vec<usize>,
    size: usize,
    durations: Vec<i64>,
    distances: Vec<i64>,
}

impl Table {
    /// One row per place, copied from its point's row.
    fn spread(self) -> TravelMatrices {
        let n = self.row_of_place.len();
        let mut durations_s = Vec::with_capacity(n * n);
        let mut distances_m = Vec::with_capacity(n * n);
        for (i, &from) in self.row_of_place.iter().enumerate() {
            let row = from * self.size;
            for (j, &to) in self.row_of_place.iter().enumerate() {
                // Two places at one point are zero apart, whatever a user matrix's diagonal says.
                let same = i == j || from == to;
                durations_s.push(if same { 0 } else { self.durations[row + to] });
                distances_m.push(if same { 0 } else { self.distances[row + to] });
            }
        }
        TravelMatrices {
            size: n,
            durations_s,
            distances_m,
        }
    }
}

/// The distinct coordinates of the places, as integer micro-degrees `(lat, lon)`, sorted
/// so that the same set of places gives the same table (and OSRM cache key) in any order.
struct DistinctPoints {
    keys: Vec<(i64, i64)>,
    point_of_place: Vec<usize>,
    /// The first place at each point, to name places in errors.
    first_place: Vec<usize>,
}

impl DistinctPoints {
    fn of(places: &[PlaceRef]) -> Result<Self, TravelError> {
        let mut place_keys = Vec::with_capacity(places.len());
        for (i, place) in places.iter().enumerate() {
            place_keys.push(micro_degrees(place.coord, i)?);
        }
        let mut keys = place_keys.clone();
        keys.sort_unstable();
        keys.dedup();
        let mut first_place = vec![usize::MAX; keys.len()];
        let mut point_of_place = Vec::with_capacity(places.len());
        for (i, key) in place_keys.iter().enumerate() {
            let point = keys.binary_search(key).expect("every key was inserted");
            first_place[point] = first_place[point].min(i);
            point_of_place.push(point);
        }
        Ok(Self {
            keys,
            point_of_place,
            first_place,
        })
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn coord(&self, point: usize) -> Coord {
        let (lat, lon) = self.keys[point];
        Coord {
            lat: lat as f64 / 1e6,
            lon: lon as f64 / 1e6,
        }
    }
}

/// Validates a coordinate and rounds it to integer micro-degrees.
fn micro_degrees(coord: Coord, place: usize) -> Result<(i64, i64), TravelError> {
    let reason = if !coord.lat.is_finite() || !coord.lon.is_finite() {
        Some("not a finite number")
    } else if !(-90.0..=90.0).contains(&coord.lat) {
        Some("latitude must be between -90 and 90")
    } else if !(-180.0..=180.0).contains(&coord.lon) {
        Some("longitude must be between -180 and 180")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Err(TravelError::InvalidCoordinate {
            path: format!("places[{place}]"),
            lat: coord.lat,
            lon: coord.lon,
            reason,
        });
    }
    // In range, so the products fit an i64 easily (and -0.0 becomes 0).
    let round = |degrees: f64| (degrees * 1e6).round() as i64;
    Ok((round(coord.lat), round(coord.lon)))
}

/// Haversine × detour for each distinct pair once (the table is symmetric).
fn great_circle(points: &DistinctPoints, detour_factor: f64, speed_kmh: f64) -> Table {
    let m = points.len();
    let metres_per_second = speed_kmh / 3.6;
    let geo_points: Vec<Point<f64>> = (0..m)
        .map(|k| {
            let c = points.coord(k);
            Point::new(c.lon, c.lat)
        })
        .collect();
    let mut durations = vec![0; m * m];
    let mut distances = vec![0; m * m];
    for a in 0..m {
        for b in a + 1..m {
            let road_m = Haversine.distance(geo_points[a], geo_points[b]) * detour_factor;
            // Rounded up: an estimate should not promise a faster trip than it computed.
            let seconds = (road_m / metres_per_second).ceil() as i64;
            let metres = road_m.round() as i64;
            durations[a * m + b] = seconds;
            durations[b * m + a] = seconds;
            distances[a * m + b] = metres;
            distances[b * m + a] = metres;
        }
    }
    Table {
        row_of_place: points.point_of_place.clone(),
        size: m,
        durations,
        distances,
    }
}

/// The user's matrices, with each place mapped to its location's row.
fn user_matrix(
    places: &[PlaceRef],
    locations: &[String],
    durations_s: &[Vec<i64>],
    distances_m: &[Vec<i64>],
) -> Result<Table, TravelError> {
    let index: HashMap<&str, usize> = locations
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut row_of_place = Vec::with_capacity(places.len());
    for (i, place) in places.iter().enumerate() {
        let path = format!("places[{i}]");
        let id = place
            .location_id
            .ok_or(TravelError::MissingLocation { path: path.clone() })?;
        let row = *index.get(id).ok_or_else(|| TravelError::UnknownLocation {
            path,
            id: id.to_owned(),
        })?;
        row_of_place.push(row);
    }
    Ok(Table {
        row_of_place,
        size: locations.len(),
        durations: durations_s.concat(),
        distances: distances_m.concat(),
    })
}
