//! ApiVersions: which APIs and versions this broker implements.
//!
//! KIP-511: a client may send ApiVersions at a version newer than the
//! broker knows. The broker then answers with a version 0 body carrying
//! UNSUPPORTED_VERSION and its supported ranges, so the client retries at
//! a version both sides know.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use super::SUPPORTED;

/// Versions implemented (advertised in ApiVersions).
pub const VERSIONS: (i16, i16) = (0, 3);

/// The response to an ApiVersions request at `version`, and the version to
/// encode its body at (`version` itself, or 0 when it is unsupported).
pub fn respond(version: i16) -> (ApiVersionsResponse, i16) {
    let api_keys = SUPPORTED
        .iter()
        .map(|(key, (min, max))| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    let mut resp = ApiVersionsResponse::default()
        .with_api_keys(api_keys)
        .with_throttle_time_ms(0)
        .with_finalized_features(Vec::new());
    if (VERSIONS.0..=VERSIONS.1).contains(&version) {
        (resp, version)
    } else {
        resp.error_code = ResponseError::UnsupportedVersion.code();
        (resp, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn lists_every_supported_api() {
        let (resp, v) = respond(3);
        assert_eq!(v, 3);
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.api_keys.len(), SUPPORTED.len());
        let av = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .expect("listed");
        assert_eq!((av.min_version, av.max_version), (0, 3));
        let md = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Metadata as i16)
            .expect("listed");
        assert_eq!((md.min_version, md.max_version), (0, 12));
    }

    #[test]
    fn newer_version_gets_v0_unsupported_version() {
        let (resp, v) = respond(99);
        assert_eq!(v, 0);
        assert_eq!(resp.error_code, 35);
        assert_eq!(resp.api_keys.len(), SUPPORTED.len());
    }
}
