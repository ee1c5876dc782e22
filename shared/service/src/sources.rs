//! Bounds on what one request names as sources: each source is decoded and analysed, so a request
//! naming one stored object 80 times buys 80 decodes. FF_MAX_SOURCES bounds the count on every entry
//! point (`/process` and job forms while they are read, JSON jobs, batch documents), and a stored
//! key named twice is refused, since it adds work and no identity.

use std::collections::HashSet;

use crate::error::ApiError;

/// Refuses more than `max` sources (FF_MAX_SOURCES).
pub fn check_source_count(count: usize, max: usize) -> Result<(), ApiError> {
    if count > max {
        return Err(ApiError::TooManySources(format!(
            "{count} sources given; at most {max} are taken (FF_MAX_SOURCES)"
        )));
    }
    Ok(())
}

/// Refuses stored source keys over `max` or named more than once.
pub fn check_source_keys(keys: &[String], max: usize) -> Result<(), ApiError> {
    check_source_count(keys.len(), max)?;
    let mut seen = HashSet::with_capacity(keys.len());
    if let Some(repeated) = keys.iter().find(|key| !seen.insert(key.as_str())) {
        return Err(ApiError::DuplicateSource(format!(
            "source `{repeated}` is named more than once; name each source object once"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_count_is_bounded_and_keys_are_distinct() {
        assert!(check_source_keys(&keys(&["a.jpg", "b.jpg"]), 2).is_ok());
        assert_eq!(check_source_keys(&keys(&["a.jpg", "b.jpg", "c.jpg"]), 2).unwrap_err().code(), "too_many_sources");
        let repeated = check_source_keys(&keys(&["a.jpg", "b.jpg", "a.jpg"]), 8).unwrap_err();
        assert_eq!((repeated.status().as_u16(), repeated.code()), (400, "duplicate_source"));
        assert!(repeated.to_string().contains("`a.jpg`"), "{repeated}");
    }
}
