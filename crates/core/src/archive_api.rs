//! The archive's query routes (`services/archive`), named once: the archive
//! serves them, the `credit-bus` CLI and the dashboard call them.

/// `GET`: a subject's record (role `read`).
pub const SUBJECT: &str = "/v1/subjects/{code}";
/// `GET`: the measures in force on a subject, explained (role `read`).
pub const MEASURES: &str = "/v1/subjects/{code}/measures";
/// `POST`: which of many subjects a measure or department restricts (role `read`).
pub const PRECHECK: &str = "/v1/precheck";
/// `GET`: reads of personal data (role `audit`).
pub const AUDIT: &str = "/v1/audit";
/// Base of every problem-details `type` URI the archive (and the dashboard's
/// subject view, about reaching it) answers with.
pub const PROBLEM_BASE: &str = "https://credit-bus.example/problems/";
/// `GET`: the OpenAPI document.
pub const OPENAPI: &str = "/openapi.json";

/// The path segments of `route` with `{code}` replaced by `code`, for a URL
/// builder that percent-encodes each segment (a code typed by a person is
/// never spliced into a path unescaped).
pub fn segments<'a>(route: &'a str, code: &'a str) -> impl Iterator<Item = &'a str> {
    route
        .split('/')
        .filter(|s| !s.is_empty())
        .map(move |s| if s == "{code}" { code } else { s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_fill_in_the_code() {
        let got: Vec<_> = segments(MEASURES, "91/x").collect();
        assert_eq!(got, ["v1", "subjects", "91/x", "measures"]);
    }
}
