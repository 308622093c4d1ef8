//! A territory shape ready for point tests: which technician may go where (compile's
//! job filters) and which named territory a job belongs to (the API's territories).

use super::input::{Place, Territory};
use geo::{BoundingRect, Intersects, LineString, MultiPolygon, Point, Polygon, Rect};

/// A territory's polygons with their bounding box (a cheap first test).
#[derive(Clone, Debug)]
pub struct Area {
    shape: MultiPolygon<f64>,
    bounds: Option<Rect<f64>>,
}

impl Area {
    pub fn of(territory: &Territory) -> Self {
        let polygon = |rings: &Vec<Vec<[f64; 2]>>| {
            let ring = |r: &Vec<[f64; 2]>| {
                LineString::from(r.iter().map(|&[lon, lat]| (lon, lat)).collect::<Vec<_>>())
            };
            let mut rings = rings.iter().map(ring);
            let exterior = rings.next().unwrap_or_else(|| LineString::new(Vec::new()));
            Polygon::new(exterior, rings.collect())
        };
        let shape = match territory {
            Territory::Polygon { coordinates } => MultiPolygon::new(vec![polygon(coordinates)]),
            Territory::MultiPolygon { coordinates } => {
                MultiPolygon::new(coordinates.iter().map(polygon).collect())
            }
        };
        let bounds = shape.bounding_rect();
        Self { shape, bounds }
    }

    /// Inside or on the boundary (a job on the line between two territories is in both).
    pub fn covers(&self, p: Point<f64>) -> bool {
        self.bounds.is_some_and(|b| b.intersects(&p)) && self.shape.intersects(&p)
    }

    /// [`Area::covers`] for a place's coordinates.
    pub fn covers_place(&self, place: &Place) -> bool {
        self.covers(Point::new(place.lon, place.lat))
    }
}
