//! Bringing old portraits home: importing another bot's export, moving Discord CDN links into
//! our bucket, moving unprefixed objects under the environment prefix, and orphan cleanup.

pub mod bucket;
pub mod cdn;
pub mod import;
pub mod orphans;
pub mod prefix;
