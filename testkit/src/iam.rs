//! [`Policies`]: the test S3 server's access control — each access key is held to an IAM
//! identity policy (JSON, as given to AWS), so a test runs the very policy document zerok
//! ships against real requests. What is evaluated: `Effect` (an explicit `Deny` wins, else
//! any matching `Allow`, else denied), `Action` and `Resource` with `*`/`?` wildcards, and
//! the condition operators `StringEquals`, `StringLike`, `Null` and `Bool` over the keys
//! `s3:prefix`, `s3:if-none-match` and `s3:ObjectCreationOperation`. A key without a
//! policy may do anything (the bucket owner).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use s3s::{
    S3Request, S3Result,
    access::{S3Access, S3AccessContext},
    dto::DeleteObjectsInput,
    path::S3Path,
    s3_error,
};
use serde_json::Value;

/// Identity policies by access key, replaceable while the server runs.
#[derive(Clone, Default)]
pub(crate) struct Policies(pub Arc<RwLock<HashMap<String, Value>>>);

/// One request as IAM sees it.
struct Request<'a> {
    action: &'static str,
    resource: String,
    context: HashMap<&'static str, Option<String>>,
    principal: Option<&'a str>,
}

impl Policies {
    fn decide(&self, req: &Request<'_>) -> S3Result<()> {
        let Some(key) = req.principal else { return Err(s3_error!(AccessDenied, "signature required")) };
        let policies = self.0.read().expect("policies lock");
        let Some(policy) = policies.get(key) else { return Ok(()) };
        let statements: Vec<&Value> = match &policy["Statement"] {
            Value::Array(list) => list.iter().collect(),
            one => vec![one],
        };
        let matching = |effect: &str| {
            statements.iter().any(|s| {
                s["Effect"] == effect
                    && any_matches(&s["Action"], req.action)
                    && any_matches(&s["Resource"], &req.resource)
                    && conditions_hold(&s["Condition"], &req.context)
            })
        };
        if matching("Deny") || !matching("Allow") {
            return Err(s3_error!(AccessDenied, "{} on {} is not allowed", req.action, req.resource));
        }
        Ok(())
    }
}

/// The IAM action of an S3 operation, and whether it creates an object.
fn action_of(op: &str) -> Option<(&'static str, bool)> {
    Some(match op {
        "GetObject" | "HeadObject" => ("s3:GetObject", false),
        "ListObjects" | "ListObjectsV2" | "HeadBucket" | "GetBucketLocation" => ("s3:ListBucket", false),
        "PutObject" | "CompleteMultipartUpload" | "CopyObject" => ("s3:PutObject", true),
        "CreateMultipartUpload" | "UploadPart" | "UploadPartCopy" => ("s3:PutObject", false),
        "AbortMultipartUpload" => ("s3:AbortMultipartUpload", false),
        "ListParts" => ("s3:ListMultipartUploadParts", false),
        "DeleteObject" | "DeleteObjects" => ("s3:DeleteObject", false),
        "CreateBucket" => ("s3:CreateBucket", false),
        "DeleteBucket" => ("s3:DeleteBucket", false),
        "ListBuckets" => ("s3:ListAllMyBuckets", false),
        _ => return None,
    })
}

fn any_matches(patterns: &Value, value: &str) -> bool {
    match patterns {
        Value::String(p) => wildcard(p, value),
        Value::Array(list) => list.iter().any(|p| p.as_str().is_some_and(|p| wildcard(p, value))),
        _ => false,
    }
}

/// IAM's `*` (any run) and `?` (one character) match, case-sensitive.
fn wildcard(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // Classic two-pointer glob match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

fn conditions_hold(conditions: &Value, context: &HashMap<&'static str, Option<String>>) -> bool {
    let Value::Object(ops) = conditions else { return conditions.is_null() };
    ops.iter().all(|(op, keys)| {
        let Value::Object(keys) = keys else { return false };
        keys.iter().all(|(key, expected)| {
            let actual = context.get(key.as_str()).cloned().flatten();
            let wanted: Vec<&str> = match expected {
                Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                one => one.as_str().into_iter().collect(),
            };
            match op.as_str() {
                "StringEquals" | "Bool" => actual.is_some_and(|a| wanted.iter().any(|w| w.eq_ignore_ascii_case(&a))),
                "StringLike" => actual.is_some_and(|a| wanted.iter().any(|w| wildcard(w, &a))),
                "Null" => wanted.iter().any(|w| (*w == "true") == actual.is_none()),
                _ => false,
            }
        })
    })
}

fn arn(bucket: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("arn:aws:s3:::{bucket}/{key}"),
        None => format!("arn:aws:s3:::{bucket}"),
    }
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let query = query?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
        ) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait::async_trait]
impl S3Access for Policies {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let op = cx.s3_op().name();
        let Some((action, creates)) = action_of(op) else {
            // Operations zerok never sends (versioning, policies, …) are the owner's.
            let owner =
                cx.credentials().is_some_and(|c| !self.0.read().expect("policies lock").contains_key(&c.access_key));
            return if owner { Ok(()) } else { Err(s3_error!(AccessDenied, "{op} is not allowed")) };
        };
        let (resource, prefix) = match cx.s3_path() {
            S3Path::Root => ("*".to_string(), None),
            S3Path::Bucket { bucket } => {
                (arn(bucket, None), Some(query_param(cx.uri().query(), "prefix").unwrap_or_default()))
            }
            S3Path::Object { bucket, key } => (arn(bucket, Some(key)), None),
        };
        if op == "DeleteObjects" {
            // Decided per key once the body is read (see `delete_objects`).
            return Ok(());
        }
        let header = |name: &str| cx.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        // S3 answers a conditional copy with 501: a copy never meets the condition.
        let if_none_match = if op == "CopyObject" { None } else { header("if-none-match") };
        let context = HashMap::from([
            ("s3:prefix", prefix),
            ("s3:if-none-match", if_none_match),
            ("s3:ObjectCreationOperation", Some(creates.to_string())),
        ]);
        let principal = cx.credentials().map(|c| c.access_key.as_str());
        self.decide(&Request { action, resource, context, principal })
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let principal = req.credentials.as_ref().map(|c| c.access_key.as_str());
        for object in &req.input.delete.objects {
            let resource = arn(&req.input.bucket, Some(&object.key));
            let context = HashMap::from([("s3:ObjectCreationOperation", Some("false".to_string()))]);
            self.decide(&Request { action: "s3:DeleteObject", resource, context, principal })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(wildcard("arn:aws:s3:::b/v/locks/*", "arn:aws:s3:::b/v/locks/ab"));
        assert!(!wildcard("arn:aws:s3:::b/v/locks/*", "arn:aws:s3:::b/v/snapshots/ab"));
        assert!(wildcard("s3:*", "s3:DeleteObject"));
        assert!(wildcard("a?c*", "abcdef"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*", ""));
    }
}
