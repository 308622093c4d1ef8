//! The optional map tile server of the `/dispatch` page (`despacho serve --map-tiles`).
//!
//! Without it the page draws routes on a plain SVG map from coordinates (nothing leaves
//! the server). With it, the page lays Web-Mercator raster tiles (`{z}/{x}/{y}`, the
//! OpenStreetMap scheme) from that server under the routes; the page's
//! Content-Security-Policy then allows images from that one origin, nothing else.

use serde::Serialize;

/// A tile URL template and the attribution its terms ask for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapTiles {
    /// e.g. `https://tile.example.org/{z}/{x}/{y}.png`.
    pub url: String,
    /// Shown under the map, e.g. "© OpenStreetMap contributors".
    pub attribution: String,
    /// `scheme://host[:port]` of `url`, for the page's CSP.
    #[serde(skip)]
    pub origin: String,
}

impl MapTiles {
    /// Checks a URL template: http or https, a host, and `{z}`, `{x}` and `{y}` each
    /// once; no characters that could break out of the CSP header or the page. The
    /// error says what is wrong.
    pub fn parse(url: &str, attribution: &str) -> Result<MapTiles, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "`{url}` is not a URL: it needs http:// or https://"
            ));
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!(
                "`{url}`: only http and https tile servers are supported"
            ));
        }
        if let Some(c) = url.chars().find(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '"' | '\'' | ';' | ',' | '<' | '>' | '\\')
        }) {
            return Err(format!("`{url}` contains {c:?}, which a tile URL may not"));
        }
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || host.contains('{') || host.contains('@') {
            return Err(format!(
                "`{url}` has no plain host (placeholders and user names are not allowed before the path)"
            ));
        }
        for placeholder in ["{z}", "{x}", "{y}"] {
            match url.matches(placeholder).count() {
                1 => {}
                0 => return Err(format!("`{url}` has no {placeholder} placeholder")),
                _ => return Err(format!("`{url}` has {placeholder} more than once")),
            }
        }
        let attribution = attribution.trim();
        if attribution.chars().any(char::is_control) {
            return Err("the attribution may not contain control characters".into());
        }
        if attribution.chars().count() > 200 {
            return Err("the attribution is longer than 200 characters".into());
        }
        Ok(MapTiles {
            origin: format!("{scheme}://{host}"),
            url: url.to_owned(),
            attribution: attribution.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_template_gives_its_origin() {
        let t = MapTiles::parse(
            " https://tiles.example.org:8443/osm/{z}/{x}/{y}.png ",
            "© OpenStreetMap contributors",
        )
        .unwrap();
        assert_eq!(t.origin, "https://tiles.example.org:8443");
        assert_eq!(t.url, "https://tiles.example.org:8443/osm/{z}/{x}/{y}.png");
        assert_eq!(t.attribution, "© OpenStreetMap contributors");
    }

    #[test]
    fn bad_templates_are_refused_saying_why() {
        for (url, why) in [
            ("tiles.example.org/{z}/{x}/{y}.png", "needs http"),
            (
                "ftp://tiles.example.org/{z}/{x}/{y}.png",
                "only http and https",
            ),
            ("https:///{z}/{x}/{y}.png", "no plain host"),
            (
                "https://{s}.tile.example.org/{z}/{x}/{y}.png",
                "no plain host",
            ),
            ("https://tiles.example.org/{z}/{x}.png", "no {y}"),
            (
                "https://tiles.example.org/{z}/{x}/{y}/{y}.png",
                "{y} more than once",
            ),
            (
                "https://tiles.example.org/{z}/{x}/{y}.png; script-src *",
                "contains ';'",
            ),
            ("https://a\"b/{z}/{x}/{y}", "contains '\"'"),
        ] {
            let e = MapTiles::parse(url, "").unwrap_err();
            assert!(e.contains(why), "{url}: {e}");
        }
        assert!(MapTiles::parse("https://t.example/{z}/{x}/{y}", "a\nb").is_err());
    }
}
