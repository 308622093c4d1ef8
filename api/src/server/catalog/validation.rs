//! Validation of single records with the solver's own rules
//! ([`despacho_solver::field::validate`]), so that what the API stores always makes a
//! valid planning problem.
//!
//! The solver validates a whole [`ProblemInput`]. To check one technician, a batch of
//! jobs or the settings, the records are put into a problem with the operation's
//! settings (a `matrix` travel mode, for instance, requires a `location_id` on every
//! place), stand-ins for the records they may refer to that are already stored
//! (technicians named by `pinned_technician`, jobs named by `after_job`), and the
//! problems found in the records under test are kept, their paths rewritten to the
//! request body's: `$.technicians[0].shifts[1].end` becomes `$.shifts[1].end` for a
//! single technician and `$[3].shifts[1].end` for the fourth of an import.

use crate::server::catalog::settings::Settings;
use crate::server::http::body::member;
use crate::server::http::error::ErrorDetail;
use crate::server::store::ids::{check_id, shorten};
use despacho_solver::field::input::{
    JobInput, JobKind, ObjectiveWeights, Place, ProblemInput, Technician, WindowInput,
    PROBLEM_VERSION,
};
use despacho_solver::field::validate::{validate, ValidationError};

/// Where the records under test sit in the request body.
#[derive(Clone, Copy, Debug)]
pub enum Base<'a> {
    /// One record at this path: `$` for a body that is the record, `$.job` when it is
    /// a field of the body.
    Single(&'a str),
    /// A JSON array of records (or CSV rows): `$[i]`.
    Array,
}

impl Base<'_> {
    fn path(self, index: usize) -> String {
        match self {
            Base::Single(p) => p.to_owned(),
            Base::Array => format!("$[{index}]"),
        }
    }
}

/// Problems of `settings` (time zone, travel options), with paths `$.time_zone`, `$.travel…`.
pub fn check_settings(settings: &Settings) -> Vec<ErrorDetail> {
    let problem = problem(settings, vec![stand_in_technician("t")], Vec::new());
    let mut details: Vec<ErrorDetail> = errors(&problem)
        .into_iter()
        .filter(|e| e.path == "$.time_zone" || e.path.starts_with("$.travel"))
        .map(|e| ErrorDetail::new(e.path, e.code, e.message))
        .collect();
    if !(0.0..1.0).contains(&settings.repair_reserve) {
        details.push(ErrorDetail::new(
            "$.repair_reserve",
            "out_of_range",
            format!(
                "{}: the share kept for repairs must be at least 0 and less than 1 (e.g. 0.1)",
                settings.repair_reserve
            ),
        ));
    }
    details.extend(crate::server::messages::outbox::check_message_settings(
        settings,
    ));
    details
}

/// Problems of `technicians` (ids unique among them, skills, home, shifts, breaks,
/// costs, territory), under the operation's `settings`.
pub fn check_technicians(
    technicians: &[Technician],
    settings: &Settings,
    base: Base,
) -> Vec<ErrorDetail> {
    let problem = problem(settings, technicians.to_vec(), Vec::new());
    let mut details = rebase(errors(&problem), "$.technicians", technicians.len(), base);
    for (i, t) in technicians.iter().enumerate() {
        let at = base.path(i);
        push_new(
            &mut details,
            check_id(&format!("{at}.id"), &t.id, "a technician id"),
        );
        if let Some(name) = &t.name {
            details.extend(check_length(&format!("{at}.name"), name, MAX_NAME_CHARS));
        }
        details.extend(check_place(&format!("{at}.home"), &t.home));
        for (k, shift) in t.shifts.iter().enumerate() {
            if let Some(place) = &shift.start_place {
                details.extend(check_place(&format!("{at}.shifts[{k}].start_place"), place));
            }
        }
        details.extend(check_skill_names(&format!("{at}.skills"), t.skills.keys()));
    }
    details
}

/// Problems of `jobs` (ids unique among them, place, durations, skills, windows,
/// priority, pins, references) under `settings`. `technician_ids` and `job_ids` are
/// the stored records the jobs may refer to (pinned or preferred technician,
/// `after_job`, `same_technician_as`).
pub fn check_jobs(
    jobs: &[JobInput],
    settings: &Settings,
    technician_ids: &[String],
    job_ids: &[String],
    base: Base,
) -> Vec<ErrorDetail> {
    let technicians = technician_ids
        .iter()
        .map(|id| stand_in_technician(id))
        .collect();
    let mut all = jobs.to_vec();
    all.extend(
        job_ids
            .iter()
            .filter(|id| !jobs.iter().any(|j| &j.id == *id))
            .map(|id| stand_in_job(id)),
    );
    let problem = problem(settings, technicians, all);
    let mut details = rebase(errors(&problem), "$.jobs", jobs.len(), base);
    for (i, j) in jobs.iter().enumerate() {
        let at = base.path(i);
        push_new(
            &mut details,
            check_id(&format!("{at}.id"), &j.id, "a job id"),
        );
        details.extend(check_place(&format!("{at}.place"), &j.place));
        details.extend(check_skill_names(
            &format!("{at}.required_skills"),
            j.required_skills.keys(),
        ));
    }
    details
}

/// Adds `detail` unless a problem at its path is listed already (the solver's own
/// rules refuse an empty id too).
fn push_new(details: &mut Vec<ErrorDetail>, detail: Option<ErrorDetail>) {
    if let Some(d) = detail {
        if !details.iter().any(|e| e.path == d.path) {
            details.push(d);
        }
    }
}

/// The longest name of a person or thing (technician, customer, territory), characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest address, characters.
pub const MAX_ADDRESS_CHARS: usize = 500;
/// The longest skill name or travel-matrix location id, characters.
pub const MAX_KEY_CHARS: usize = 100;

/// A text field longer than `max` characters (a 10 MB name made every technician list
/// 10 MB and slowed every slot search).
pub fn check_length(path: &str, text: &str, max: usize) -> Option<ErrorDetail> {
    let count = text.chars().count();
    (count > max).then(|| {
        ErrorDetail::new(
            path,
            "too_long",
            format!("the text has {count} characters; at most {max} are accepted"),
        )
    })
}

fn check_place(path: &str, place: &Place) -> Vec<ErrorDetail> {
    let mut details = Vec::new();
    if let Some(address) = &place.address {
        details.extend(check_length(
            &format!("{path}.address"),
            address,
            MAX_ADDRESS_CHARS,
        ));
    }
    if let Some(location) = &place.location_id {
        details.extend(check_length(
            &format!("{path}.location_id"),
            location,
            MAX_KEY_CHARS,
        ));
    }
    details
}

fn check_skill_names<'a>(path: &str, names: impl Iterator<Item = &'a String>) -> Vec<ErrorDetail> {
    names
        .filter(|name| name.trim().is_empty() || name.chars().count() > MAX_KEY_CHARS)
        .map(|name| {
            ErrorDetail::new(
                member(path, &shorten(name, 40)),
                "invalid_skill",
                format!("a skill name is 1 to {MAX_KEY_CHARS} characters"),
            )
        })
        .collect()
}

fn problem(settings: &Settings, technicians: Vec<Technician>, jobs: Vec<JobInput>) -> ProblemInput {
    ProblemInput {
        version: PROBLEM_VERSION,
        time_zone: settings.time_zone.clone(),
        skills: None,
        technicians,
        jobs,
        travel: settings.travel.clone(),
        objective: ObjectiveWeights::default(),
    }
}

fn errors(problem: &ProblemInput) -> Vec<ValidationError> {
    validate(problem).err().map(|e| e.0).unwrap_or_default()
}

/// Keeps the errors under `$.{list}[i]` for `i < count` (the records under test; the
/// stand-ins come after them) and rewrites their paths, and the paths quoted in their
/// messages, to the request body's.
fn rebase(errors: Vec<ValidationError>, list: &str, count: usize, base: Base) -> Vec<ErrorDetail> {
    let prefix = format!("{list}[");
    errors
        .into_iter()
        .filter_map(|e| {
            let rest = e.path.strip_prefix(&prefix)?;
            let close = rest.find(']')?;
            let index: usize = rest[..close].parse().ok()?;
            if index >= count {
                return None;
            }
            let path = format!("{}{}", base.path(index), &rest[close + 1..]);
            let message = match base {
                Base::Array => e.message.replace(&prefix, "$["),
                Base::Single(_) => e.message,
            };
            Some(ErrorDetail::new(path, e.code, message))
        })
        .collect()
}

fn stand_in_place() -> Place {
    Place {
        lat: 0.0,
        lon: 0.0,
        address: None,
        location_id: None,
    }
}

fn stand_in_technician(id: &str) -> Technician {
    Technician {
        id: id.to_owned(),
        name: None,
        skills: Default::default(),
        home: stand_in_place(),
        shifts: Vec::new(),
        cost_per_hour: 0.0,
        cost_per_km: 0.0,
        territory: None,
        van_capacity: None,
        max_jobs_per_day: None,
    }
}

fn stand_in_job(id: &str) -> JobInput {
    let epoch = chrono::DateTime::UNIX_EPOCH.fixed_offset();
    JobInput {
        id: id.to_owned(),
        kind: JobKind::Repair,
        tier: Default::default(),
        place: stand_in_place(),
        duration_minutes: 1,
        duration_by_level: Default::default(),
        required_skills: Default::default(),
        windows: vec![WindowInput {
            start: epoch,
            end: epoch,
        }],
        priority: 5,
        sla_due: None,
        pinned_technician: None,
        pinned_start: None,
        preferred_technician: None,
        equipment: Default::default(),
        same_technician_as: None,
        after_job: None,
    }
}
