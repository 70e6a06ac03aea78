//! Append-only vaults, against ransomware and stolen devices: what a device's credentials
//! may do ([`device_policy`], an IAM policy: list and read, create what does not exist,
//! write and delete locks — never overwrite or delete data, indexes, snapshots, keys or the
//! config, and add no key slot), the
//! bucket's own protection ([`protect_bucket`]: versioning and Object Lock, so even a
//! credential that may delete leaves the old versions), and the separate admin credentials
//! that forget, prune, repair, tag and key changes sign with ([`admin_credentials`]).
//!
//! What a device can still do: read the vault (it has the key); add snapshots and objects
//! (which cost space, and fail to open where they are junk, until an admin removes them —
//! and forged snapshots count in an admin's `forget --keep-last`, so prefer
//! `--keep-within`); delete other devices' locks (a backup running then may lose what a
//! prune collects meanwhile; its snapshots already written are safe).
//!
//! A vault's config says it is append-only; zerok then writes every object but its locks
//! with a conditional create (`If-None-Match: *`, which the policy requires) and refuses,
//! before any request, a deletion not signed with the admin credentials. The refusal is a
//! courtesy to honest devices; what stops a dishonest one is the store enforcing the policy.

use serde_json::{Value, json};

use crate::{Error, Location, Result, format::names, store::admin_client};

/// The admin credentials' access key id (the secret is [`ADMIN_SECRET_KEY_ENV`], an
/// optional session token [`ADMIN_SESSION_TOKEN_ENV`]).
pub const ADMIN_ACCESS_KEY_ENV: &str = "ZEROK_ADMIN_AWS_ACCESS_KEY_ID";
/// The admin credentials' secret access key.
pub const ADMIN_SECRET_KEY_ENV: &str = "ZEROK_ADMIN_AWS_SECRET_ACCESS_KEY";
/// The admin credentials' session token, when they are temporary.
pub const ADMIN_SESSION_TOKEN_ENV: &str = "ZEROK_ADMIN_AWS_SESSION_TOKEN";

/// Default days Object Lock retains every version written (governance mode).
pub const DEFAULT_RETAIN_DAYS: u32 = 30;

/// Credentials read from the environment.
pub struct AdminCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminCredentials(…)")
    }
}

/// The admin credentials, when both their key id and secret are set.
pub fn admin_credentials() -> Option<AdminCredentials> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(AdminCredentials {
        access_key: var(ADMIN_ACCESS_KEY_ENV)?,
        secret_key: var(ADMIN_SECRET_KEY_ENV)?,
        session_token: var(ADMIN_SESSION_TOKEN_ENV),
    })
}

/// Folders a device creates objects in, and never rewrites.
const CREATED_ONLY: [&str; 4] = [names::DATA, names::INDEX, names::SNAPSHOTS, names::SYNC];

/// The IAM identity policy for a device's credentials on the vault at `bucket`/`prefix`:
/// list the bucket and read the vault; create objects in `data/`, `index/`, `snapshots/` and
/// `sync/` only with `If-None-Match: *` (so none is overwritten; zerok sends no multipart
/// uploads); write and delete `locks/`. Nothing else: no deletion, no overwrite, no
/// `config`, no key slot, no versions. Listing is not narrowed to the prefix: S3 answers a
/// HEAD of a missing object with 403 to a principal that may not list it, and a device asks
/// whether objects exist (a revocation marker). One bucket per vault keeps a device from
/// seeing other vaults' object names.
///
/// # Errors
/// [`Error::Invalid`] for a prefix holding `*`, `?` or `$` (wildcards and variables in a
/// policy's resources).
pub fn device_policy(bucket: &str, prefix: &str) -> Result<Value> {
    let prefix = prefix.trim_matches('/');
    if let Some(c) = bucket.chars().chain(prefix.chars()).find(|c| matches!(c, '*' | '?' | '$')) {
        return Err(Error::Invalid(format!("a vault path holding {c:?} cannot be named in an IAM policy")));
    }
    let object = |rest: &str| {
        if prefix.is_empty() {
            format!("arn:aws:s3:::{bucket}/{rest}")
        } else {
            format!("arn:aws:s3:::{bucket}/{prefix}/{rest}")
        }
    };
    let created: Vec<String> = CREATED_ONLY.iter().map(|folder| object(&format!("{folder}/*"))).collect();
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ZerokDeviceList", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{bucket}")},
            {"Sid": "ZerokDeviceRead", "Effect": "Allow", "Action": "s3:GetObject", "Resource": object("*")},
            {
                "Sid": "ZerokDeviceCreateOnly",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": created,
                "Condition": {"StringEquals": {"s3:if-none-match": "*"}},
            },
            {
                "Sid": "ZerokDeviceLocks",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": object(&format!("{}/*", names::LOCKS)),
            },
        ],
    }))
}

/// Turns on versioning and Object Lock for the vault's bucket, every new version retained
/// `retain_days` in governance mode (deleting a key then only adds a delete marker; the
/// versions stay until the retention ends and a lifecycle rule of the operator's removes
/// them), and reads the setting back. Runs with the `AWS_*` credentials (the operator's).
///
/// # Errors
/// [`Error::AppendOnly`] for a local folder, or when the store refuses or lacks either
/// feature (naming which).
pub async fn protect_bucket(location: &Location, retain_days: u32) -> Result<()> {
    use aws_sdk_s3::types::{
        BucketVersioningStatus, DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule, VersioningConfiguration,
    };
    let Location::S3 { bucket, .. } = location else {
        return Err(Error::AppendOnly(
            "an append-only vault needs an S3 store: whoever can write a local folder can delete from it".into(),
        ));
    };
    let refused = |what: &str, e: String| {
        Error::AppendOnly(format!(
            "bucket {bucket}: the store did not turn on {what} ({e}); an append-only vault needs versioning \
             and Object Lock, so that what was written outlives any deletion until its retention ends"
        ))
    };
    let days = i32::try_from(retain_days).map_err(|_| Error::Invalid(format!("{retain_days} days is too long")))?;
    let (client, _) = admin_client();
    let versioning = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(versioning)
        .send()
        .await
        .map_err(|e| refused("versioning", aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
    let retention = DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(days).build();
    let lock = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(retention).build())
        .build();
    client
        .put_object_lock_configuration()
        .bucket(bucket)
        .object_lock_configuration(lock)
        .send()
        .await
        .map_err(|e| refused("Object Lock", aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
    let read = client
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| refused("Object Lock", aws_sdk_s3::error::DisplayErrorContext(e).to_string()))?;
    let enabled = read.object_lock_configuration().and_then(|c| c.object_lock_enabled());
    if enabled != Some(&ObjectLockEnabled::Enabled) {
        return Err(refused("Object Lock", "it reads back as off".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_policy_grants_no_deletion_but_of_locks() {
        let policy = device_policy("b", "/v/").unwrap();
        let text = policy.to_string();
        assert!(text.contains("arn:aws:s3:::b/v/snapshots/*"), "{text}");
        for statement in policy["Statement"].as_array().unwrap() {
            let actions = statement["Action"].to_string();
            if actions.contains("DeleteObject") {
                assert_eq!(statement["Resource"], "arn:aws:s3:::b/v/locks/*");
            }
            assert!(!actions.contains('*') && !actions.contains("Version"), "{actions}");
        }
        assert!(device_policy("b", "").unwrap().to_string().contains("arn:aws:s3:::b/snapshots/*"));
        assert!(device_policy("b", "v/*").is_err() && device_policy("b", "${aws:username}").is_err());
    }
}
