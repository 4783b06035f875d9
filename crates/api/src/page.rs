//! Cursor pagination (issue 10): every listing answers `{count, <items>, next_cursor}`, and
//! `?cursor=` with the `next_cursor` of one page asks for the next. A cursor is opaque to clients:
//! base64url of the last row's sort key and the listing it belongs to, so that a cursor of one
//! listing handed to another is refused (400) instead of silently paging something else. Pages are
//! keyset pages (`aluskort_store::PageKey`): rows arriving between requests neither repeat nor
//! shift rows across pages.

use aluskort_store::PageKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Serialize, Deserialize)]
struct Encoded {
    /// The listing (`alerts`, `investigations`, ...).
    k: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    n: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    i: String,
    /// Audit events: the last sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<u64>,
}

fn bad_cursor(reason: &str) -> ApiError {
    ApiError::BadRequest { field: "cursor".to_owned(), reason: reason.to_owned() }
}

fn decode(listing: &str, cursor: &str) -> Result<Encoded, ApiError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad_cursor("not a cursor this API issued (not base64url)"))?;
    let encoded: Encoded = serde_json::from_slice(&bytes).map_err(|_| bad_cursor("not a cursor this API issued"))?;
    if encoded.k != listing {
        return Err(bad_cursor(&format!("a cursor of the {} listing, not of {listing}", encoded.k)));
    }
    Ok(encoded)
}

fn encode(encoded: &Encoded) -> String {
    // Serialising a struct of strings, a time and a number cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(encoded).unwrap_or_default())
}

/// The page key `?cursor=` names, for a keyset listing.
pub fn key_of(listing: &str, cursor: Option<&str>) -> Result<Option<PageKey>, ApiError> {
    let Some(cursor) = cursor else { return Ok(None) };
    let encoded = decode(listing, cursor)?;
    let time = encoded.t.ok_or_else(|| bad_cursor("the cursor has no position"))?;
    Ok(Some(PageKey { time, tenant: encoded.n, id: encoded.i }))
}

/// The cursor continuing after `key`.
pub fn cursor_of(listing: &str, key: PageKey) -> String {
    encode(&Encoded { k: listing.to_owned(), t: Some(key.time), n: key.tenant, i: key.id, s: None })
}

/// The sequence number `?cursor=` names, for the audit events listing.
pub fn sequence_of(listing: &str, cursor: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(cursor) = cursor else { return Ok(None) };
    decode(listing, cursor)?.s.map(Some).ok_or_else(|| bad_cursor("the cursor has no sequence number"))
}

pub fn sequence_cursor(listing: &str, sequence: u64) -> String {
    encode(&Encoded { k: listing.to_owned(), t: None, n: String::new(), i: String::new(), s: Some(sequence) })
}

/// `?limit=`: 1..=1000, default 100.
pub fn limit_of(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::BadRequest { field: "limit".to_owned(), reason: format!("{limit} must be 1..={MAX_LIMIT}") })
    }
}

/// The next cursor of a page of `rows` asked with `limit`: only a full page may have more.
pub fn next<T>(rows: &[T], limit: u32, key: impl Fn(&T) -> String) -> Option<String> {
    if rows.len() < limit as usize { None } else { rows.last().map(key) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_belongs_to_its_listing() {
        let key = PageKey { time: Utc::now(), tenant: "acme".to_owned(), id: "a-1".to_owned() };
        let cursor = cursor_of("alerts", key.clone());
        assert_eq!(key_of("alerts", Some(&cursor)).expect("decodes"), Some(key));
        let Err(ApiError::BadRequest { field, reason }) = key_of("incidents", Some(&cursor)) else { panic!("another listing's cursor") };
        assert_eq!(field, "cursor");
        assert!(reason.contains("alerts"), "{reason}");
        assert!(key_of("alerts", Some("%%%")).is_err());
        assert!(key_of("alerts", Some(&URL_SAFE_NO_PAD.encode(b"{\"k\":\"alerts\"}"))).is_err(), "no position");
        assert_eq!(key_of("alerts", None).expect("none"), None);
        let audit = sequence_cursor("audit_events", 41);
        assert_eq!(sequence_of("audit_events", Some(&audit)).expect("decodes"), Some(41));
        assert!(sequence_of("audit_events", Some(&cursor)).is_err());
    }

    #[test]
    fn only_a_full_page_has_a_next_cursor() {
        assert_eq!(next(&[1, 2], 3, |n| n.to_string()), None);
        assert_eq!(next(&[1, 2, 3], 3, |n| n.to_string()), Some("3".to_owned()));
        assert!(limit_of(Some(0)).is_err() && limit_of(Some(1001)).is_err());
        assert_eq!(limit_of(None).expect("default"), 100);
    }
}
