//! Standard Webhooks signatures (standardwebhooks.com): `webhook-signature: v1,<base64 of
//! HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}">`, keyed with the bytes of the
//! `whsec_`-prefixed base64 secret, so receivers can use any Standard Webhooks library to verify.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// FF_WEBHOOK_SECRET, decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(hidden)")
    }
}

impl WebhookSecret {
    /// `whsec_` and the base64 of at least 24 random bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text.strip_prefix("whsec_").ok_or("it must start with `whsec_`")?;
        let bytes = STANDARD.decode(encoded).map_err(|_| "the part after `whsec_` must be base64")?;
        if bytes.len() < 24 {
            return Err("the secret must be at least 24 bytes".into());
        }
        Ok(Self(bytes))
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_reference_does() {
        // The example of the Standard Webhooks specification.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64_and_long_enough() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
    }
}
