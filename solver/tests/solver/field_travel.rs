//! Travel matrices of the field-service model: great-circle estimates, user matrices and
//! an OSRM client driven against a stand-in server on 127.0.0.1.

use despacho_solver::field::travel::{
    build_matrices, validate_options, AreaProfile, Coord, PlaceRef, SpeedTable, TravelError,
    TravelMatrices, TravelOptions,
};
use geo::{Distance as _, Haversine, Point};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SE: Coord = Coord {
    lat: -23.5503,
    lon: -46.6339,
};
const MASP: Coord = Coord {
    lat: -23.5614,
    lon: -46.6559,
};

fn at(coord: Coord) -> PlaceRef<'static> {
    PlaceRef {
        coord,
        location_id: None,
    }
}

fn great_circle(detour_factor: f64, profile: AreaProfile) -> TravelOptions {
    TravelOptions::GreatCircle {
        detour_factor,
        profile,
        speeds_kmh: SpeedTable::default(),
    }
}

fn straight_metres(a: Coord, b: Coord) -> f64 {
    Haversine.distance(Point::new(a.lon, a.lat), Point::new(b.lon, b.lat))
}

fn error_of(options: &TravelOptions, places: &[PlaceRef]) -> TravelError {
    match build_matrices(options, places) {
        Ok(_) => panic!("expected an error for {options:?}"),
        Err(error) => error,
    }
}

/// `n` points spread over São Paulo on whole micro-degrees, all distinct.
fn spread_points(n: usize) -> Vec<Coord> {
    (0..n)
        .map(|i| Coord {
            lat: (-23_500_000 - 1_237 * i as i64 - 91 * (i as i64 % 7)) as f64 / 1e6,
            lon: (-46_600_000 - 2_311 * (i as i64 % 13) - 17 * i as i64) as f64 / 1e6,
        })
        .collect()
}

fn assert_square_with_zero_diagonal(m: &TravelMatrices, n: usize) {
    assert_eq!(m.size, n);
    assert_eq!(m.durations_s.len(), n * n);
    assert_eq!(m.distances_m.len(), n * n);
    for i in 0..n {
        assert_eq!(m.durations_s[i * n + i], 0, "duration diagonal at {i}");
        assert_eq!(m.distances_m[i * n + i], 0, "distance diagonal at {i}");
    }
}

// ---------------------------------------------------------------- great circle

#[test]
fn great_circle_matches_the_known_distance_from_praca_da_se_to_masp() {
    let m = build_matrices(&TravelOptions::default(), &[at(SE), at(MASP)]).unwrap();
    assert_square_with_zero_diagonal(&m, 2);

    // About 2.56 km as the crow flies; the default detour factor is 1.35.
    let straight = m.distances_m[1] as f64 / 1.35;
    assert!(
        (straight - 2_560.0).abs() < 25.6,
        "straight distance {straight} m is not within 1 % of 2,560 m"
    );
    assert_eq!(m.distances_m[1], 3_456, "round(2,559.68 m × 1.35)");
    assert_eq!(
        m.distances_m[1],
        (straight_metres(SE, MASP) * 1.35).round() as i64
    );

    // Urban default 22 km/h: 3,455.57 m ÷ 6.11 m/s = 565.46 s, rounded up.
    assert_eq!(m.durations_s[1], 566);
    assert_eq!(m.duration(0, 1).get(), 566);
    assert_eq!(m.distance(1, 0).get(), 3_456);
}

#[test]
fn great_circle_time_follows_the_profile_speed_and_custom_speeds() {
    let rural =
        build_matrices(&great_circle(1.35, AreaProfile::Rural), &[at(SE), at(MASP)]).unwrap();
    assert_eq!(rural.distances_m[1], 3_456);
    assert_eq!(
        rural.durations_s[1], 227,
        "3,455.57 m at 55 km/h = 226.18 s"
    );

    let straight = straight_metres(SE, MASP);
    let options = TravelOptions::GreatCircle {
        detour_factor: 1.0,
        profile: AreaProfile::Suburban,
        speeds_kmh: SpeedTable {
            urban: 10.0,
            suburban: 36.0,
            rural: 80.0,
        },
    };
    let m = build_matrices(&options, &[at(SE), at(MASP)]).unwrap();
    assert_eq!(m.distances_m[1], straight.round() as i64);
    assert_eq!(
        m.durations_s[1],
        (straight / 10.0).ceil() as i64,
        "36 km/h is 10 m/s"
    );
}

#[test]
fn great_circle_matrices_are_symmetric_with_a_zero_diagonal() {
    let places: Vec<PlaceRef> = spread_points(40).into_iter().map(at).collect();
    let m = build_matrices(&TravelOptions::default(), &places).unwrap();
    assert_square_with_zero_diagonal(&m, 40);
    for i in 0..40 {
        for j in 0..40 {
            assert_eq!(m.durations_s[i * 40 + j], m.durations_s[j * 40 + i]);
            assert_eq!(m.distances_m[i * 40 + j], m.distances_m[j * 40 + i]);
            if i != j {
                assert!(m.distances_m[i * 40 + j] > 0 && m.durations_s[i * 40 + j] > 0);
            }
        }
    }
}

#[test]
fn places_at_the_same_coordinates_share_a_row_and_are_zero_apart() {
    // Places 0, 2 and 3 are one spot (3 differs by less than the 1e-6° rounding).
    let nearly_se = Coord {
        lat: SE.lat + 2e-7,
        lon: SE.lon - 3e-7,
    };
    let places = [at(SE), at(MASP), at(SE), at(nearly_se)];
    let m = build_matrices(&TravelOptions::default(), &places).unwrap();
    assert_square_with_zero_diagonal(&m, 4);
    for same in [2, 3] {
        assert_eq!(m.durations_s[same], 0, "places[0] → places[{same}]");
        assert_eq!(m.distances_m[same * 4], 0, "places[{same}] → places[0]");
        for j in 0..4 {
            assert_eq!(m.distances_m[same * 4 + j], m.distances_m[j], "row {same}");
            assert_eq!(m.durations_s[same * 4 + j], m.durations_s[j], "row {same}");
        }
    }
    assert_eq!(
        m.distance(1, 3).get(),
        3_456,
        "MASP → Sé via the near-duplicate"
    );
}

#[test]
fn no_places_give_empty_matrices() {
    let m = build_matrices(&TravelOptions::default(), &[]).unwrap();
    assert_eq!(m.size, 0);
    assert!(m.durations_s.is_empty() && m.distances_m.is_empty());
}

#[test]
fn a_day_of_2000_jobs_and_400_technician_places_builds_quickly() {
    // 2,000 distinct job spots and 400 technicians starting from 20 depots.
    let mut coords = spread_points(2_000);
    let depots = spread_points(20);
    coords.extend((0..400).map(|i| depots[i % 20]));
    let places: Vec<PlaceRef> = coords.into_iter().map(at).collect();

    let started = Instant::now();
    let m = build_matrices(&TravelOptions::default(), &places).unwrap();
    let elapsed = started.elapsed();
    eprintln!("2,400 places: {elapsed:?}");

    assert_square_with_zero_diagonal(&m, 2_400);
    // Technician 2,000 starts at depot 0, which is also job spot 0.
    assert_eq!(m.distances_m[2_000 * 2_400], 0);
    assert_eq!(m.distances_m[2_000 * 2_400 + 7], m.distances_m[7]);
    // Generous for a shared, loaded machine; it takes a fraction of a second in release.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn rejects_out_of_range_detour_factor_and_speeds() {
    let places = [at(SE), at(MASP)];
    for detour in [0.9, f64::NAN, f64::INFINITY, 11.0] {
        let error = error_of(&great_circle(detour, AreaProfile::Urban), &places);
        assert_eq!(error.code(), "invalid_number", "{detour}");
        assert_eq!(error.path(), "travel.detour_factor");
    }
    let options = TravelOptions::GreatCircle {
        detour_factor: 1.35,
        profile: AreaProfile::Urban,
        speeds_kmh: SpeedTable {
            suburban: 0.0,
            rural: -5.0,
            ..SpeedTable::default()
        },
    };
    // Unused profiles are checked too: a bad number is a mistake wherever it is.
    let errors = validate_options(&options);
    let paths: Vec<String> = errors.iter().map(TravelError::path).collect();
    assert_eq!(
        paths,
        ["travel.speeds_kmh.suburban", "travel.speeds_kmh.rural"]
    );
    assert!(errors.iter().all(|e| e.code() == "invalid_number"));
    assert_eq!(
        error_of(&options, &places).path(),
        "travel.speeds_kmh.suburban"
    );
}

#[test]
fn rejects_non_finite_and_out_of_range_coordinates_naming_the_place() {
    let bad = [
        Coord {
            lat: f64::NAN,
            lon: 0.0,
        },
        Coord {
            lat: 0.0,
            lon: f64::INFINITY,
        },
        Coord {
            lat: 90.5,
            lon: 0.0,
        },
        Coord {
            lat: -91.0,
            lon: 0.0,
        },
        Coord {
            lat: 0.0,
            lon: 180.01,
        },
        Coord {
            lat: 0.0,
            lon: -181.0,
        },
    ];
    for coord in bad {
        let places = [at(SE), at(MASP), at(SE), at(coord)];
        let error = error_of(&TravelOptions::default(), &places);
        assert_eq!(error.code(), "invalid_coordinate", "{coord:?}");
        assert_eq!(error.path(), "places[3]", "{coord:?}");
    }
    // The poles and the antimeridian are fine.
    let edges = [
        at(Coord {
            lat: 90.0,
            lon: 180.0,
        }),
        at(Coord {
            lat: -90.0,
            lon: -180.0,
        }),
    ];
    let m = build_matrices(&TravelOptions::default(), &edges).unwrap();
    let half_circumference = std::f64::consts::PI * 6_371_008.8;
    assert!((m.distances_m[1] as f64 / 1.35 - half_circumference).abs() < 10.0);
}

#[test]
fn travel_options_parse_from_json_with_defaults() {
    let parsed: TravelOptions = serde_json::from_value(json!({ "mode": "great_circle" })).unwrap();
    assert_eq!(parsed, TravelOptions::default());
    assert_eq!(
        parsed,
        great_circle(1.35, AreaProfile::Urban),
        "default detour 1.35, urban"
    );

    let parsed: TravelOptions = serde_json::from_value(json!({
        "mode": "great_circle", "profile": "rural", "speeds_kmh": { "rural": 70 }
    }))
    .unwrap();
    let TravelOptions::GreatCircle {
        profile,
        speeds_kmh,
        ..
    } = parsed
    else {
        panic!("{parsed:?}")
    };
    assert_eq!(profile, AreaProfile::Rural);
    assert_eq!(
        (speeds_kmh.urban, speeds_kmh.suburban, speeds_kmh.rural),
        (22.0, 35.0, 70.0)
    );

    let parsed: TravelOptions =
        serde_json::from_value(json!({ "mode": "osrm", "url": "http://osrm:5000" })).unwrap();
    assert_eq!(
        parsed,
        TravelOptions::Osrm {
            url: "http://osrm:5000".into(),
            profile: "driving".into(),
            cache_dir: None
        }
    );

    for wrong in [
        json!({ "mode": "great_circle", "detour": 1.2 }),
        json!({ "mode": "teleport" }),
        json!({ "mode": "matrix", "locations": [] }),
    ] {
        assert!(
            serde_json::from_value::<TravelOptions>(wrong.clone()).is_err(),
            "{wrong}"
        );
    }
}

#[test]
fn travel_options_schema_names_the_modes_and_defaults() {
    let schema = serde_json::to_string(&schemars::schema_for!(TravelOptions)).unwrap();
    for expected in [
        "great_circle",
        "matrix",
        "osrm",
        "detour_factor",
        "1.35",
        "driving",
    ] {
        assert!(
            schema.contains(expected),
            "{expected} missing from {schema}"
        );
    }
}

// ---------------------------------------------------------------- user matrices

fn user_matrix(durations_s: Vec<Vec<i64>>, distances_m: Vec<Vec<i64>>) -> TravelOptions {
    TravelOptions::Matrix {
        locations: vec!["depot".into(), "a".into(), "b".into()],
        durations_s,
        distances_m,
    }
}

fn sample_matrix() -> TravelOptions {
    user_matrix(
        vec![vec![9, 100, 200], vec![110, 0, 300], vec![210, 310, 0]],
        vec![
            vec![0, 1_000, 2_000],
            vec![1_100, 0, 3_000],
            vec![2_100, 3_100, 0],
        ],
    )
}

fn located(id: &str) -> PlaceRef<'_> {
    // Matrix travel never looks at coordinates.
    PlaceRef {
        coord: Coord {
            lat: f64::NAN,
            lon: 0.0,
        },
        location_id: Some(id),
    }
}

#[test]
fn user_matrix_is_spread_over_places_by_location_id() {
    let places = [located("a"), located("depot"), located("a"), located("b")];
    let m = build_matrices(&sample_matrix(), &places).unwrap();
    assert_square_with_zero_diagonal(&m, 4);
    #[rustfmt::skip]
    let durations = vec![
        0,   110, 0,   300,
        100, 0,   100, 200,
        0,   110, 0,   300,
        310, 210, 310, 0,
    ];
    #[rustfmt::skip]
    let distances = vec![
        0,     1_100, 0,     3_000,
        1_000, 0,     1_000, 2_000,
        0,     1_100, 0,     3_000,
        3_100, 2_100, 3_100, 0,
    ];
    assert_eq!(
        m.durations_s, durations,
        "the user's diagonal (9) is ignored"
    );
    assert_eq!(m.distances_m, distances);
}

#[test]
fn user_matrix_rejects_an_unknown_location_naming_it() {
    let places = [located("depot"), located("c")];
    let error = error_of(&sample_matrix(), &places);
    assert_eq!(error.code(), "unknown_location");
    assert_eq!(error.path(), "places[1]");
    assert!(error.to_string().contains("`c`"), "{error}");
}

#[test]
fn user_matrix_rejects_a_place_without_location_id() {
    let error = error_of(&sample_matrix(), &[located("depot"), at(SE)]);
    assert_eq!(error.code(), "missing_location");
    assert_eq!(error.path(), "places[1]");
}

#[test]
fn user_matrix_rejects_duplicate_location_ids() {
    let options = TravelOptions::Matrix {
        locations: vec!["depot".into(), "a".into(), "depot".into()],
        durations_s: vec![vec![0; 3]; 3],
        distances_m: vec![vec![0; 3]; 3],
    };
    let error = error_of(&options, &[located("depot")]);
    assert_eq!(error.code(), "duplicate_location");
    assert_eq!(error.path(), "travel.locations[2]");
    assert!(error.to_string().contains("travel.locations[0]"), "{error}");
}

#[test]
fn user_matrix_rejects_wrong_shapes() {
    let places = [located("depot")];
    let too_few_rows = user_matrix(vec![vec![0; 3]; 2], vec![vec![0; 3]; 3]);
    let error = error_of(&too_few_rows, &places);
    assert_eq!(
        (error.code(), error.path()),
        ("matrix_shape", "travel.durations_s".into())
    );
    assert!(error.to_string().contains("expected 3 entries"), "{error}");

    let short_row = user_matrix(
        vec![vec![0; 3]; 3],
        vec![vec![0; 3], vec![0; 2], vec![0; 3]],
    );
    let error = error_of(&short_row, &places);
    assert_eq!(
        (error.code(), error.path()),
        ("matrix_shape", "travel.distances_m[1]".into())
    );
}

#[test]
fn user_matrix_rejects_negative_and_absurd_entries() {
    let places = [located("depot")];
    let mut durations = vec![vec![0; 3]; 3];
    durations[2][0] = -5;
    let error = error_of(&user_matrix(durations, vec![vec![0; 3]; 3]), &places);
    assert_eq!(error.code(), "negative_travel");
    assert_eq!(error.path(), "travel.durations_s[2][0]");

    let mut distances = vec![vec![0; 3]; 3];
    distances[0][1] = i64::MAX;
    let error = error_of(&user_matrix(vec![vec![0; 3]; 3], distances), &places);
    assert_eq!(error.code(), "invalid_number");
    assert_eq!(error.path(), "travel.distances_m[0][1]");
}

#[test]
fn validation_lists_every_matrix_problem_but_a_bounded_number() {
    let options = TravelOptions::Matrix {
        locations: vec!["x".into(), "x".into()],
        durations_s: vec![vec![-1, -2], vec![-3, -4]],
        distances_m: vec![vec![0]],
    };
    let found: Vec<(&str, String)> = validate_options(&options)
        .iter()
        .map(|e| (e.code(), e.path()))
        .collect();
    assert_eq!(
        found,
        [
            ("duplicate_location", "travel.locations[1]".into()),
            ("negative_travel", "travel.durations_s[0][0]".into()),
            ("negative_travel", "travel.durations_s[0][1]".into()),
            ("negative_travel", "travel.durations_s[1][0]".into()),
            ("negative_travel", "travel.durations_s[1][1]".into()),
            ("matrix_shape", "travel.distances_m".into()),
        ]
    );

    let all_negative = TravelOptions::Matrix {
        locations: (0..100).map(|i| i.to_string()).collect(),
        durations_s: vec![vec![-1; 100]; 100],
        distances_m: vec![vec![0; 100]; 100],
    };
    let count = validate_options(&all_negative).len();
    assert!((1..=20).contains(&count), "{count} problems listed");
}

// ---------------------------------------------------------------- OSRM

/// What the stand-in OSRM answers.
#[derive(Clone)]
enum Reply {
    /// A real table over the requested coordinates, from [`stand_in_seconds`] and
    /// [`stand_in_metres`], honouring `sources` and `destinations`.
    Table,
    /// The same status and body to every request.
    Fixed(u16, String),
}

/// One request the stand-in saw: coordinates listed, sources × destinations asked.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    coordinates: usize,
    sources: Option<usize>,
    destinations: Option<usize>,
}

struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        // Serves until the test process ends.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &reply, &log);
            }
        });
        Self { url, seen }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, reply: &Reply, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
            break;
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let (status, body) = match reply {
        Reply::Fixed(status, body) => {
            log.lock().unwrap().push(parse_request(&target).0);
            (*status, body.clone())
        }
        Reply::Table => {
            let (seen, body) = answer_table(&target);
            log.lock().unwrap().push(seen);
            (200, body)
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Stand-in\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The coordinates, sources and destinations of `/table/v1/{profile}/{lon,lat;...}?...`.
fn parse_request(target: &str) -> (Seen, Vec<Coord>, Vec<usize>, Vec<usize>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = path.strip_prefix("/table/v1/").expect("a table request");
    let (_profile, listed) = rest.split_once('/').expect("a profile");
    let coords: Vec<Coord> = listed
        .split(';')
        .map(|pair| {
            let (lon, lat) = pair.split_once(',').unwrap();
            Coord {
                lat: lat.parse().unwrap(),
                lon: lon.parse().unwrap(),
            }
        })
        .collect();
    let mut sources = None;
    let mut destinations = None;
    let mut annotations = None;
    for parameter in query.split('&') {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let indices = || -> Vec<usize> { value.split(';').map(|i| i.parse().unwrap()).collect() };
        match key {
            "sources" => sources = Some(indices()),
            "destinations" => destinations = Some(indices()),
            "annotations" => annotations = Some(value.to_owned()),
            _ => panic!("unexpected parameter {parameter}"),
        }
    }
    assert_eq!(annotations.as_deref(), Some("duration,distance"));
    let seen = Seen {
        coordinates: coords.len(),
        sources: sources.as_ref().map(Vec::len),
        destinations: destinations.as_ref().map(Vec::len),
    };
    let all = || (0..coords.len()).collect();
    (
        seen,
        coords.clone(),
        sources.unwrap_or_else(all),
        destinations.unwrap_or_else(all),
    )
}

/// Seconds the stand-in reports: 10 m/s, plus a minute when heading north, so a
/// transposed block would show.
fn stand_in_seconds(from: Coord, to: Coord) -> f64 {
    straight_metres(from, to) / 10.0 + if to.lat > from.lat { 60.0 } else { 0.0 }
}

fn stand_in_metres(from: Coord, to: Coord) -> f64 {
    straight_metres(from, to) * 1.3
}

fn answer_table(target: &str) -> (Seen, String) {
    let (seen, coords, sources, destinations) = parse_request(target);
    let table = |f: fn(Coord, Coord) -> f64| -> Vec<Vec<f64>> {
        sources
            .iter()
            .map(|&s| {
                destinations
                    .iter()
                    .map(|&d| f(coords[s], coords[d]))
                    .collect()
            })
            .collect()
    };
    let body = json!({
        "code": "Ok",
        "durations": table(stand_in_seconds),
        "distances": table(stand_in_metres),
    });
    (seen, body.to_string())
}

/// What the client must produce from the stand-in's table.
fn expected_from_stand_in(coords: &[Coord]) -> TravelMatrices {
    let n = coords.len();
    let mut expected = TravelMatrices {
        size: n,
        durations_s: vec![0; n * n],
        distances_m: vec![0; n * n],
    };
    for (i, &a) in coords.iter().enumerate() {
        for (j, &b) in coords.iter().enumerate() {
            if a != b {
                expected.durations_s[i * n + j] = stand_in_seconds(a, b).ceil() as i64;
                expected.distances_m[i * n + j] = stand_in_metres(a, b).round() as i64;
            }
        }
    }
    expected
}

fn osrm(url: &str, cache_dir: Option<&PathBuf>) -> TravelOptions {
    TravelOptions::Osrm {
        url: url.to_owned(),
        profile: "driving".into(),
        cache_dir: cache_dir.map(|dir| dir.display().to_string()),
    }
}

/// A fresh, empty folder for one test's cache.
fn cache_folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "despacho-field-travel-{}-{test}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn osrm_asks_once_for_the_distinct_coordinates_of_a_small_problem() {
    let server = StandIn::start(Reply::Table);
    let points = spread_points(3);
    let coords = [points[0], points[1], points[0], points[2], points[1]];
    let places: Vec<PlaceRef> = coords.iter().copied().map(at).collect();

    let m = build_matrices(&osrm(&server.url, None), &places).unwrap();
    assert_eq!(m, expected_from_stand_in(&coords));
    assert_ne!(
        m.durations_s[1], m.durations_s[5],
        "the stand-in is asymmetric"
    );
    assert_eq!(
        server.requests(),
        [Seen {
            coordinates: 3,
            sources: None,
            destinations: None
        }]
    );
}

#[test]
fn osrm_assembles_100_by_100_blocks_and_reuses_its_cache() {
    let server = StandIn::start(Reply::Table);
    // 130 distinct coordinates and 10 repeats: two blocks each way.
    let mut coords = spread_points(130);
    let repeats: Vec<Coord> = (0..10).map(|i| coords[i * 13]).collect();
    coords.extend(repeats);
    let places: Vec<PlaceRef> = coords.iter().copied().map(at).collect();
    let cache = cache_folder("blocks");
    let options = osrm(&format!("{}/", server.url), Some(&cache));

    let m = build_matrices(&options, &places).unwrap();
    assert_eq!(m, expected_from_stand_in(&coords));

    let mut requests = server.requests();
    requests.sort_by_key(|seen| (seen.coordinates, seen.sources, seen.destinations));
    let block = |coordinates, sources, destinations| Seen {
        coordinates,
        sources,
        destinations,
    };
    assert_eq!(
        requests,
        [
            block(30, None, None),
            block(100, None, None),
            block(130, Some(30), Some(100)),
            block(130, Some(100), Some(30)),
        ]
    );
    let files = std::fs::read_dir(&cache).unwrap().count();
    assert_eq!(files, 1, "one cache file");

    // Same question, even with the places in another order: answered from the cache.
    assert_eq!(build_matrices(&options, &places).unwrap(), m);
    let reversed: Vec<Coord> = coords.iter().rev().copied().collect();
    let reversed_places: Vec<PlaceRef> = reversed.iter().copied().map(at).collect();
    let m_reversed = build_matrices(&options, &reversed_places).unwrap();
    assert_eq!(m_reversed, expected_from_stand_in(&reversed));
    assert_eq!(
        server.requests().len(),
        4,
        "no request after the first call"
    );

    // Another profile is another question.
    let walking = TravelOptions::Osrm {
        url: server.url.clone(),
        profile: "walking".into(),
        cache_dir: Some(cache.display().to_string()),
    };
    assert_eq!(build_matrices(&walking, &places).unwrap(), m);
    assert_eq!(server.requests().len(), 8);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn osrm_rereads_a_cache_file_that_is_damaged() {
    let server = StandIn::start(Reply::Table);
    let coords = spread_points(4);
    let places: Vec<PlaceRef> = coords.iter().copied().map(at).collect();
    let cache = cache_folder("damaged");
    let options = osrm(&server.url, Some(&cache));

    let first = build_matrices(&options, &places).unwrap();
    let file = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&file, "{ half a file").unwrap();
    assert_eq!(build_matrices(&options, &places).unwrap(), first);
    assert_eq!(server.requests().len(), 2, "the damaged file was a miss");
    assert_eq!(build_matrices(&options, &places).unwrap(), first);
    assert_eq!(server.requests().len(), 2, "and was rewritten");
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn osrm_refusal_is_reported_with_its_message() {
    let body = json!({
        "code": "InvalidQuery",
        "message": "Query string malformed close to position 28"
    });
    let server = StandIn::start(Reply::Fixed(400, body.to_string()));
    let error = error_of(&osrm(&server.url, None), &[at(SE), at(MASP)]);
    assert_eq!(error.code(), "osrm_bad_response");
    assert_eq!(error.path(), "travel.url");
    assert!(
        matches!(&error, TravelError::OsrmRejected { osrm_code, .. } if osrm_code == "InvalidQuery")
    );
    assert!(
        error
            .to_string()
            .contains("Query string malformed close to position 28"),
        "{error}"
    );
}

#[test]
fn osrm_null_entry_is_unroutable_and_names_both_places() {
    // Points go south to north: MASP (−23.5614) is row 0 although it is places[1].
    let body = json!({
        "code": "Ok",
        "durations": [[0, null], [95.5, 0]],
        "distances": [[0, null], [1_000.2, 0]],
    });
    let server = StandIn::start(Reply::Fixed(200, body.to_string()));
    let error = error_of(&osrm(&server.url, None), &[at(SE), at(MASP)]);
    assert_eq!(error.code(), "unroutable");
    assert!(
        matches!(error, TravelError::Unroutable { from: 1, to: 0 }),
        "{error:?}"
    );
    assert_eq!(error.path(), "places[1]");
    assert!(
        error.to_string().contains("places[1] to places[0]"),
        "{error}"
    );
}

#[test]
fn osrm_garbled_answers_are_bad_responses() {
    for (status, body) in [
        (200, "<html>proxy error</html>".to_owned()),
        (502, "Bad Gateway".to_owned()),
        (
            200,
            json!({ "code": "Ok", "durations": [[0, 1]] }).to_string(),
        ),
        (
            200,
            json!({ "code": "Ok", "durations": [[0, 1]], "distances": [[0, 1]] }).to_string(),
        ),
        (
            200,
            json!({ "code": "Ok", "durations": [[0, -1], [1, 0]], "distances": [[0, 1], [1, 0]] })
                .to_string(),
        ),
    ] {
        let server = StandIn::start(Reply::Fixed(status, body.clone()));
        let error = error_of(&osrm(&server.url, None), &[at(SE), at(MASP)]);
        assert_eq!(
            error.code(),
            "osrm_bad_response",
            "{status} {body}: {error}"
        );
    }
}

#[test]
fn osrm_unreachable_server_fails_fast() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);

    let started = Instant::now();
    let error = error_of(&osrm(&url, None), &[at(SE), at(MASP)]);
    assert_eq!(error.code(), "osrm_unreachable");
    assert_eq!(error.path(), "travel.url");
    assert!(error.to_string().contains(&url), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn osrm_needs_no_server_for_a_single_spot() {
    let options = osrm("http://127.0.0.1:9", None);
    let m = build_matrices(&options, &[at(SE), at(SE)]).unwrap();
    assert_eq!(m.durations_s, [0; 4]);
    assert_eq!(m.distances_m, [0; 4]);
}

#[test]
fn osrm_options_are_checked_before_any_request() {
    let places = [at(SE), at(MASP)];
    for (options, path) in [
        (osrm("https://router.example", None), "travel.url"),
        (osrm("localhost:5000", None), "travel.url"),
        (osrm("http://", None), "travel.url"),
        (
            TravelOptions::Osrm {
                url: "http://localhost:5000".into(),
                profile: "driving/../x".into(),
                cache_dir: None,
            },
            "travel.profile",
        ),
        (
            TravelOptions::Osrm {
                url: "http://localhost:5000".into(),
                profile: "driving".into(),
                cache_dir: Some(String::new()),
            },
            "travel.cache_dir",
        ),
    ] {
        let error = error_of(&options, &places);
        assert_eq!(
            (error.code(), error.path()),
            ("invalid_option", path.into()),
            "{options:?}"
        );
    }
    let bad_coordinate = [
        at(SE),
        at(Coord {
            lat: 0.0,
            lon: 200.0,
        }),
    ];
    let error = error_of(&osrm("http://127.0.0.1:9", None), &bad_coordinate);
    assert_eq!(
        (error.code(), error.path()),
        ("invalid_coordinate", "places[1]".into())
    );
}
