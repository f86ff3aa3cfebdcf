//! Who is calling: a department's bearer token, and what its roles let it do.
//!
//! Tokens come from the configuration as a file, an environment variable or
//! only their SHA-256; the service keeps only the digests and compares a
//! presented token's digest with every one of them without stopping at the
//! first difference, so neither the tokens nor the timing of a comparison
//! tells an attacker how much of a guess was right.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::DepartmentAccess;

/// What a department may do with the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Subjects, measures, pre-check (personal data masked).
    Read,
    /// Natural persons' ID numbers and names unmasked.
    PersonalData,
    /// The audit log.
    Audit,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::PersonalData => "personal_data",
            Role::Audit => "audit",
        }
    }
}

/// An authenticated department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub department: String,
    pub roles: Vec<Role>,
}

impl Caller {
    pub fn has(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send Authorization: Bearer <your department's archive token>")]
    Missing,
    #[error("the bearer token is not one of a configured department")]
    Unknown,
}

/// The configured departments, by token digest.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Caller)>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Equal without an early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Read through black_box so the compiler cannot turn the fold back into
    // a comparison that stops early.
    std::hint::black_box(diff) == 0
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Tokens {
    /// Reads every department's token (files, environment); every problem
    /// is reported at once, never a token's value.
    pub fn load(departments: &[DepartmentAccess]) -> Result<Tokens, Vec<String>> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for d in departments {
            let token = if let Some(path) = &d.token_file {
                match std::fs::read_to_string(path) {
                    Ok(t) => Some(digest(t.trim_end_matches(['\n', '\r']).as_bytes())),
                    Err(e) => {
                        problems.push(format!(
                            "archive token of {}: {}: {e}",
                            d.id,
                            path.display()
                        ));
                        None
                    }
                }
            } else if let Some(var) = &d.token_env {
                match std::env::var(var) {
                    Ok(t) if !t.is_empty() => Some(digest(t.as_bytes())),
                    _ => {
                        problems.push(format!("archive token of {}: ${var} is not set", d.id));
                        None
                    }
                }
            } else if let Some(hex) = &d.token_sha256 {
                let h = parse_hex(hex);
                if h.is_none() {
                    problems.push(format!(
                        "archive token of {}: token_sha256 is not 64 hex digits",
                        d.id
                    ));
                }
                h
            } else {
                problems.push(format!("archive token of {}: none configured", d.id));
                None
            };
            if let Some(t) = token {
                if let Some((_, other)) = entries.iter().find(|(h, _)| same(h, &t)) {
                    let other: &Caller = other;
                    problems.push(format!(
                        "archive token of {}: the same as {}'s",
                        d.id, other.department
                    ));
                }
                entries.push((
                    t,
                    Caller {
                        department: d.id.clone(),
                        roles: d.roles.clone(),
                    },
                ));
            }
        }
        if problems.is_empty() {
            Ok(Tokens { entries })
        } else {
            Err(problems)
        }
    }

    /// The caller an `Authorization` header names.
    pub fn authenticate(&self, header: Option<&str>) -> Result<&Caller, AuthError> {
        let token = header
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let d = digest(token.as_bytes());
        let mut found = None;
        for (h, c) in &self.entries {
            if same(h, &d) {
                found = Some(c);
            }
        }
        found.ok_or(AuthError::Unknown)
    }
}

/// The SHA-256 of a token, hex (what `token_sha256` takes).
pub fn token_sha256(token: &str) -> String {
    digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(id: &str, sha: &str, roles: &[Role]) -> DepartmentAccess {
        DepartmentAccess {
            id: id.into(),
            token_file: None,
            token_env: None,
            token_sha256: Some(sha.into()),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn tokens_authenticate_their_department_only() {
        let dir = std::env::temp_dir().join(format!("archive-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("courts.token");
        std::fs::write(&file, "courts-secret\n").unwrap();
        let mut deps = vec![
            access("finance", &token_sha256("finance-secret"), &[Role::Read]),
            DepartmentAccess {
                token_file: Some(file),
                token_sha256: None,
                ..access("courts", "", &[Role::Read, Role::PersonalData])
            },
        ];
        let t = Tokens::load(&deps).unwrap();
        let c = t.authenticate(Some("Bearer finance-secret")).unwrap();
        assert_eq!(
            (c.department.as_str(), c.has(Role::PersonalData)),
            ("finance", false)
        );
        let c = t.authenticate(Some("bearer   courts-secret")).unwrap();
        assert!(c.has(Role::PersonalData));
        assert_eq!(t.authenticate(None), Err(AuthError::Missing));
        assert_eq!(t.authenticate(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(
            t.authenticate(Some("Bearer finance-secre")),
            Err(AuthError::Unknown)
        );
        // Problems are reported together, without the tokens.
        deps.push(access("tax", "zz", &[]));
        deps.push(access("market", &token_sha256("finance-secret"), &[]));
        let e = Tokens::load(&deps).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(!e.join(" ").contains("finance-secret"));
        std::fs::remove_dir_all(dir).ok();
    }
}
