//! `credit-bus subject` and `credit-bus precheck`: the archive's answers for
//! operators, through its API (`services/archive`) with a department's
//! token, so the CLI sees exactly what that department may see.

use std::path::PathBuf;

use anyhow::Context;
use credit_core::archive_api;

/// How to reach the archive.
#[derive(clap::Args)]
pub struct Target {
    /// Base URL of the archive's API.
    #[arg(
        long,
        env = "CREDIT_BUS_ARCHIVE_URL",
        default_value = "http://127.0.0.1:9140"
    )]
    pub archive: String,
    /// A file holding the department's archive token.
    #[arg(long, env = "CREDIT_BUS_ARCHIVE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl Target {
    fn token(&self) -> anyhow::Result<String> {
        if let Ok(t) = std::env::var("CREDIT_BUS_ARCHIVE_TOKEN")
            && !t.is_empty()
        {
            return Ok(t);
        }
        let path = self.token_file.as_ref().context(
            "no archive token: pass --token-file (or set CREDIT_BUS_ARCHIVE_TOKEN_FILE or CREDIT_BUS_ARCHIVE_TOKEN)",
        )?;
        Ok(std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim_end_matches(['\n', '\r'])
            .to_string())
    }
}

/// A problem-details answer as one line: `404 Unknown subject: ...`.
async fn answer(resp: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = resp.status();
    let body: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("the archive answered {status} with no JSON"))?;
    if status.is_success() {
        return Ok(body);
    }
    anyhow::bail!(
        "{} {}: {}",
        status.as_u16(),
        body["title"].as_str().unwrap_or("error"),
        body["detail"].as_str().unwrap_or("")
    )
}

/// Prints the subject's record (or only the measures in force) as JSON.
pub async fn subject(
    t: &Target,
    code: &str,
    as_of: Option<&str>,
    measures: bool,
) -> anyhow::Result<()> {
    let mut url = reqwest::Url::parse(&t.archive).context("--archive is not a URL")?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--archive cannot be a base URL"))?
        .pop_if_empty()
        .extend(archive_api::segments(
            if measures {
                archive_api::MEASURES
            } else {
                archive_api::SUBJECT
            },
            code,
        ));
    if let Some(a) = as_of {
        url.query_pairs_mut().append_pair("as_of", a);
    }
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(t.token()?)
        .send()
        .await
        .with_context(|| format!("reaching the archive at {}", t.archive))?;
    let body = answer(resp).await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

/// Reads codes (one a line, blank lines and `#` comments skipped).
pub fn read_codes(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Pre-checks the codes in `file`: prints one line per restricted code, the
/// count on stderr.
pub async fn precheck(
    t: &Target,
    file: &std::path::Path,
    measure: Option<&str>,
    department: Option<&str>,
    as_of: Option<&str>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let codes = read_codes(&text);
    let mut body = serde_json::json!({ "codes": codes });
    if let Some(m) = measure {
        body["measure"] = m.into();
    }
    if let Some(d) = department {
        body["department"] = d.into();
    }
    if let Some(a) = as_of {
        body["as_of"] = a.into();
    }
    let url = format!(
        "{}{}",
        t.archive.trim_end_matches('/'),
        archive_api::PRECHECK
    );
    let resp = reqwest::Client::new()
        .post(url)
        .bearer_auth(t.token()?)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("reaching the archive at {}", t.archive))?;
    let status = resp.status();
    let a: serde_json::Value = resp.json().await.context("the archive's answer")?;
    if !status.is_success() {
        for i in a["invalid"].as_array().into_iter().flatten() {
            eprintln!(
                "line with code #{}: {}",
                i["index"].as_u64().unwrap_or(0) + 1,
                i["reason"].as_str().unwrap_or("")
            );
        }
        anyhow::bail!(
            "{} {}: {}",
            status.as_u16(),
            a["title"].as_str().unwrap_or("error"),
            a["detail"].as_str().unwrap_or("")
        );
    }
    let restricted = a["restricted"].as_array().cloned().unwrap_or_default();
    for r in &restricted {
        let ms: Vec<String> = r["measures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{}@{}",
                    m["measure_id"].as_str().unwrap_or("?"),
                    m["implementing_department"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "{}\trestricted\t{}",
            r["code"].as_str().unwrap_or("?"),
            ms.join(",")
        );
    }
    eprintln!(
        "{} of {} restricted as of {}",
        restricted.len(),
        a["checked"],
        a["as_of"]["known_at"].as_str().unwrap_or("?")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_file_skips_blanks_and_comments() {
        assert_eq!(
            super::read_codes("# applicants\n 91440101MA5CYUF21X \n\n440106198503121234\n"),
            ["91440101MA5CYUF21X", "440106198503121234"]
        );
    }
}
