//! Secrets at rest: AES-256-GCM under a keyring with one active key.
//!
//! A ciphertext is stored as text, `v1.<key_id>.<base64(nonce || ciphertext || tag)>`,
//! with a fresh random 96-bit nonce per encryption. The associated data binds a
//! ciphertext to the row and column it belongs to (`connections:<id>:access_token`),
//! so a ciphertext copied into another row or column no longer decrypts.

use std::fmt;

use aes_gcm::aead::{Aead, Generate, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use finmesh_core::{Error, ErrorKind, Result};
use secrecy::{ExposeSecret, SecretString};

/// The format tag in front of every ciphertext.
const FORMAT: &str = "v1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 64;

/// Encrypts and decrypts secrets with AES-256-GCM.
///
/// Holds every configured key (so rows written under an older key still decrypt)
/// and encrypts under the active one. `Debug` shows key ids only.
#[derive(Clone)]
pub struct SecretCipher {
    keys: Vec<KeyEntry>,
    active: usize,
}

#[derive(Clone)]
struct KeyEntry {
    id: String,
    cipher: Aes256Gcm,
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCipher")
            .field("active", &self.active_key_id())
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretCipher {
    /// Builds the keyring from configuration: `(key id, base64 of 32 bytes)` pairs and
    /// the id of the key new ciphertexts are written under.
    ///
    /// Errors name the key id, never the key.
    pub fn from_config(keys: &[(String, String)], active: &str) -> Result<Self> {
        let mut entries = Vec::with_capacity(keys.len());
        for (id, encoded) in keys {
            validate_key_id(id)?;
            if entries.iter().any(|e: &KeyEntry| e.id == *id) {
                return Err(Error::invalid_input(
                    format!("secret_keys.{id}"),
                    format!("secret key id `{id}` is configured twice"),
                ));
            }
            let bytes = STANDARD.decode(encoded.trim().as_bytes()).map_err(|_| {
                Error::invalid_input(
                    format!("secret_keys.{id}"),
                    format!("secret key `{id}` is not valid base64 (standard alphabet)"),
                )
            })?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                Error::invalid_input(
                    format!("secret_keys.{id}"),
                    format!(
                        "secret key `{id}` must be {KEY_LEN} bytes, base64 encoded; it decodes to {} bytes",
                        bytes.len()
                    ),
                )
            })?;
            entries.push(KeyEntry {
                id: id.clone(),
                cipher,
            });
        }
        if entries.is_empty() {
            return Err(Error::invalid_input(
                "secret_keys",
                "no secret key is configured: tokens cannot be encrypted at rest",
            ));
        }
        let active_index = entries.iter().position(|e| e.id == active).ok_or_else(|| {
            Error::invalid_input(
                "active_secret_key",
                format!("the active secret key `{active}` is not among the configured keys"),
            )
        })?;
        Ok(SecretCipher {
            keys: entries,
            active: active_index,
        })
    }

    /// A keyring with one fresh random key (id `demo`), for `finmesh demo` and tests.
    /// Whatever it encrypts is unreadable once the process ends.
    pub fn generate_for_demo() -> Self {
        let key = Key::<Aes256Gcm>::generate();
        SecretCipher {
            keys: vec![KeyEntry {
                id: "demo".to_owned(),
                cipher: Aes256Gcm::new(&key),
            }],
            active: 0,
        }
    }

    /// A fresh random key, base64 encoded (standard alphabet), for an operator to put
    /// in the configuration (e.g. `finmesh generate-key`).
    pub fn generate_key_base64() -> SecretString {
        let key = Key::<Aes256Gcm>::generate();
        SecretString::from(STANDARD.encode(key.as_slice()))
    }

    /// The id of the key new ciphertexts are written under.
    pub fn active_key_id(&self) -> &str {
        self.keys
            .get(self.active)
            .map(|e| e.id.as_str())
            .unwrap_or_default()
    }

    /// Every key id in the keyring, in configuration order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|e| e.id.as_str())
    }

    /// Whether the keyring can decrypt ciphertexts written under `key_id`.
    pub fn has_key(&self, key_id: &str) -> bool {
        self.keys.iter().any(|e| e.id == key_id)
    }

    /// Encrypts under the active key, bound to `aad` (e.g. `connections:<id>:access_token`).
    pub fn encrypt(&self, plaintext: &SecretString, aad: &str) -> Result<String> {
        let entry = self
            .keys
            .get(self.active)
            .ok_or_else(|| Error::internal("the secret keyring has no active key"))?;
        let nonce = Nonce::try_generate()
            .map_err(|_| Error::internal("the system random number generator failed"))?;
        let sealed = entry
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::internal("encrypting a secret failed"))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&sealed);
        Ok(format!("{FORMAT}.{}.{}", entry.id, STANDARD.encode(blob)))
    }

    /// Decrypts a ciphertext made by [`SecretCipher::encrypt`] with the same `aad`.
    ///
    /// Fails with an `Internal` error (naming the key id, never the data) when the key
    /// is not in the keyring, the text is malformed, or authentication fails (wrong key,
    /// tampered ciphertext, or a ciphertext moved to another row or column).
    pub fn decrypt(&self, ciphertext: &str, aad: &str) -> Result<SecretString> {
        let (key_id, blob) = parse(ciphertext)?;
        let entry = self.keys.iter().find(|e| e.id == key_id).ok_or_else(|| {
            Error::internal(format!(
                "a stored secret is encrypted under key `{key_id}`, which is not in the keyring"
            ))
        })?;
        let blob = STANDARD
            .decode(blob.as_bytes())
            .map_err(|_| Error::internal("a stored secret is not valid base64"))?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::internal(
                "a stored secret is too short to be a ciphertext",
            ));
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce)
            .map_err(|_| Error::internal("a stored secret has a malformed nonce"))?;
        let plain = entry
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "a stored secret (key `{key_id}`) failed authentication: wrong key, \
                         tampered data, or a ciphertext that belongs to another row"
                    ),
                )
            })?;
        let text = String::from_utf8(plain)
            .map_err(|_| Error::internal("a decrypted secret is not valid UTF-8"))?;
        Ok(SecretString::from(text))
    }

    /// The key id a ciphertext was written under, without decrypting it.
    pub fn key_id_of(ciphertext: &str) -> Result<&str> {
        parse(ciphertext).map(|(id, _)| id)
    }
}

fn parse(ciphertext: &str) -> Result<(&str, &str)> {
    let mut parts = ciphertext.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(FORMAT), Some(key_id), Some(blob)) if !key_id.is_empty() => Ok((key_id, blob)),
        (Some(FORMAT), _, _) => Err(Error::internal("a stored secret is malformed")),
        _ => Err(Error::internal(
            "a stored secret has an unknown format (expected `v1.<key id>.<base64>`)",
        )),
    }
}

fn validate_key_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "secret_keys",
            format!(
                "secret key id `{}` must be 1 to {MAX_KEY_ID_LEN} characters of A-Z, a-z, 0-9, `-` and `_`",
                id.escape_debug()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; KEY_LEN])
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn round_trip_and_format() {
        let cipher = SecretCipher::from_config(&[("k1".into(), key(1))], "k1").unwrap();
        let ct = cipher.encrypt(&secret("hello"), "t:1:c").unwrap();
        assert!(ct.starts_with("v1.k1."), "{ct}");
        assert_eq!(SecretCipher::key_id_of(&ct).unwrap(), "k1");
        assert_eq!(
            cipher.decrypt(&ct, "t:1:c").unwrap().expose_secret(),
            "hello"
        );
        // a fresh nonce every time
        assert_ne!(ct, cipher.encrypt(&secret("hello"), "t:1:c").unwrap());
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let one = SecretCipher::from_config(&[("k1".into(), key(1))], "k1").unwrap();
        let other = SecretCipher::from_config(&[("k1".into(), key(2))], "k1").unwrap();
        let ct = one.encrypt(&secret("hello"), "t:1:c").unwrap();
        let err = one.decrypt(&ct, "t:2:c").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("k1"));
        assert_eq!(
            other.decrypt(&ct, "t:1:c").unwrap_err().kind,
            ErrorKind::Internal
        );
        let missing = SecretCipher::from_config(&[("k2".into(), key(1))], "k2").unwrap();
        assert!(
            missing
                .decrypt(&ct, "t:1:c")
                .unwrap_err()
                .message
                .contains("`k1`")
        );
        assert!(one.decrypt("garbage", "t:1:c").is_err());
        assert!(one.decrypt("v1.k1.!!!", "t:1:c").is_err());
        assert!(one.decrypt("v1.k1.AAAA", "t:1:c").is_err());
    }

    #[test]
    fn config_errors_name_the_key_but_never_print_it() {
        let short = STANDARD.encode([7u8; 16]);
        let err = SecretCipher::from_config(&[("old".into(), short.clone())], "old").unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("`old`") && err.message.contains("16 bytes"));
        assert!(!err.message.contains(&short));

        let err = SecretCipher::from_config(&[("k".into(), "not base64 at all!".into())], "k")
            .unwrap_err();
        assert!(err.message.contains("`k`") && !err.message.contains("not base64 at all"));

        let err = SecretCipher::from_config(&[("k".into(), key(1))], "other").unwrap_err();
        assert!(err.message.contains("`other`"));
        assert!(SecretCipher::from_config(&[], "k").is_err());
        assert!(SecretCipher::from_config(&[("a.b".into(), key(1))], "a.b").is_err());
        assert!(
            SecretCipher::from_config(&[("k".into(), key(1)), ("k".into(), key(2))], "k").is_err()
        );
    }

    #[test]
    fn debug_shows_ids_only() {
        let k = key(9);
        let cipher =
            SecretCipher::from_config(&[("old".into(), key(1)), ("new".into(), k.clone())], "new")
                .unwrap();
        let debug = format!("{cipher:?}");
        assert_eq!(
            debug,
            r#"SecretCipher { active: "new", keys: ["old", "new"] }"#
        );
        assert!(!debug.contains(&k));
        let demo = SecretCipher::generate_for_demo();
        assert_eq!(demo.active_key_id(), "demo");
        let ct = demo.encrypt(&secret("x"), "a").unwrap();
        assert_eq!(demo.decrypt(&ct, "a").unwrap().expose_secret(), "x");
        assert_eq!(
            STANDARD
                .decode(SecretCipher::generate_key_base64().expose_secret())
                .unwrap()
                .len(),
            KEY_LEN
        );
    }
}
